"""Fitting q(z; phi) to p(z|x): per data point phi by stochastic gradient ascent on the ELBO (the notes' inner loop)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from lvm_core.estimators import (
    adapt_latent_grid,
    effective_sample_size,
    elbo,
    exact_log_marginal,
    forward_kl,
    importance_log_weights,
    khat_threshold,
    khat_verdict,
    pareto_khat,
    quadrature_elbo,
    quadrature_kl,
)
from lvm_core.proposals import make_generator, sample

# the one per-point optimiser's defaults, shared by fit_local_posterior, PhiOptimizer and training's inner loop
DEFAULT_STEPS, DEFAULT_LR, DEFAULT_K = 500, 0.1, 8
LR_DECAY_STEPS = 100  # lr_t = lr / (1 + t / LR_DECAY_STEPS): Robbins-Monro decay, so the ELBO's noise floor shrinks


class LocalGaussian(nn.Module):
    """q(z; phi_i) for each data point i: phi = (loc, log_scale), plus a strictly lower-triangular factor for
    full-covariance q. loc, log_scale: (batch, latent_dim); off_diag: (batch, latent_dim, latent_dim)."""

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, full_covariance: bool = False):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.log_scale = nn.Parameter(log_scale.detach().clone())
        self.full_covariance = full_covariance
        d = loc.shape[-1]
        self.off_diag = nn.Parameter(torch.zeros(*loc.shape, d, dtype=loc.dtype, device=loc.device),
                                     requires_grad=full_covariance)
        i = torch.arange(d, device=loc.device)
        # a mask, not torch.tril: tril on tiny tensors can stall for milliseconds in OpenMP when the cores are contended
        self._strictly_lower = (i[:, None] > i[None, :]).to(loc.dtype)

    @classmethod
    def standard(cls, batch: int, latent_dim: int, dtype=torch.float64, device=None, full_covariance=False):
        """phi at the prior: loc 0, scale 1."""
        zeros = torch.zeros(batch, latent_dim, dtype=dtype, device=device)
        return cls(zeros, zeros, full_covariance)

    def scale_tril(self) -> torch.Tensor:
        """(batch, d, d): diag(exp(log_scale)) plus the strictly lower part of off_diag."""
        return torch.diag_embed(torch.exp(self.log_scale)) + self.off_diag * self._strictly_lower

    def distribution(self) -> torch.distributions.Distribution:
        """q as a torch Distribution with batch shape (batch,) and event shape (latent_dim,)."""
        if self.full_covariance:
            # built lower-triangular with a positive diagonal, so the (slow) argument check is skipped
            return MultivariateNormal(self.loc, scale_tril=self.scale_tril(), validate_args=False)
        return Independent(Normal(self.loc, torch.exp(self.log_scale), validate_args=False), 1, validate_args=False)


def make_optimizer(params, name: str, lr: float) -> torch.optim.Optimizer:
    """'adam' or 'sgd' over the given parameters."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


# ------------------------------------------------------------------------------------- the steppable phi optimiser
# grid points per axis for live exact terms on a 2-D latent: the residual stays below ~1e-5 nats even for q far from
# p(z|x) (41 reaches 2e-3 there), at a fraction of the default resolution's cost
LIVE_RESOLUTION_2D = 61
RESIDUAL_TOL = 1e-3  # nats: a larger identity residual means the live grid under q missed part of log p(x, z)
# phi is clamped into this box after every step: a diverging run (SGD with a huge learning rate) stays a finite,
# drawable q instead of overflowing
LOC_LIMIT, LOG_SCALE_LIMITS = 1e3, (-12.0, 6.0)
GRADIENT_ESTIMATORS = ("reparameterisation", "score function", "sticking the landing")


def local_from_distribution(q: torch.distributions.Distribution, full_covariance: bool = False) -> LocalGaussian:
    """phi from a Gaussian q (Independent Normal or MultivariateNormal with batch shape (batch,)), e.g. an encoder's
    output, so per-point optimisation can start where the encoder left off."""
    if isinstance(q, MultivariateNormal):
        tril = q.scale_tril.detach()
        diag = torch.diagonal(tril, dim1=-2, dim2=-1)
        phi = LocalGaussian(q.loc, torch.log(diag), full_covariance)
        if full_covariance:
            with torch.no_grad():
                phi.off_diag.copy_(tril - torch.diag_embed(diag))
        return phi
    base = q.base_dist if isinstance(q, Independent) else q
    return LocalGaussian(base.loc, torch.log(base.scale), full_covariance)


def exact_elbo_and_kl(model, x: torch.Tensor, q: torch.distributions.Distribution,
                      resolution: int | None = None, log_px: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """log p(x), ELBO(q) and KL(q || p(z|x)), each computed exactly, and the identity's residual.

    residual = log p(x) - ELBO - KL, which is 0 in exact arithmetic. With a closed-form posterior (linear-Gaussian)
    the three are independent: log p(x) and the KL in closed form, the ELBO by quadrature under q (1-/2-D latents;
    closed form beyond), so the residual checks all three. Otherwise p(z|x) is known only as p(x, z) / p(x): the KL
    (estimators.quadrature_kl, on a finer grid) uses the exact log p(x), which cancels in the residual, and the
    residual checks the ELBO's quadrature (E_q[log p(x, z)] + H(q)) against the KL's (E_q[log q - log p(x, z)]).
    Each value is (batch,). ``resolution``: grid points per axis of the expectations under q (None: the estimators'
    defaults; LIVE_RESOLUTION_2D suffices for a Gaussian q on a 2-D latent and is several times faster).
    ``log_px``: pass the exact log p(x) when already known (it does not depend on q; at full resolution it is the
    costly part).
    """
    with torch.no_grad():
        log_px = exact_log_marginal(model, x) if log_px is None else log_px
        closed_form = hasattr(model, "closed_form_posterior")
        if model.latent_dim <= 2:
            value = quadrature_elbo(model, x, q, resolution=resolution)
        else:
            value = _linear_gaussian_elbo(model, x, q)
        if closed_form:  # KL between two Gaussians: shares nothing with log p(x) or the ELBO's quadrature
            kl = kl_divergence(_as_mvn(q), model.closed_form_posterior(x))
        else:  # p(z|x) is known only as p(x, z) / p(x): the residual then checks the two quadratures against each other
            kl = quadrature_kl(model, x, q, resolution=resolution, log_px=log_px)
    return {"log_px": log_px, "elbo": value, "kl": kl, "residual": log_px - value - kl}


def _as_mvn(q) -> MultivariateNormal:
    if isinstance(q, MultivariateNormal):
        return q
    return MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))


def _linear_gaussian_elbo(model, x, q) -> torch.Tensor:
    """E_q[log p(x|z)] + E_q[log p(z)] + H(q) for x = W z + b + sigma eps and Gaussian q = N(m, S), in closed form:
    E_q||x - W z - b||^2 = ||x - W m - b||^2 + tr(W S W^T), E_q||z||^2 = ||m||^2 + tr(S). (batch,)."""
    q = _as_mvn(q)
    m, S = q.loc, q.covariance_matrix  # (batch, d), (batch, d, d)
    W, b, sigma = model.W, model.b, model.sigma
    resid = x - m @ W.T - b  # (batch, D)
    tr_wsw = torch.einsum("ij,bjk,ik->b", W, S, W)
    expected_loglik = -0.5 * (x.shape[-1] * math.log(2 * math.pi * sigma**2) + (resid.pow(2).sum(-1) + tr_wsw)
                              / sigma**2)
    expected_logprior = -0.5 * (m.shape[-1] * math.log(2 * math.pi) + m.pow(2).sum(-1)
                                + torch.diagonal(S, dim1=-2, dim2=-1).sum(-1))
    return expected_loglik + expected_logprior + q.entropy()


class PhiOptimizer:
    """Stochastic gradient ascent on ELBO(x; phi) that advances on demand: ``step(n)`` runs n more steps and returns
    their Monte Carlo ELBOs, so a page can Step, Play and Reset while the state (phi, optimiser moments, step count)
    lives in one object. Deterministic: the noise comes from one generator made from ``seed`` (or the ``generator``
    given), drawn step after step, so the same seed gives the same path however the steps are split.

    x: (batch, data_dim); loc, log_scale: (batch, latent_dim) initial phi (default: the prior). The learning rate decays
    as lr / (1 + t / decay_steps) (decay_steps=None: constant), which lets the gap close past the noise floor of a
    constant step size. beta < 1 weights log p(z) - log q(z) by beta (KL warm-up while training theta): the objective
    is then mean_j [log p(x|z_j) + beta (log p(z_j) - log q(z_j))], no longer the ELBO.
    """

    def __init__(self, model, x: torch.Tensor, loc: torch.Tensor | None = None, log_scale: torch.Tensor | None = None,
                 full_covariance: bool = False, optimizer: str = "adam", lr: float = DEFAULT_LR, k: int = DEFAULT_K,
                 decay_steps: float | None = LR_DECAY_STEPS, seed: int | None = 0, init: LocalGaussian | None = None,
                 generator: torch.Generator | None = None, beta: float = 1.0):
        if k < 1 or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"k must be at least 1 and lr a positive number, got k={k}, lr={lr}")
        self.model, self.x, self.k, self.seed, self.beta = model, x, int(k), seed, float(beta)
        self.lr, self.decay_steps = float(lr), decay_steps
        if init is not None:
            self.phi = init
        else:
            zeros = torch.zeros(x.shape[0], model.latent_dim, dtype=x.dtype, device=x.device)
            self.phi = LocalGaussian(zeros if loc is None else loc.to(x.dtype),
                                     zeros if log_scale is None else log_scale.to(x.dtype), full_covariance)
        self.params = [p for p in self.phi.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, optimizer, self.lr)
        self.generator = generator if generator is not None else make_generator(seed, x.device)
        self.t = 0
        self.log_px: torch.Tensor | None = None
        self.elbo_trace: list[torch.Tensor] = []  # per step: (batch,) Monte Carlo ELBO at the phi before the step
        self.loc_trace: list[torch.Tensor] = [self.phi.loc.detach().clone()]  # q's mean after each step: the path

    def lr_at(self, t: int) -> float:
        return self.lr if not self.decay_steps else self.lr / (1.0 + t / self.decay_steps)

    def step(self, n: int = 1) -> torch.Tensor:
        """n more steps of gradient ascent; returns their Monte Carlo ELBOs, (n, batch)."""
        out = []
        for _ in range(n):
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.t)
            value = self._objective()  # (batch,)
            # gradients into phi only: theta (a model other sessions may share) is never written to, not even its
            # .grad; points are independent, so the sum's gradient is each phi_i's own
            grads = torch.autograd.grad(-value.sum(), self.params)
            if all(torch.isfinite(g).all() for g in grads) and torch.isfinite(value).all():
                for p, g in zip(self.params, grads, strict=True):
                    p.grad = g
                self.optimizer.step()  # a non-finite estimate (q far in a tail) is skipped, never applied
                with torch.no_grad():
                    self.phi.loc.clamp_(-LOC_LIMIT, LOC_LIMIT)
                    self.phi.log_scale.clamp_(*LOG_SCALE_LIMITS)
                    self.phi.off_diag.clamp_(-LOC_LIMIT, LOC_LIMIT)
            self.t += 1
            out.append(value.detach())
            self.loc_trace.append(self.phi.loc.detach().clone())
        self.elbo_trace.extend(out)
        return torch.stack(out)

    def _objective(self) -> torch.Tensor:
        """The Monte Carlo ELBO mean_j [log p(x, z_j) - log q(z_j)] with k reparameterised samples z_j of q(z; phi)
        (warmed up by beta): (batch,).

        Its gradient "sticks the landing" (Roeder, Wu and Duvenaud, 2017): log q is evaluated with phi held fixed,
        so phi's gradient flows only through the samples z_j. That drops the score term E_q[grad log q] = 0: still
        unbiased, and exactly zero at the optimum when p(z|x) lies in q's family, so phi settles there instead of
        jittering around it.
        """
        q = self.phi.distribution()
        z = sample(q, (self.k,), self.generator)  # (k, batch, latent_dim)
        log_q = _fixed(q).log_prob(z)
        if self.beta == 1.0:
            return (self.model.log_joint(self.x, z) - log_q).mean(0)
        log_ratio = self.model.log_prior(z) - log_q
        return (self.model.log_likelihood(self.x, z) + self.beta * log_ratio).mean(0)

    def q(self) -> torch.distributions.Distribution:
        """The current q(z; phi), detached from phi (later steps do not move it)."""
        return detached_distribution(self.phi)

    def exact(self, resolution: int | None = None) -> dict[str, torch.Tensor]:
        """log p(x), exact ELBO, exact KL and the identity residual at the current phi (see exact_elbo_and_kl).
        log p(x) is computed once (at full resolution) and kept: theta and x do not change."""
        if self.log_px is None:
            self.log_px = exact_log_marginal(self.model, self.x)
        return exact_elbo_and_kl(self.model, self.x, self.q(), resolution=resolution, log_px=self.log_px)

    def exact_live(self) -> dict[str, torch.Tensor]:
        """exact() at the live resolution, refined once to twice as fine where the identity residual shows that the
        grid under q has not resolved log p(x, z) (a decoder of images varies fast in z). The residual returned says
        how far the ELBO and the KL can be trusted."""
        resolution = live_resolution(self.model.latent_dim)
        terms = self.exact(resolution)
        if resolution is not None and float(terms["residual"].abs().max()) > RESIDUAL_TOL:
            terms = self.exact(2 * resolution - 1)
        return terms


def fit_local_posterior(model, x: torch.Tensor, steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LR,
                        k: int = DEFAULT_K, full_covariance: bool = False, optimizer: str = "adam",
                        init: LocalGaussian | None = None, seed: int | None = 0,
                        generator: torch.Generator | None = None, decay_steps: float | None = LR_DECAY_STEPS,
                        callback=None):
    """Maximise ELBO(x_i; phi_i) over each point's own phi_i with reparameterised gradients; theta is frozen.

    ``steps`` steps of PhiOptimizer (the page's steppable optimiser, with the same defaults). x: (batch, data_dim).
    Returns (q, history): q a Distribution with batch shape (batch,) (detached) and history a dict with "elbo":
    (steps run, batch), the Monte Carlo ELBO before each step, and "phi". callback(step, phi, elbo) may return True
    to stop early.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    opt = PhiOptimizer(model, x, full_covariance=full_covariance, optimizer=optimizer, lr=lr, k=k,
                       decay_steps=decay_steps, seed=seed, init=init, generator=generator)
    if callback is None:
        opt.step(steps)
    else:
        for step in range(steps):
            if callback(step, opt.phi, opt.step(1)[0]):
                break
    return opt.q(), {"elbo": torch.stack(opt.elbo_trace), "phi": opt.phi}


def _fixed(q: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """The same Gaussian q with its parameters detached from phi (no copies: used at once, before phi moves)."""
    if isinstance(q, MultivariateNormal):
        return MultivariateNormal(q.loc.detach(), scale_tril=q.scale_tril.detach(), validate_args=False)
    base = q.base_dist
    return Independent(Normal(base.loc.detach(), base.scale.detach(), validate_args=False), 1, validate_args=False)


def detached_distribution(phi: LocalGaussian) -> torch.distributions.Distribution:
    """q(z; phi) as a Distribution holding copies of phi's values (batch shape (batch,))."""
    with torch.no_grad():
        loc = phi.loc.detach().clone()
        if phi.full_covariance:
            return MultivariateNormal(loc, scale_tril=phi.scale_tril().detach().clone(), validate_args=False)
        return Independent(Normal(loc, torch.exp(phi.log_scale.detach())), 1)


# ----------------------------------------------------------------------------- gradient estimators of the ELBO
def elbo_gradient_samples(model, x: torch.Tensor, phi: LocalGaussian, estimator: str = "reparameterisation",
                          k: int = 1, replicates: int = 1000, seed: int | None = 0,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[str]]:
    """``replicates`` independent estimates of grad_phi ELBO(x; phi) at the current phi, each from k samples.

    reparameterisation:   grad_phi mean_j [log p(x, g(eps_j; phi)) - log q(g(eps_j; phi))], z = loc + L eps.
    score function:       mean_j [log p(x, z_j) - log q(z_j)] grad_phi log q(z_j; phi), z_j ~ q (no baseline).
    sticking the landing: the reparameterisation estimator with phi held fixed inside log q (Roeder, Wu and Duvenaud
                          2017): the score term, zero in expectation, is dropped, so where q = p(z|x) every estimate
                          is 0.
    All three are unbiased for the same gradient; their variance differs. x: (1, data_dim), phi for one point. The
    samples come from ``generator`` (default: one made from ``seed``).
    Returns (grads: (replicates, n_params), names: n_params labels such as "loc[1]", "log_scale[2]").
    """
    if estimator not in GRADIENT_ESTIMATORS:
        raise ValueError(f"estimator must be one of {GRADIENT_ESTIMATORS}, got {estimator!r}")
    d = phi.loc.shape[-1]
    # replicate phi along the batch axis: points are independent, so d(sum)/d(phi_r) is replicate r's own estimate
    rep = LocalGaussian(phi.loc.detach().expand(replicates, d), phi.log_scale.detach().expand(replicates, d),
                        phi.full_covariance)
    params = [rep.loc, rep.log_scale]
    names = [f"loc[{i + 1}]" for i in range(d)] + [f"log_scale[{i + 1}]" for i in range(d)]
    if phi.full_covariance:
        with torch.no_grad():
            rep.off_diag.copy_(phi.off_diag.detach().expand(replicates, d, d))
        params.append(rep.off_diag)
        rows, cols = torch.tril_indices(d, d, offset=-1)
        names += [f"L[{i + 1},{j + 1}]" for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]
    xr = x.expand(replicates, x.shape[-1])
    g = generator if generator is not None else make_generator(seed, x.device)
    q = rep.distribution()
    if estimator == "reparameterisation":
        objective = elbo(model, xr, q, k, g)  # (replicates,)
    elif estimator == "sticking the landing":
        z = sample(q, (k,), g)  # (k, replicates, d), reparameterised: phi's only path
        objective = (model.log_joint(xr, z) - _fixed(q).log_prob(z)).mean(0)
    else:
        z = sample(q, (k,), g).detach()  # (k, replicates, d), no path to phi
        log_q = q.log_prob(z)
        f = (model.log_joint(xr, z) - log_q).detach()
        objective = (f * log_q).mean(0)  # a surrogate whose gradient is the score-function estimate
    grads = torch.autograd.grad(objective.sum(), params, allow_unused=True)  # phi's only: theta is not written
    flat = [grads[0], grads[1]]
    if phi.full_covariance:
        flat.append(grads[2][:, rows, cols])
    return torch.cat(flat, dim=-1).detach(), names


def gradient_variance_path(model, x: torch.Tensor, qs: Sequence[torch.distributions.Distribution],
                           estimators: Sequence[str] = GRADIENT_ESTIMATORS, k: int = 1, replicates: int = 500,
                           seed: int | None = 0, full_covariance: bool = False) -> dict[str, torch.Tensor]:
    """The total variance tr Cov[g] = sum_i Var[g_i] of each estimator of grad_phi ELBO(x; phi) at each q in qs
    (snapshots of phi along an optimisation), from ``replicates`` estimates of k samples each.

    x: (1, data_dim); qs: Gaussians with batch shape (1,). Returns {estimator: (len(qs),)}. Estimator e at snapshot t
    draws from its own generator, made from seed + 1000 t + e's index, so a snapshot's value does not depend on
    which other snapshots are asked for.
    """
    out = {est: torch.zeros(len(qs), dtype=x.dtype) for est in estimators}
    for t, q in enumerate(qs):
        phi = local_from_distribution(q, full_covariance)
        for e, est in enumerate(estimators):
            g, _ = elbo_gradient_samples(model, x, phi, est, k=k, replicates=replicates,
                                         generator=make_generator((seed or 0) + 1000 * t + e, x.device))
            out[est][t] = g.var(0, correction=1).sum()
    return out


@dataclass(frozen=True)
class FitCheck:
    """"Did it work?" for a fitted q (Yao, Vehtari, Simpson and Gelman 2018), each value (batch,):
      khat          Pareto k-hat of w = p(x, z) / q(z), z ~ q (S draws): the tail of the importance weights
      threshold     khat_threshold(S): below it, importance sampling from q with S draws is reliable
      ess           Kish's effective sample size of those S weights, in [1, S]
      reverse_kl    KL(q || p(z|x)) = log p(x) - ELBO(q), the ELBO's gap (mode-seeking: small when q sits inside
                    one part of the posterior)
      forward_kl    KL(p(z|x) || q), the inclusive direction importance sampling pays for (mass-covering)
      draws_needed  exp(forward_kl): about this many draws from q make importance sampling accurate (Chatterjee and
                    Diaconis 2018)
    """

    khat: torch.Tensor
    threshold: float
    ess: torch.Tensor
    reverse_kl: torch.Tensor
    forward_kl: torch.Tensor
    draws: int

    @property
    def draws_needed(self) -> torch.Tensor:
        return torch.exp(self.forward_kl)

    def verdict(self, i: int = 0) -> str:
        """estimators.khat_verdict for point i"""
        return khat_verdict(float(self.khat[i]), self.draws)

    def too_few_draws(self, i: int = 0) -> bool:
        """whether importance sampling from q would need more than the S draws made (draws_needed > S) at point i:
        the forward KL can say so where k-hat, fitted to the few largest of the weights that were drawn, does not"""
        return bool(self.draws_needed[i] > self.draws)


def fit_check(model, x: torch.Tensor, q: torch.distributions.Distribution, draws: int = 2000,
              generator: torch.Generator | None = None, seed: int | None = 0,
              log_px: torch.Tensor | None = None) -> FitCheck:
    """The diagnostics of a fitted q at x: (batch, data_dim), q with batch shape (batch,). The S = ``draws`` weights
    come from ``generator`` (default: one made from ``seed``); the two KLs are exact (closed form or quadrature, as
    exact_elbo_and_kl and estimators.forward_kl compute them). ``log_px``: the exact log p(x), if known."""
    log_w, _ = importance_log_weights(model, x, q, draws, generator=generator if generator is not None
                                      else make_generator(seed, x.device))  # (S, batch)
    with torch.no_grad():
        log_px = exact_log_marginal(model, x) if log_px is None else log_px
        if hasattr(model, "closed_form_posterior"):
            reverse = kl_divergence(_as_mvn(q), model.closed_form_posterior(x))
        else:
            reverse = quadrature_kl(model, x, q, log_px=log_px)
        forward = forward_kl(model, x, q)
    return FitCheck(khat=pareto_khat(log_w, 0), threshold=khat_threshold(draws), ess=effective_sample_size(log_w, 0),
                    reverse_kl=reverse, forward_kl=forward, draws=draws)


# ---------------------------------------------------------------------------------------------------- amortisation
def live_resolution(latent_dim: int) -> int | None:
    """Grid points per axis for exact terms shown live: the default for a 1-D latent (cheap), fewer for 2-D."""
    return LIVE_RESOLUTION_2D if latent_dim == 2 else None


def amortization_gaps(model, x: torch.Tensor, q_encoder: torch.distributions.Distribution, steps: int = 400,
                      lr: float = DEFAULT_LR, k: int = 16, full_covariance: bool = False, seed: int | None = 0,
                      generator: torch.Generator | None = None) -> dict:
    """Cremer, Li and Duvenaud (2018): split each point's gap log p(x) - ELBO(encoder) into two parts.

    amortisation gap  = ELBO(q*_i) - ELBO(q_encoder(x_i))   (the encoder's shortfall against per-point optimisation)
    approximation gap = log p(x_i) - ELBO(q*_i)            (the family's shortfall: KL(q*_i || p(z|x_i)))
    q*_i starts at the encoder's q and is optimised per point (PhiOptimizer), then phi is averaged over the last half
    of the steps (Polyak averaging: the average sits closer to the optimum than any one noisy iterate).
    ELBOs exact (quadrature / closed form). x: (n, data_dim); q_encoder with batch shape (n,). Returns (n,) tensors.
    """
    resolution = live_resolution(model.latent_dim)
    log_px = exact_log_marginal(model, x)
    start = exact_elbo_and_kl(model, x, q_encoder, resolution=resolution, log_px=log_px)
    opt = PhiOptimizer(model, x, init=local_from_distribution(q_encoder, full_covariance), lr=lr, k=k, seed=seed,
                       generator=generator)
    opt.step(steps - steps // 2)
    tail = [[p.detach().clone() for p in opt.phi.parameters()]]
    for _ in range(steps // 2):
        opt.step(1)
        tail.append([p.detach().clone() for p in opt.phi.parameters()])
    with torch.no_grad():
        for i, p in enumerate(opt.phi.parameters()):
            p.copy_(torch.stack([t[i] for t in tail]).mean(0))
    end = exact_elbo_and_kl(model, x, opt.q(), resolution=resolution, log_px=log_px)
    # reported as measured: where the encoder is already optimal, what is left of the optimiser's noise may leave a
    # hair below zero
    return {"log_px": log_px, "elbo_encoder": start["elbo"], "elbo_optimized": end["elbo"],
            "amortization_gap": end["elbo"] - start["elbo"], "approximation_gap": log_px - end["elbo"]}


# ---------------------------------------------------------------------------------------- the notes' learning loop
class LearningLoop:
    """The notes' algorithm, one theta step at a time: sample a minibatch of points, optimise each point's own phi_i
    (inner loop, theta frozen), then take one gradient step on theta with q(z; phi_i) fixed.

    X: (n, data_dim). Each point's phi_i is kept between visits (a warm start). ``step()`` returns the inner loop's
    per-point Monte Carlo ELBO trace (inner_steps, batch_size) and records each sampled point's exact ELBO before and
    after its inner loop and the model's exact mean log-likelihood on X (1-/2-D latents or closed forms).
    """

    def __init__(self, model, X: torch.Tensor, batch_size: int = 8, inner_steps: int = 30, inner_lr: float = 0.1,
                 theta_lr: float = 0.02, k: int = 8, seed: int = 0):
        if not 1 <= batch_size or inner_steps < 1 or k < 1:
            raise ValueError("batch_size, inner_steps and k must be at least 1")
        self.model, self.X = model, X
        self.batch_size, self.inner_steps, self.inner_lr, self.k, self.seed = \
            min(batch_size, X.shape[0]), inner_steps, inner_lr, k, seed
        self.loc = torch.zeros(X.shape[0], model.latent_dim, dtype=X.dtype, device=X.device)  # phi_i table
        self.log_scale = torch.zeros_like(self.loc)
        self.theta_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=theta_lr)
        self.t = 0
        self.inner_traces: list[torch.Tensor] = []  # per theta step: (inner_steps, batch_size)
        self.log_lik = [self.mean_log_likelihood()]  # exact mean log p_theta(x) over X, before each theta step
        self.elbo_after: list[float] = []  # minibatch mean ELBO after the inner loop (before the theta step)
        self.exact_elbo: list[tuple] = []  # per theta step: exact ELBO (batch,) of each phi_i before / after its loop

    def _exact_elbo(self, x, loc, log_scale) -> torch.Tensor:
        q = Independent(Normal(loc, torch.exp(log_scale)), 1)
        return exact_elbo_and_kl(self.model, x, q, resolution=live_resolution(self.model.latent_dim))["elbo"]

    def mean_log_likelihood(self) -> float:
        with torch.no_grad():
            return float(exact_log_marginal(self.model, self.X).mean())

    def step(self) -> torch.Tensor:
        """One outer iteration: inner loop on phi_i for a sampled minibatch, then one theta step. Step t's randomness
        comes from generators made from (seed, t) alone."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.t)
        idx = torch.randperm(self.X.shape[0], generator=g)[: self.batch_size]
        x = self.X[idx]
        before = self._exact_elbo(x, self.loc[idx], self.log_scale[idx])
        inner = PhiOptimizer(self.model, x, self.loc[idx], self.log_scale[idx], lr=self.inner_lr, k=self.k,
                             decay_steps=None, seed=self.seed + self.t)
        trace = inner.step(self.inner_steps)  # (inner_steps, batch)
        self.loc[idx], self.log_scale[idx] = inner.phi.loc.detach(), inner.phi.log_scale.detach()
        self.exact_elbo.append((before, self._exact_elbo(x, self.loc[idx], self.log_scale[idx])))
        q = inner.q()
        self.theta_opt.zero_grad()
        value = elbo(self.model, x, q, self.k, make_generator(self.seed * 7919 + self.t, x.device))
        (-value.mean()).backward()  # gradient flows into theta only: q is detached
        self.theta_opt.step()
        self.t += 1
        self.inner_traces.append(trace)
        self.elbo_after.append(float(trace[-max(1, self.inner_steps // 5):].mean()))
        self.log_lik.append(self.mean_log_likelihood())
        return trace


# ------------------------------------------------------------------------------------------------ the latent picture
def view_box(model, x: torch.Tensor, qs=(), width: float = 4.0, base=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A box in z (1-/2-D latent) holding p(z|x)'s mass and each q's mean +- width std. x: (1, data_dim).
    base: a box (lo, hi) from an earlier call to widen instead of locating the posterior again (an animation's
    frames reuse it). Returns (lo, hi), each (latent_dim,)."""
    with torch.no_grad():
        if base is None:
            grid = adapt_latent_grid(lambda z: model.log_joint(x, z), 1, model.latent_dim, x.dtype, x.device)
            std = torch.sqrt(torch.diagonal(grid.scale @ grid.scale.mT, dim1=-2, dim2=-1))[0]
            centers, stds = [grid.center[0]], [std]
        else:
            centers, stds = [(base[0] + base[1]) / 2], [(base[1] - base[0]) / (2 * width)]
        for q in qs:
            centers.append(q.mean[0])
            stds.append(q.stddev[0])
        lo = torch.stack([c - width * s for c, s in zip(centers, stds, strict=True)]).amin(0)
        hi = torch.stack([c + width * s for c, s in zip(centers, stds, strict=True)]).amax(0)
    return lo, hi


def latent_densities(model, x: torch.Tensor, q: torch.distributions.Distribution, lo: torch.Tensor,
                     hi: torch.Tensor, log_px: torch.Tensor, n: int = 101) -> dict:
    """log p(z|x) and log q(z) on a regular grid over [lo, hi] (1-/2-D latent), for the picture.

    Returns {"axes": list of (n,) arrays per latent axis, "log_posterior", "log_q"}: (n,) for a 1-D latent,
    (n, n) indexed [z2, z1] (rows are the vertical axis) for a 2-D one.
    """
    d = model.latent_dim
    axes = [torch.linspace(float(lo[i]), float(hi[i]), n, dtype=x.dtype) for i in range(d)]
    if d == 1:
        z = axes[0][:, None, None]  # (n, 1, 1)
    else:
        z2, z1 = torch.meshgrid(axes[1], axes[0], indexing="ij")
        z = torch.stack([z1, z2], -1).reshape(n * n, 1, 2)
    with torch.no_grad():
        log_post = (model.log_joint(x, z) - log_px)[:, 0]
        log_q = q.log_prob(z)[:, 0]
    shape = (n,) if d == 1 else (n, n)
    return {"axes": [a.numpy() for a in axes], "log_posterior": log_post.reshape(shape).numpy(),
            "log_q": log_q.reshape(shape).numpy()}
