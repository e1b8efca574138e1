"""lvm_core.models against independent references: scipy's Gaussians, Gaussian conditioning, sklearn, numpy formulas."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats
from sklearn.mixture import GaussianMixture
from sklearn.naive_bayes import BernoulliNB

from lvm_core.datasets import load_binarized_digits
from lvm_core.estimators import exact_log_marginal
from lvm_core.models import (
    MLPLVM,
    BernoulliMLPLVM,
    GaussianMixtureLVM,
    LinearGaussianLVM,
    SeedLVM,
    independent_pixel_log_likelihood,
    mlp,
)
from lvm_core.training import train_lvm


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _linear(latent_dim: int, data_dim: int = 3, sigma: float = 0.5, seed: int = 0) -> LinearGaussianLVM:
    return LinearGaussianLVM.random(latent_dim, data_dim, sigma=sigma, seed=seed)


def _continuous_models():
    return [_linear(1), _linear(3), SeedLVM(1, seed=1), SeedLVM(2, seed=2, noise_scale=0.2),
            MLPLVM(latent_dim=2, data_dim=3, hidden=16, seed=3), MLPLVM(latent_dim=1, data_dim=2, hidden=8)]


# ------------------------------------------------------------------------------------------------ linear-Gaussian
@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_linear_closed_form_log_marginal_equals_scipy_multivariate_normal(latent_dim):
    model = _linear(latent_dim, data_dim=4, sigma=0.3, seed=latent_dim)
    x, _ = model.sample(20, generator=0)
    x = torch.cat([x, x + 10.0])  # far from the data too
    W, b, sigma = _np(model.W), _np(model.b), model.sigma.item()
    expected = stats.multivariate_normal(b, W @ W.T + sigma**2 * np.eye(4)).logpdf(_np(x))
    np.testing.assert_allclose(_np(model.closed_form_log_marginal(x)), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("latent_dim", [1, 2, 4])
def test_linear_closed_form_posterior_equals_gaussian_conditioning_on_the_joint(latent_dim):
    """(z, x) is jointly Gaussian: mean (0, b), cov [[I, W^T], [W, W W^T + s^2 I]]; condition on x with numpy."""
    model = _linear(latent_dim, data_dim=3, sigma=0.4, seed=7)
    x, _ = model.sample(6, generator=1)
    W, b, s2 = _np(model.W), _np(model.b), model.sigma.item() ** 2
    c_xx = W @ W.T + s2 * np.eye(3)
    gain = np.linalg.solve(c_xx, W).T  # C_zx C_xx^-1: (latent_dim, data_dim)
    mean = (_np(x) - b) @ gain.T  # (batch, latent_dim)
    cov = np.eye(latent_dim) - gain @ W
    posterior = model.closed_form_posterior(x)
    assert posterior.batch_shape == (6,) and posterior.event_shape == (latent_dim,)
    np.testing.assert_allclose(_np(posterior.mean), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(posterior.covariance_matrix), np.broadcast_to(cov, (6, latent_dim, latent_dim)),
                               rtol=1e-10, atol=1e-12)


def test_linear_log_likelihood_equals_scipy_isotropic_normal():
    model = _linear(2, data_dim=3, sigma=0.7, seed=4)
    x, z = model.sample(5, generator=2)
    loc = _np(z) @ _np(model.W).T + _np(model.b)
    expected = stats.norm(loc, 0.7).logpdf(_np(x)).sum(-1)
    np.testing.assert_allclose(_np(model.log_likelihood(x, z)), expected, rtol=1e-10)
    np.testing.assert_allclose(_np(model.log_prior(z)), stats.norm.logpdf(_np(z)).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("model", _continuous_models(), ids=lambda m: f"{type(m).__name__}{m.latent_dim}")
def test_log_densities_broadcast_over_extra_leading_axes_of_z_and_drop_the_last_axis(model):
    batch = 4
    x, _ = model.sample(batch, generator=0)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 2, batch, model.latent_dim, generator=g, dtype=model.dtype)
    lp, ll, lj = model.log_prior(z), model.log_likelihood(x, z), model.log_joint(x, z)
    assert lp.shape == ll.shape == lj.shape == (3, 2, batch)
    assert lj.dtype == x.dtype
    torch.testing.assert_close(lj, lp + ll)
    # each slice of the leading axes is the same computation as a plain (batch, latent_dim) z
    torch.testing.assert_close(ll[2, 1], model.log_likelihood(x, z[2, 1]))
    torch.testing.assert_close(lp[0, 1], model.log_prior(z[0, 1]))
    # the prior Distribution and log_prior agree
    torch.testing.assert_close(model.prior().log_prob(z), lp)


def test_linear_sample_moments_match_closed_form_within_standard_errors():
    model = _linear(2, data_dim=3, sigma=0.5, seed=5)
    n = 40_000
    x, z = model.sample(n, generator=3)
    W, b, s = _np(model.W), _np(model.b), model.sigma.item()
    cov = W @ W.T + s**2 * np.eye(3)
    xs = _np(x)
    # mean: SE = sqrt(C_ii / n)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(xs.mean(0) - b) < 4 * se_mean)
    # covariance of a Gaussian sample: Var(S_ij) ~= (C_ii C_jj + C_ij^2) / n
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(xs.T) - cov) < 4 * se_cov)
    # z ~ N(0, I)
    assert np.all(np.abs(_np(z).mean(0)) < 4 / math.sqrt(n))
    assert np.all(np.abs(_np(z).std(0) - 1) < 4 * math.sqrt(0.5 / n))


@pytest.mark.parametrize("model_fn", [lambda: _linear(2), lambda: SeedLVM(2, seed=3), lambda: MLPLVM(hidden=8),
                                      lambda: _mixture("full")])
def test_sample_is_reproducible_from_a_seed_and_returns_x_and_z_shapes(model_fn):
    model = model_fn()
    x1, z1 = model.sample(7, generator=11)
    x2, z2 = model.sample(7, generator=torch.Generator().manual_seed(11))
    x3, _ = model.sample(7, generator=12)
    assert x1.shape == (7, model.data_dim) and z1.shape == (7, model.latent_dim)
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    assert not torch.equal(x1, x3)


# --------------------------------------------------------------------------------------------------------- seed
def _seed_log_joint_numpy(model: SeedLVM, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The notes' formula, independently: log N(z; 0, I) + log N(x; sigmoid(Az+c), diag(s^2 exp(sigmoid(Bz+d))))."""
    A, B, c, d = (_np(p) for p in (model.A, model.B, model.c, model.d))
    sigmoid = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    mu = sigmoid(z @ A.T + c)
    var = model.noise_scale**2 * np.exp(sigmoid(z @ B.T + d))
    log_lik = -0.5 * ((x - mu) ** 2 / var + np.log(2 * np.pi * var)).sum(-1)
    return stats.norm.logpdf(z).sum(-1) + log_lik


def test_seed_noise_scale_one_is_the_notes_covariance_diag_exp_sigmoid():
    model = SeedLVM(2, seed=4, noise_scale=1.0)
    x, z = model.sample(6, generator=5)
    A, B, c, d = (_np(p) for p in (model.A, model.B, model.c, model.d))
    for xi, zi, ll in zip(_np(x), _np(z), _np(model.log_likelihood(x, z)), strict=True):
        mu = 1 / (1 + np.exp(-(A @ zi + c)))
        sigma = np.diag(np.exp(1 / (1 + np.exp(-(B @ zi + d)))))
        assert ll == pytest.approx(stats.multivariate_normal(mu, sigma).logpdf(xi), rel=1e-12)


def test_seed_variance_lies_between_noise_scale_squared_and_e_times_it():
    model = SeedLVM(2, seed=0, noise_scale=0.3)
    z = 6 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loc, log_scale = model.decode(z)
    var = torch.exp(2 * log_scale)
    assert torch.all((loc >= 0) & (loc <= 1))  # sigmoid, saturating to 0 or 1 in floating point
    assert torch.all((var >= 0.09 * (1 - 1e-12)) & (var <= 0.09 * math.e * (1 + 1e-12)))


@pytest.mark.parametrize("noise_scale", [1.0, 0.2])
def test_seed_log_joint_equals_the_numpy_formula(noise_scale):
    model = SeedLVM(2, seed=6, noise_scale=noise_scale)
    x, z = model.sample(8, generator=6)
    np.testing.assert_allclose(_np(model.log_joint(x, z)), _seed_log_joint_numpy(model, _np(x), _np(z)), rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------- MLP
def test_mlp_scale_stays_inside_min_and_max_scale_and_is_one_at_init_output_zero():
    model = MLPLVM(latent_dim=2, data_dim=3, hidden=8, min_scale=0.01, max_scale=5.0, seed=1)
    z = 50 * torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    loc, log_scale = model.decode(z)
    assert loc.shape == log_scale.shape == (500, 3)
    assert torch.all(log_scale >= math.log(0.01) - 1e-5) and torch.all(log_scale <= math.log(5.0) + 1e-5)
    with torch.no_grad():
        model.net[-1].weight.zero_()
        model.net[-1].bias.zero_()
    torch.testing.assert_close(model.decode(z)[1], torch.zeros(500, 3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_initial_theta_follows_pytorchs_default_linear_init_from_its_own_generator(dtype):
    # the reference: nn.Linear's own reset_parameters, drawing from torch's global generator seeded with the seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        reference = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                        torch.nn.Tanh(), torch.nn.Linear(16, 4)).to(dtype)
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=16, depth=2, seed=5, dtype=dtype)
    for (name, a), b in zip(model.net.state_dict().items(), reference.state_dict().values(), strict=True):
        assert a.dtype == dtype and torch.equal(a, b), name


def test_mlp_initial_theta_is_a_function_of_the_seed_alone():
    torch.manual_seed(123)
    a = MLPLVM(seed=5)
    torch.manual_seed(456)
    b = MLPLVM(seed=5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(MLPLVM(seed=6).parameters()), next(a.parameters()))
    state = torch.get_rng_state()
    MLPLVM(seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # and building a model leaves the global RNG alone


# --------------------------------------------------------------------------------------------------------- mixture
def _mixture_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(150, 2)) @ [[1.0, 0.6], [0.0, 0.5]],
                           rng.normal(size=(100, 2)) * 0.5 + [4.0, 1.0], rng.normal(size=(80, 2)) + [0.0, 5.0]])


def _fit(covariance_type: str) -> GaussianMixture:
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(_mixture_data())


def _mixture(covariance_type: str) -> GaussianMixtureLVM:
    return GaussianMixtureLVM.from_sklearn(_fit(covariance_type))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mixture_from_sklearn_log_marginal_equals_score_samples(covariance_type):
    gm = _fit(covariance_type)
    model = GaussianMixtureLVM.from_sklearn(gm)
    assert model.latent_dim == model.n_components == 3 and model.discrete
    X = np.concatenate([_mixture_data()[::10], [[1e3, 1e3], [-50.0, 3.0]]])
    expected = gm.score_samples(X)
    got = _np(model.closed_form_log_marginal(torch.as_tensor(X)))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)
    # the sum over the enumerated one-hot z is the same number
    summed = torch.logsumexp(model.log_joint(torch.as_tensor(X), model.enumerate_latents()), dim=0)
    np.testing.assert_allclose(_np(summed), expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_mixture_sample_frequencies_and_component_means_match_within_standard_errors(covariance_type):
    gm = _fit(covariance_type)
    model = GaussianMixtureLVM.from_sklearn(gm)
    n = 30_000
    x, z = model.sample(n, generator=4)
    assert z.shape == (n, 3) and torch.all(z.sum(-1) == 1)
    freq = _np(z).mean(0)
    assert np.all(np.abs(freq - gm.weights_) < 4 * np.sqrt(gm.weights_ * (1 - gm.weights_) / n))
    labels = _np(z).argmax(-1)
    covs = _np(model.scale_tril @ model.scale_tril.mT)
    for j in range(3):
        xj = _np(x)[labels == j]
        se = np.sqrt(np.diag(covs[j]) / len(xj))
        assert np.all(np.abs(xj.mean(0) - gm.means_[j]) < 4 * se)


def test_mixture_one_hot_log_prior_and_log_likelihood_pick_the_chosen_component():
    gm = _fit("full")
    model = GaussianMixtureLVM.from_sklearn(gm)
    X = torch.as_tensor(_mixture_data()[:5])
    z = model.enumerate_latents()  # (K, 1, K)
    lj = model.log_joint(X, z)  # (K, batch)
    assert lj.shape == (3, 5)
    expected = np.stack([np.log(gm.weights_[j]) + stats.multivariate_normal(gm.means_[j], gm.covariances_[j])
                         .logpdf(_np(X)) for j in range(3)])
    np.testing.assert_allclose(_np(lj), expected, rtol=1e-10)
    torch.testing.assert_close(model.prior().log_prob(z.expand(3, 5, 3)), model.log_prior(z).expand(3, 5))


def test_mixture_with_a_zero_weight_component_gives_finite_log_joint_for_the_others():
    model = GaussianMixtureLVM([0.5, 0.5, 0.0], [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], torch.eye(2).expand(3, 2, 2))
    x = torch.zeros(2, 2, dtype=torch.float64)
    lj = model.log_joint(x, model.enumerate_latents())  # (K, batch)
    assert torch.all(torch.isfinite(lj[:2])) and torch.all(lj[2] == -math.inf)
    torch.testing.assert_close(torch.logsumexp(lj, 0), model.closed_form_log_marginal(x))


# ------------------------------------------------------------------------------------------------ hard posteriors
from lvm_core.models import HARD_POSTERIORS, BananaLVM, BimodalLVM, FunnelLVM, hard_posterior  # noqa: E402


def _brute_force_log_marginal(log_f, lim: float, n: int) -> float:
    """log of the Riemann sum of exp(log_f) over a uniform n x n grid on [-lim, lim]^2 (log_f: (m, 2) -> (m,))."""
    g = np.linspace(-lim, lim, n)
    u = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    from scipy.special import logsumexp

    return float(logsumexp(log_f(u)) + 2 * np.log(g[1] - g[0]))


def _hard_log_joint_numpy(name: str, model, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Each hard model's density written out independently with scipy (z: (m, 2), one x)."""
    if name == "banana":
        noise = np.exp(_np(model.log_noise))
        c = model.curvature.item()
        return (stats.norm.logpdf(z).sum(-1) + stats.norm.logpdf(x[0], z[:, 0], noise[0])
                + stats.norm.logpdf(x[1], z[:, 1] + c * z[:, 0] ** 2, noise[1]))
    if name == "funnel":
        s, noise = float(np.exp(_np(model.log_prior_scale))), np.exp(_np(model.log_noise))
        return (stats.norm.logpdf(z[:, 0], 0, s) + stats.norm.logpdf(z[:, 1], 0, np.exp(z[:, 0] / 2))
                + stats.norm.logpdf(x[0], z[:, 0], noise[0]) + stats.norm.logpdf(x[1], z[:, 1], noise[1]))
    noise = np.exp(_np(model.log_noise))
    return (stats.norm.logpdf(z).sum(-1) + stats.norm.logpdf(x[0], z[:, 0] ** 2, noise[0])
            + stats.norm.logpdf(x[1], z[:, 1], noise[1]))


@pytest.mark.parametrize("name", list(HARD_POSTERIORS))
def test_hard_model_log_joint_equals_the_scipy_formula_and_broadcasts(name):
    model, x = hard_posterior(name)
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    got = model.log_joint(x, z[:, None, :])[:, 0]
    np.testing.assert_allclose(_np(got), _hard_log_joint_numpy(name, model, _np(x[0]), _np(z)), rtol=1e-12)
    assert model.log_joint(x, z[:, None, None, :].expand(7, 3, 1, 2)).shape == (7, 3, 1)


@pytest.mark.parametrize("name", ["banana", "bimodal"])
def test_hard_model_quadrature_matches_a_brute_force_grid_to_1e_4_nats(name):
    model, x = hard_posterior(name)
    x = torch.cat([x, x + torch.tensor([[0.7, -0.5]], dtype=torch.float64)])
    for i in range(2):
        xi = _np(x[i])
        expected = _brute_force_log_marginal(lambda u: _hard_log_joint_numpy(name, model, xi, u), 9.0, 1601)  # noqa: B023
        assert float(exact_log_marginal(model, x[i:i + 1])[0]) == pytest.approx(expected, abs=1e-4)


def test_funnel_quadrature_matches_a_non_centred_grid_to_1e_4_nats():
    """The funnel integrated in the coordinates that straighten it, z1 = s a, z2 = exp(z1 / 2) v with a, v ~ N(0, 1):
    p(x) = E_{a, v}[p(x | z)], a smooth integrand a uniform grid resolves; the neck no longer matters."""
    model, x = hard_posterior("funnel")
    x = torch.cat([x, torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)])
    s, noise = float(np.exp(_np(model.log_prior_scale))), np.exp(_np(model.log_noise))
    for i in range(3):
        xi = _np(x[i])

        def log_f(u):
            z1, z2 = s * u[:, 0], np.exp(s * u[:, 0] / 2) * u[:, 1]
            return (stats.norm.logpdf(u).sum(-1) + stats.norm.logpdf(xi[0], z1, noise[0])  # noqa: B023
                    + stats.norm.logpdf(xi[1], z2, noise[1]))  # noqa: B023

        expected = _brute_force_log_marginal(log_f, 10.0, 1601)
        assert float(exact_log_marginal(model, x[i:i + 1])[0]) == pytest.approx(expected, abs=1e-4)


def test_funnel_samples_follow_neals_funnel():
    model = FunnelLVM(prior_scale=2.0)
    x, z = model.sample(20_000, generator=3)
    assert stats.kstest(_np(z[:, 0]) / 2.0, "norm").pvalue > 1e-3
    assert stats.kstest(_np(z[:, 1] * torch.exp(-z[:, 0] / 2)), "norm").pvalue > 1e-3
    assert stats.kstest(_np(x[:, 1] - z[:, 1]) / 1.0, "norm").pvalue > 1e-3  # the default noise on x2 is 1
    with pytest.raises(NotImplementedError, match="log_prior"):
        model.prior()


@pytest.mark.parametrize("build", [BananaLVM, BimodalLVM, FunnelLVM])
def test_hard_model_sample_is_reproducible_and_returns_x_and_z(build):
    model = build()
    a, b = model.sample(5, generator=1), model.sample(5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a[0].shape == (5, 2) and a[1].shape == (5, 2)
    assert not torch.equal(a[0], model.sample(5, generator=2)[0])


def test_hard_posterior_registry_builds_each_model_with_its_point_and_refuses_unknown_names():
    for name, entry in HARD_POSTERIORS.items():
        model, x = hard_posterior(name)
        assert model.latent_dim == model.data_dim == 2 and x.shape == (1, 2) and entry.description
    with pytest.raises(ValueError, match="banana, funnel, bimodal"):
        hard_posterior("donut")
    for bad in (dict(noise=(0.0, 1.0)), dict(noise=(1.0, math.nan))):
        with pytest.raises(ValueError, match="positive"):
            BananaLVM(**bad)
# ------------------------------------------------------------------------------------------------------- Bernoulli
def _binary(shape, seed=0, p=0.4) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < p).double()


def test_bernoulli_log_likelihood_equals_torch_bernoulli_and_scipy():
    model = BernoulliMLPLVM(latent_dim=2, data_dim=10, hidden=16, seed=1, dtype=torch.float64)
    with torch.no_grad():  # larger weights: logits far from 0, where a probability-space formula would lose digits
        model.net[-1].weight.mul_(60.0)
    x = _binary((5, 10))
    z = 2 * torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    logits = model.logits(z)  # (3, 5, 10)
    assert logits.abs().max() > 20
    ours = model.log_likelihood(x, z)
    assert ours.shape == (3, 5)
    by_torch = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, by_torch, rtol=1e-12, atol=1e-10)
    by_scipy = stats.bernoulli.logpmf(_np(x), special.expit(_np(logits))).sum(-1)
    finite = np.isfinite(by_scipy)  # scipy works with probabilities: a logit of 40 rounds to p = 1 and log 0
    np.testing.assert_allclose(_np(ours)[finite], by_scipy[finite], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model.log_joint(x, z), ours + model.log_prior(z))


def test_bernoulli_shared_z_path_equals_the_per_point_path():
    # a z shared by the batch (batch axis 1) goes through the matrix product; it must equal the broadcast sum
    model = BernoulliMLPLVM(latent_dim=2, data_dim=64, hidden=32, seed=0, dtype=torch.float64)
    x = _binary((6, 64), seed=3)
    z = torch.randn(4, 7, 1, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    shared = model.log_likelihood(x, z)
    assert shared.shape == (4, 7, 6)
    torch.testing.assert_close(shared, model.log_likelihood(x, z.expand(4, 7, 6, 2)), rtol=1e-12, atol=1e-10)
    one = model.log_likelihood(x[:1], z[:, :, 0])  # one image against (4, 7) z values
    torch.testing.assert_close(one, shared[..., 0], rtol=1e-12, atol=1e-10)


def test_bernoulli_samples_are_binary_reproducible_and_match_the_pixel_probabilities():
    model = BernoulliMLPLVM(seed=3)
    x, z = model.sample(20_000, generator=0)
    assert x.shape == (20_000, 64) and z.shape == (20_000, 2) and x.dtype == torch.float32
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    x2, z2 = model.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(z, z2)
    assert not torch.equal(model.sample(100, generator=1)[0], x[:100])
    # given z, x_j - sigmoid(l_j(z)) has mean 0 and variance <= 1/4: the pixel means agree within 5 standard errors
    gap = (x - model.mean(z)).double().mean(0)
    assert gap.abs().max() < 5 * 0.5 / math.sqrt(20_000), gap.abs().max()
    assert abs(float(z.mean())) < 5 / math.sqrt(40_000) and abs(float(z.var()) - 1) < 5 * math.sqrt(2 / 40_000)


def test_bernoulli_initial_theta_is_the_mlp_builders_from_the_seed_alone():
    state = torch.get_rng_state()
    model = BernoulliMLPLVM(seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # torch's global generator untouched
    net = mlp([2, 128, 128, 64], "tanh", torch.Generator().manual_seed(2), torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(model.net.parameters(), net.parameters(), strict=True))


def test_independent_pixel_baseline_equals_sklearn_bernoulli_naive_bayes_with_one_class():
    X_train, X_test, _, _ = load_binarized_digits()
    for alpha in (1.0, 0.5):
        ours = independent_pixel_log_likelihood(X_train, X_test, alpha=alpha)
        nb = BernoulliNB(alpha=alpha, binarize=None).fit(X_train, np.zeros(len(X_train)))
        np.testing.assert_allclose(_np(ours), nb.predict_joint_log_proba(X_test)[:, 0], rtol=1e-10)
    with pytest.raises(ValueError, match="alpha"):
        independent_pixel_log_likelihood(X_train, X_test, alpha=0.0)


def _bernoulli_brute_force(model, x: np.ndarray, box: float = 7.0, m: int = 401) -> tuple[np.ndarray, np.ndarray]:
    """log p(x) by the trapezoid rule on a fixed m x m grid over [-box, box]^2, from the decoder's logits and scipy
    alone; also the same rule on every other node, whose difference estimates the grid's own error. -> (batch,) x 2."""
    axis = np.linspace(-box, box, m)
    z1, z2 = np.meshgrid(axis, axis, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()], -1)  # (m * m, 2)
    with torch.no_grad():
        logits = model.logits(torch.from_numpy(z)).numpy()  # (m * m, 64)
    log_off = special.log_expit(-logits)  # log(1 - sigmoid(l)); log sigmoid(l) = l + log(1 - sigmoid(l))
    log_f = x @ (logits + log_off).T + (1 - x) @ log_off.T  # (batch, m * m)
    log_f = (log_f + stats.norm.logpdf(z).sum(-1)).reshape(-1, m, m)
    peak = log_f.max(axis=(1, 2), keepdims=True)
    f = np.exp(log_f - peak)

    def rule(f, h):
        return np.log(integrate.trapezoid(integrate.trapezoid(f, dx=h, axis=2), dx=h, axis=1)) + peak[:, 0, 0]

    h = axis[1] - axis[0]
    return rule(f, h), rule(f[:, ::2, ::2], 2 * h)


@pytest.mark.parametrize("steps", [0, 300])
def test_bernoulli_exact_log_marginal_equals_an_independent_brute_force_grid(steps):
    # an untrained decoder (broad posteriors) and one trained briefly on the digits (sharper, bent posteriors)
    X_train, X_test, _, _ = load_binarized_digits()
    model = BernoulliMLPLVM(hidden=32, seed=0, dtype=torch.float64)
    if steps:
        train_lvm(model, X_train, objective="iwae", k=4, steps=steps, seed=0)
    x = X_test[:8].astype(np.float64)
    reference, coarse = _bernoulli_brute_force(model, x)
    grid_error = np.abs(reference - coarse)
    assert grid_error.max() < 1e-6, grid_error  # the reference has converged
    ours = _np(exact_log_marginal(model, torch.from_numpy(x)))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4 + grid_error.max())
