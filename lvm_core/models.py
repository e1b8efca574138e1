"""Latent variable models behind one protocol.

Every model is a ``torch.nn.Module`` that answers

    latent_dim, data_dim, discrete
    prior()                 -> torch Distribution over z, event shape (latent_dim,)
    log_prior(z)            z: (..., batch, latent_dim) -> (..., batch)
    log_likelihood(x, z)    x: (batch, data_dim) broadcast against z's leading axes -> (..., batch)
    log_joint(x, z)         log p(x, z) = log p(z) + log p(x | z)
    sample(n, generator)    -> (x: (n, data_dim), z: (n, latent_dim))

Estimators never ask which model they hold. Optional capabilities, looked up with ``getattr``:
``closed_form_log_marginal(x)``, ``closed_form_posterior(x)`` and ``enumerate_latents()`` (discrete z).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal, OneHotCategorical

from lvm_core.proposals import make_generator

LOG_2PI = math.log(2.0 * math.pi)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "elu": nn.ELU}


def _standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)


def diag_normal_log_prob(x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log N(x; loc, diag(exp(log_scale))^2), summed over the last axis; broadcasts like arithmetic."""
    # written out rather than through Normal(...) to skip argument validation on the hot path
    return -0.5 * (((x - loc) * torch.exp(-log_scale)).pow(2) + 2.0 * log_scale + LOG_2PI).sum(-1)


def mlp(widths: list[int], activation: str, generator: torch.Generator, dtype: torch.dtype) -> nn.Sequential:
    """Linear layers of the given widths with the activation between them, initialised as PyTorch's nn.Linear does
    (weight: Kaiming uniform with a = sqrt(5), bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))) but from ``generator``.

    Built with skip_init, so torch's global generator is never drawn from; in float32, then cast, so a seed gives the
    same initial weights in either dtype, equal to nn.Linear's after seeding torch's global generator with it.
    """
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layer = torch.nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        with torch.no_grad():
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers).to(dtype)


class LatentVariableModel(nn.Module):
    """The shared protocol; continuous models have z ~ N(0, I) and define ``decode``."""

    latent_dim: int
    data_dim: int
    discrete = False

    def prior(self) -> torch.distributions.Distribution:
        """p(z) = N(0, I) as a torch Distribution with event shape (latent_dim,)."""
        zeros = torch.zeros(self.latent_dim, dtype=self.dtype, device=self.device)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for z: (..., batch, latent_dim) -> (..., batch)."""
        return _standard_normal_log_prob(z)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu(z), log sigma(z)), each (..., data_dim): p(x|z) = N(mu(z), diag(sigma(z))^2)."""
        raise NotImplementedError

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z); x: (batch, data_dim), z: (..., batch, latent_dim) -> (..., batch)."""
        return self.log_likelihood_given(x, self.likelihood_params(z))

    def likelihood_params(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All that p(x | z) takes from z, each (..., batch or 1, k): here (mu(z), log sigma(z)). A grid over z
        computes them once per node and reuses them for every x and for finer grids through the same nodes."""
        return self.decode(z)

    def log_likelihood_given(self, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """log p(x | z) from ``likelihood_params(z)``; x: (batch, data_dim) -> (..., batch)."""
        return diag_normal_log_prob(x, *params)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z) -> (..., batch)."""
        return self.log_prior(z) + self.log_likelihood(x, z)

    @torch.no_grad()
    def sample(self, n: int, generator: int | torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: z ~ p(z), then x ~ p(x | z). Returns x: (n, data_dim), z: (n, latent_dim).

        generator: a seed, a torch.Generator (draws on its device), or None (fresh entropy, not reproducible)."""
        g = make_generator(generator)  # an int: a CPU generator, so any device draws the same
        z = torch.randn(n, self.latent_dim, generator=g, dtype=self.dtype, device=g.device).to(self.device)
        loc, log_scale = self.decode(z)
        eps = torch.randn(loc.shape, generator=g, dtype=self.dtype, device=g.device).to(self.device)
        return loc + torch.exp(log_scale) * eps, z

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.parameters()), torch.empty(0)).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self.parameters()), torch.empty(0)).device


class LinearGaussianLVM(LatentVariableModel):
    """x = W z + b + sigma * eps with z, eps ~ N(0, I): p(x) and p(z|x) are Gaussian in closed form.

    W: (data_dim, latent_dim), b: (data_dim,), sigma: a positive scalar (isotropic observation noise).
    """

    def __init__(self, W, b, sigma: float):
        super().__init__()
        W = torch.as_tensor(W)
        if not W.is_floating_point():
            W = W.to(torch.get_default_dtype())
        if W.ndim != 2:
            raise ValueError(f"W must have shape (data_dim, latent_dim), got {tuple(W.shape)}")
        b = torch.as_tensor(b, dtype=W.dtype).reshape(-1)
        if b.shape[0] != W.shape[0]:
            raise ValueError(f"b must have shape ({W.shape[0]},), got {tuple(b.shape)}")
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.W = nn.Parameter(W.clone())
        self.b = nn.Parameter(b.clone())
        self.log_sigma = nn.Parameter(torch.tensor(math.log(float(sigma)), dtype=W.dtype))
        self.data_dim, self.latent_dim = W.shape

    @classmethod
    def random(cls, latent_dim: int = 2, data_dim: int = 2, sigma: float = 0.5, seed: int = 0,
               dtype: torch.dtype = torch.float64) -> LinearGaussianLVM:
        """A model with W ~ N(0, 1/latent_dim) entries and b ~ N(0, 1), reproducible from the seed."""
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(data_dim, latent_dim, generator=g, dtype=dtype) / math.sqrt(latent_dim)
        b = torch.randn(data_dim, generator=g, dtype=dtype)
        return cls(W, b, sigma)

    @property
    def sigma(self) -> torch.Tensor:
        return torch.exp(self.log_sigma)

    def decode(self, z):
        loc = z @ self.W.T + self.b  # (..., batch, data_dim)
        return loc, self.log_sigma.expand(loc.shape)

    def closed_form_log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; b, W W^T + sigma^2 I) -> (batch,)."""
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(self.data_dim, dtype=self.W.dtype, device=self.W.device)
        return MultivariateNormal(self.b, scale_tril=torch.linalg.cholesky(cov)).log_prob(x)

    def closed_form_posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """p(z | x) = N(S W^T (x - b) / sigma^2, S) with S = (I + W^T W / sigma^2)^-1; batch shape (batch,)."""
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype, device=self.W.device)
        precision = eye + self.W.T @ self.W / self.sigma**2
        precision_chol = torch.linalg.cholesky(precision)
        cov = torch.cholesky_inverse(precision_chol)
        loc = (x - self.b) @ self.W @ cov / self.sigma**2  # (batch, latent_dim); S is symmetric
        return MultivariateNormal(loc, scale_tril=torch.linalg.cholesky(cov))


class SeedLVM(LatentVariableModel):
    """The notes' model: mu(z) = sigmoid(A z + c), Sigma(z) = noise_scale^2 * diag(exp(sigmoid(B z + d))).

    A, B: (data_dim, latent_dim); c, d: (data_dim,). Drawn from ``seed`` unless given. ``noise_scale = 1`` is the notes
    exactly; there the noise (variance between 1 and e) swamps the mean (inside the unit square), so p(z|x) is close to
    the prior. Smaller ``noise_scale`` sharpens and bends the posterior.
    """

    def __init__(self, latent_dim: int = 1, seed: int = 0, noise_scale: float = 1.0, data_dim: int = 2,
                 A=None, B=None, c=None, d=None, dtype: torch.dtype = torch.float64):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {latent_dim}")
        if not noise_scale > 0:
            raise ValueError(f"noise_scale must be positive, got {noise_scale}")
        g = torch.Generator().manual_seed(seed)
        shapes = {"A": (data_dim, latent_dim), "B": (data_dim, latent_dim), "c": (data_dim,), "d": (data_dim,)}
        # A spreads mu(z) across the unit square as z moves through the prior's range
        scales = {"A": 3.0, "B": 2.0, "c": 1.0, "d": 1.0}
        given = {"A": A, "B": B, "c": c, "d": d}
        for name, shape in shapes.items():
            drawn = scales[name] * torch.randn(shape, generator=g, dtype=dtype)
            value = drawn if given[name] is None else torch.as_tensor(given[name], dtype=dtype).reshape(shape)
            setattr(self, name, nn.Parameter(value.clone()))
        self.latent_dim, self.data_dim = latent_dim, data_dim
        self.noise_scale = float(noise_scale)

    def decode(self, z):
        loc = torch.sigmoid(z @ self.A.T + self.c)
        # log sigma = log noise_scale + sigmoid(B z + d) / 2, since Sigma = noise_scale^2 exp(sigmoid(.))
        log_scale = math.log(self.noise_scale) + 0.5 * torch.sigmoid(z @ self.B.T + self.d)
        return loc, log_scale


class MLPLVM(LatentVariableModel):
    """p(x|z) = N(mu_theta(z), diag(sigma_theta(z))^2) with one MLP emitting both mu and log sigma.

    log sigma is squashed into [log min_scale, log max_scale] so that the likelihood stays finite while training.
    Three hidden layers by default: with two, train_lvm's defaults left two moons' held-out log-likelihood ~0.05
    nats lower and one seed in five below a 10-component mixture's minus 0.05 (benchmarks/results/deep.md).
    """

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 64, depth: int = 3,
                 activation: str = "tanh", min_scale: float = 1e-3, max_scale: float = 10.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if depth < 1 or hidden < 1:
            raise ValueError("depth and hidden must be at least 1")
        if not 0 < min_scale < 1 < max_scale:
            raise ValueError(f"need 0 < min_scale < 1 < max_scale, got {min_scale}, {max_scale}")
        self.latent_dim, self.data_dim = latent_dim, data_dim
        self.config = dict(latent_dim=latent_dim, data_dim=data_dim, hidden=hidden, depth=depth,
                           activation=activation, min_scale=min_scale, max_scale=max_scale)
        self.log_min_scale, self.log_max_scale = math.log(min_scale), math.log(max_scale)
        # initial theta is a function of the seed alone
        g = torch.Generator().manual_seed(seed)
        self.net = mlp([latent_dim] + [hidden] * depth + [2 * data_dim], activation, g, dtype)

    def decode(self, z):
        out = self.net(z)
        loc, raw = out[..., : self.data_dim], out[..., self.data_dim:]
        span = self.log_max_scale - self.log_min_scale
        # the offset puts sigma = 1 at raw = 0, so an untrained model starts with unit noise
        offset = math.log(-self.log_min_scale / self.log_max_scale)
        return loc, self.log_min_scale + span * torch.sigmoid(raw + offset)


class GaussianMixtureLVM(LatentVariableModel):
    """z ~ Categorical(pi) (one-hot, latent_dim = K), x | z = k ~ N(mu_k, Sigma_k).

    weights: (K,), means: (K, data_dim), covariances: (K, data_dim, data_dim) full matrices.
    """

    discrete = True

    def __init__(self, weights, means, covariances, dtype: torch.dtype = torch.float64):
        super().__init__()
        weights = torch.as_tensor(weights, dtype=dtype)
        means = torch.as_tensor(means, dtype=dtype)
        covariances = torch.as_tensor(covariances, dtype=dtype)
        K, D = means.shape
        if weights.shape != (K,) or covariances.shape != (K, D, D):
            raise ValueError("weights, means, covariances must have shapes (K,), (K, D), (K, D, D)")
        self.log_weights = nn.Parameter(torch.log(weights / weights.sum()))
        self.means = nn.Parameter(means.clone())
        self.scale_tril = nn.Parameter(torch.linalg.cholesky(covariances))
        self.latent_dim, self.data_dim = K, D

    @classmethod
    def from_sklearn(cls, gm) -> GaussianMixtureLVM:
        """Convert a fitted sklearn GaussianMixture of any covariance_type to full covariances."""
        K, D = gm.means_.shape
        cov = torch.as_tensor(gm.covariances_, dtype=torch.float64)
        if gm.covariance_type == "full":
            full = cov
        elif gm.covariance_type == "tied":
            full = cov.expand(K, D, D)
        elif gm.covariance_type == "diag":
            full = torch.diag_embed(cov)
        elif gm.covariance_type == "spherical":
            full = cov[:, None, None] * torch.eye(D, dtype=torch.float64)
        else:
            raise ValueError(f"unknown covariance_type {gm.covariance_type!r}")
        return cls(gm.weights_, gm.means_, full)

    @property
    def n_components(self) -> int:
        return self.latent_dim

    def prior(self) -> OneHotCategorical:
        return OneHotCategorical(logits=self.log_weights)

    def log_prior(self, z):
        # where, not the product alone: a component of weight 0 would give 0 * -inf = nan for every other z
        return torch.where(z != 0, z * torch.log_softmax(self.log_weights, -1), 0.0).sum(-1)

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mu_k, Sigma_k) for every k: x (batch, D) -> (batch, K)."""
        return MultivariateNormal(self.means, scale_tril=self.scale_tril).log_prob(x[..., None, :])

    def log_likelihood(self, x, z):
        # z is one-hot, so the sum picks the chosen component's log density (where: 0 * -inf would be nan)
        return torch.where(z != 0, z * self.component_log_prob(x), 0.0).sum(-1)

    def enumerate_latents(self) -> torch.Tensor:
        """All values of z: (K, 1, K) one-hot rows, broadcastable against (batch,) points."""
        return torch.eye(self.latent_dim, dtype=self.means.dtype, device=self.means.device)[:, None, :]

    def closed_form_log_marginal(self, x):
        """log p(x) = logsumexp_k (log pi_k + log N(x; mu_k, Sigma_k)) -> (batch,)."""
        return torch.logsumexp(torch.log_softmax(self.log_weights, -1) + self.component_log_prob(x), dim=-1)

    @torch.no_grad()
    def sample(self, n, generator=None):
        g = make_generator(generator)  # an int: a CPU generator, so any device draws the same
        probs = torch.softmax(self.log_weights, -1).to(g.device)
        k = torch.multinomial(probs, n, replacement=True, generator=g).to(self.device)
        eps = torch.randn(n, self.data_dim, generator=g, dtype=self.means.dtype, device=g.device).to(self.device)
        x = self.means[k] + (self.scale_tril[k] @ eps[..., None])[..., 0]
        return x, torch.nn.functional.one_hot(k, self.latent_dim).to(x.dtype)


# ---------------------------------------------------------------------------------------------- hard posteriors
# Two-dimensional latents whose posteriors defeat a Gaussian q on purpose: curved, scale-varying, two-moded. Each is
# a plain Gaussian-likelihood model (decode), so exact p(x) by quadrature, the estimators and the pages apply as is.


def _positive(name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


class BananaLVM(LatentVariableModel):
    """A curved posterior: z ~ N(0, I), x = (z1, z2 + curvature * z1^2) + (noise[0], noise[1]) * eps.

    x2 pins z2 + curvature * z1^2 to a thin band (noise[1] small) while x1 says little about z1 (noise[0] large), so
    p(z|x) is a crescent along the parabola z2 = x2 - curvature * z1^2: no Gaussian bends with it.
    """

    def __init__(self, curvature: float = 1.0, noise: tuple[float, float] = (2.0, 0.2),
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.latent_dim = self.data_dim = 2
        self.curvature = nn.Parameter(torch.tensor(float(curvature), dtype=dtype))
        self.log_noise = nn.Parameter(torch.log(torch.tensor([_positive("noise[0]", noise[0]),
                                                              _positive("noise[1]", noise[1])], dtype=dtype)))

    def decode(self, z):
        loc = torch.stack([z[..., 0], z[..., 1] + self.curvature * z[..., 0].pow(2)], -1)  # (..., 2)
        return loc, self.log_noise.expand(loc.shape)


class FunnelLVM(LatentVariableModel):
    """Neal's funnel as the prior, observed weakly: z1 ~ N(0, prior_scale^2), z2 | z1 ~ N(0, exp(z1)),
    x = z + (noise[0], noise[1]) * eps.

    The scale of z2 is exp(z1 / 2): a wide mouth for large z1 and a narrow neck for small z1. With noisy x the
    posterior keeps the funnel; a Gaussian q cannot be wide and narrow at once, so it misses the neck (ELBO) or the
    mouth (importance weights with heavy tails).
    """

    def __init__(self, prior_scale: float = 2.0, noise: tuple[float, float] = (3.0, 1.0),
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.latent_dim = self.data_dim = 2
        self.log_prior_scale = nn.Parameter(torch.tensor(math.log(_positive("prior_scale", prior_scale)),
                                                         dtype=dtype))
        self.log_noise = nn.Parameter(torch.log(torch.tensor([_positive("noise[0]", noise[0]),
                                                              _positive("noise[1]", noise[1])], dtype=dtype)))

    def prior(self) -> torch.distributions.Distribution:
        raise NotImplementedError("the funnel prior is no torch Distribution: use log_prior(z) and sample(n)")

    def log_prior(self, z):
        # log N(z1; 0, s^2) + log N(z2; 0, exp(z1)), the second written with log sd = z1 / 2
        s = self.log_prior_scale
        return (-0.5 * (z[..., 0] * torch.exp(-s)).pow(2) - s - 0.5 * z[..., 1].pow(2) * torch.exp(-z[..., 0])
                - 0.5 * z[..., 0] - LOG_2PI)

    def decode(self, z):
        return z, self.log_noise.expand(z.shape)

    @torch.no_grad()
    def sample(self, n: int, generator: int | torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z1 = s eps1, z2 = exp(z1 / 2) eps2, then x = z + noise * eps. Returns x: (n, 2), z: (n, 2)."""
        g = make_generator(generator)
        eps = torch.randn(n, 2, generator=g, dtype=self.dtype).to(self.device)
        z1 = torch.exp(self.log_prior_scale) * eps[:, 0]
        z = torch.stack([z1, torch.exp(0.5 * z1) * eps[:, 1]], -1)
        noise = torch.randn(n, 2, generator=g, dtype=self.dtype).to(self.device)
        return z + torch.exp(self.log_noise) * noise, z


class BimodalLVM(LatentVariableModel):
    """Two posterior modes: z ~ N(0, I), x = (z1^2, z2) + noise * eps.

    x1 sees z1 only through its square, so z1 = +sqrt(x1) and z1 = -sqrt(x1) explain x equally well: p(z|x) has two
    mirror-image modes of equal mass. A Gaussian q fitted by the ELBO sits on one of them (a gap of about log 2 nats);
    one wide enough for both puts most of its mass between them.
    """

    def __init__(self, noise: tuple[float, float] = (0.5, 1.0), dtype: torch.dtype = torch.float64):
        super().__init__()
        self.latent_dim = self.data_dim = 2
        self.log_noise = nn.Parameter(torch.log(torch.tensor([_positive("noise[0]", noise[0]),
                                                              _positive("noise[1]", noise[1])], dtype=dtype)))

    def decode(self, z):
        loc = torch.stack([z[..., 0].pow(2), z[..., 1]], -1)  # (..., 2)
        return loc, self.log_noise.expand(loc.shape)


@dataclass(frozen=True)
class HardPosterior:
    """A named hard-posterior model and a point x where its posterior is awkward (the page's default)."""

    build: Callable[[], LatentVariableModel]
    x: tuple[float, float]
    description: str


# The defaults keep each posterior inside what the adaptive quadrature resolves to 1e-4 nats (tests pin it against
# grids in coordinates of their own): a funnel observed more weakly (noise 3 on both axes) puts mass deep in the
# neck, where the whitened grid's trapezoid rule loses 2e-3 nats (3e-2 with prior_scale 3).
HARD_POSTERIORS: dict[str, HardPosterior] = {
    "banana": HardPosterior(BananaLVM, (0.0, 1.0),
                            "a crescent along z2 = 1 - z1^2: no Gaussian bends with it"),
    "funnel": HardPosterior(FunnelLVM, (-2.0, 0.0),
                            "Neal's funnel: z2's scale exp(z1 / 2) shrinks to a neck as z1 falls"),
    "bimodal": HardPosterior(BimodalLVM, (2.0, 0.0),
                             "z1 = +sqrt(2) or -sqrt(2): two mirror-image modes of equal mass"),
}


def hard_posterior(name: str) -> tuple[LatentVariableModel, torch.Tensor]:
    """(model, x: (1, 2)) for a name in HARD_POSTERIORS, x its default point."""
    if name not in HARD_POSTERIORS:
        raise ValueError(f"unknown hard posterior {name!r}: choose one of {', '.join(HARD_POSTERIORS)}")
    entry = HARD_POSTERIORS[name]
    model = entry.build()
    return model, torch.tensor([entry.x], dtype=model.dtype)


# ------------------------------------------------------------------------------------------- binary data (images)
class BernoulliMLPLVM(LatentVariableModel):
    """Binary data, e.g. images: z ~ N(0, I), p(x | z) = prod_j Bernoulli(x_j; sigmoid(l_theta(z)_j)).

    One MLP emits the logits l_theta(z): (..., data_dim); every log-probability is computed from the logits
    (log sigmoid(l) = -softplus(-l)), never from probabilities. x holds 0/1 values (float). The defaults fit
    scikit-learn's 8 x 8 digits (``datasets.load_binarized_digits``): with train_lvm's defaults, about -17 nats per
    held-out image against the independent-pixel model's -25.2 (benchmarks/results/digits.md).
    """

    def __init__(self, latent_dim: int = 2, data_dim: int = 64, hidden: int = 128, depth: int = 2,
                 activation: str = "tanh", seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        if latent_dim < 1 or data_dim < 1:
            raise ValueError(f"latent_dim and data_dim must be at least 1, got {latent_dim}, {data_dim}")
        self.latent_dim, self.data_dim = latent_dim, data_dim
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if depth < 1 or hidden < 1:
            raise ValueError("depth and hidden must be at least 1")
        self.config = dict(latent_dim=latent_dim, data_dim=data_dim, hidden=hidden, depth=depth, activation=activation)
        # initial theta is a function of the seed alone
        g = torch.Generator().manual_seed(seed)
        self.net = mlp([latent_dim] + [hidden] * depth + [data_dim], activation, g, dtype)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """l_theta(z): (..., latent_dim) -> (..., data_dim); p(x_j = 1 | z) = sigmoid(l_j)."""
        return self.net(z)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] = sigmoid(l_theta(z)): (..., data_dim), each pixel's probability of being 1 (for display)."""
        return torch.sigmoid(self.logits(z))

    def likelihood_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(l_theta(z), sum_j softplus(l_j)): (..., batch or 1, data_dim) and (..., batch or 1)."""
        logits = self.logits(z)
        return logits, nn.functional.softplus(logits).sum(-1)  # log(1 + e^l) per pixel, summed

    def log_likelihood_given(self, x: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """log p(x | z) = sum_j x_j l_j - softplus(l_j), l = l_theta(z); x: (batch, data_dim), params from
        ``likelihood_params(z)`` with z (..., batch or 1, latent_dim) -> (..., batch).

        When z is shared by the whole batch (its batch axis is 1, as on a common grid of z), the sum over pixels is
        one matrix product, logits (..., data_dim) @ x^T, and no (..., batch, data_dim) tensor is formed.
        """
        logits, log_norm = params
        dtype = torch.promote_types(logits.dtype, x.dtype)
        logits, log_norm = logits.to(dtype), log_norm.to(dtype)
        if logits.shape[-2] == 1 and x.shape[0] > 1:
            return logits[..., 0, :] @ x.T - log_norm  # (..., batch)
        return (x * logits).sum(-1) - log_norm

    @torch.no_grad()
    def sample(self, n: int, generator: int | torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling: z ~ N(0, I), then x_j ~ Bernoulli(sigmoid(l_j)). Returns x: (n, data_dim) of 0/1,
        z: (n, latent_dim)."""
        g = make_generator(generator)
        z = torch.randn(n, self.latent_dim, generator=g, dtype=self.dtype).to(self.device)
        logits = self.logits(z)  # (n, data_dim)
        u = torch.rand(logits.shape, generator=g, dtype=self.dtype).to(self.device)
        # x_j = 1 with probability sigmoid(l_j), compared in log space: log u < log sigmoid(l)
        return (torch.log(u) < nn.functional.logsigmoid(logits)).to(self.dtype), z


def independent_pixel_log_likelihood(X_train, X_test, alpha: float = 1.0) -> torch.Tensor:
    """The baseline without a latent: every pixel its own Bernoulli, p_j = (count_j + alpha) / (n + 2 alpha) fit on
    X_train (Laplace smoothing keeps a pixel never seen on from giving log 0), and

        log p(x) = sum_j x_j log p_j + (1 - x_j) log(1 - p_j)

    X_train: (n, data_dim), X_test: (m, data_dim) of 0/1 -> (m,) in float64, nats per image.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    X_train = torch.as_tensor(X_train, dtype=torch.float64)
    X_test = torch.as_tensor(X_test, dtype=torch.float64)
    counts = X_train.sum(0)  # (data_dim,)
    log_denominator = math.log(X_train.shape[0] + 2 * alpha)
    log_on = torch.log(counts + alpha) - log_denominator
    log_off = torch.log(X_train.shape[0] - counts + alpha) - log_denominator
    return X_test @ log_on + (1 - X_test) @ log_off
