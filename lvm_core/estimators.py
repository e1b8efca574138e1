"""Estimators of log p(x) = log sum_z p(x, z), the ELBO, and importance-weight diagnostics.

Everything is in log space. Estimators return log-quantities with a leading trials axis: ``(trials, batch)``.
Large ``trials * k`` is streamed in chunks with a running logsumexp, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

# the quadrature lives in its own module; its public names are importable from here too
from lvm_core.quadrature import (  # noqa: F401
    EVAL_CHUNK,
    LOG_MASS_CUTOFF,
    MAX_REFINE,
    REFINE_TOL,
    LatentGrid,
    _evaluate,
    _final_resolution,
    _search_resolution,
    adapt_latent_grid,
    adaptive_log_marginal,
    integrate_log_marginal,
    lattice_log_marginal,
    quadrature_log_marginal,
)

# evaluations of log p(x, z) held in memory at once (times latent_dim and the model's hidden width): 2^18 keeps the
# peak near 140 MB for a 64-unit float32 MLPLVM (2^20: 500 MB, about twice that in float64) at no cost in speed
CHUNK = 1 << 18


# ---------------------------------------------------------------------------------------------------------- helpers
def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log mean_j exp(log_w_j) = logsumexp_j(log_w_j) - log k, along ``dim``."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def normalized_weights(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """w_j / sum_i w_i computed from log weights (a softmax), along ``dim``."""
    return torch.softmax(log_w, dim=dim)


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Kish's ESS = (sum w)^2 / sum w^2 = exp(2 logsumexp(log w) - logsumexp(2 log w)), in [1, k]."""
    return torch.exp(2 * torch.logsumexp(log_w, dim=dim) - torch.logsumexp(2 * log_w, dim=dim))


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device):
    """Run the body on torch's global RNG seeded with ``seed``, restoring the RNG afterwards (no-op for None)."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def cpu_threads(n: int | None = 1):
    """Run the body with torch on n CPU threads (None: unchanged), restoring the count afterwards.

    Our tensors are small (one point's k samples, a 64-wide MLP): on a busy 2-core machine OpenMP's second thread
    made them 5-25x slower (measured: a training step 25x, amortisation gaps of 100 points 125 s against 25 s).
    """
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _stream_log_mean_exp(draw_log_w: Callable[[int, int], torch.Tensor], k: int, trials: int, batch: int,
                         dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """log mean over k of exp(log w) for every trial, drawing at most ~CHUNK weights at a time.

    draw_log_w(k_chunk, t_chunk) -> (k_chunk, t_chunk, batch) fresh log weights. Returns (trials, batch).
    """
    t_chunk = max(1, min(trials, CHUNK // max(1, batch)))
    k_chunk = max(1, min(k, CHUNK // max(1, batch * t_chunk)))
    out = []
    for t0 in range(0, trials, t_chunk):
        t = min(t_chunk, trials - t0)
        acc = torch.full((t, batch), -math.inf, dtype=dtype, device=device)
        for k0 in range(0, k, k_chunk):
            acc = torch.logaddexp(acc, torch.logsumexp(draw_log_w(min(k_chunk, k - k0), t), dim=0))
        out.append(acc)
    return torch.cat(out) - math.log(k)


# ------------------------------------------------------------------------------------------------- Monte Carlo
def naive_mc_log_marginal(model, x: torch.Tensor, k: int, box: tuple[float, float] = (-4.0, 4.0), trials: int = 1,
                          seed: int | None = None) -> torch.Tensor:
    """Naive Monte Carlo, as in the notes: z_j ~ Uniform(box^d), p(x) ~= |Z| mean_j p(x, z_j).

    log p(x) ~= log|Z| + logsumexp_j log p(x, z_j) - log k. For a discrete model, z is uniform over its values and
    |Z| is their count. x: (batch, data_dim) -> (trials, batch).
    """
    batch = x.shape[0]
    if model.discrete:
        values = model.enumerate_latents()[:, 0, :]  # (K, K)
        log_volume = math.log(values.shape[0])

        def draw(kc, tc):
            idx = torch.randint(values.shape[0], (kc, tc, batch), device=x.device)
            return model.log_joint(x, values[idx]) + log_volume
    else:
        lo, hi = float(box[0]), float(box[1])
        if not hi > lo:
            raise ValueError(f"box must have lo < hi, got {box}")
        log_volume = model.latent_dim * math.log(hi - lo)

        def draw(kc, tc):
            z = lo + (hi - lo) * torch.rand(kc, tc, batch, model.latent_dim, dtype=x.dtype, device=x.device)
            return model.log_joint(x, z) + log_volume

    with torch.no_grad(), seeded(seed, x.device):
        return _stream_log_mean_exp(draw, k, trials, batch, x.dtype, x.device)


def importance_log_weights(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int,
                           seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """log w_j = log p(x, z_j) - log q(z_j) with z_j ~ q. Returns (log_w: (k, batch), z: (k, batch, latent_dim))."""
    with torch.no_grad(), seeded(seed, x.device):
        z = q.sample((k,))
        return model.log_joint(x, z) - q.log_prob(z), z


def importance_log_marginal(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int, trials: int = 1,
                            seed: int | None = None) -> torch.Tensor:
    """Importance sampling: log p(x) ~= logsumexp_j(log p(x, z_j) - log q(z_j)) - log k, with z_j ~ q(z).

    q: a torch Distribution with batch shape (batch,) and event shape (latent_dim,). x: (batch, data_dim).
    Returns (trials, batch). Unbiased for p(x); its log is biased low (Jensen) and is the IWAE bound L_k on average.
    """
    def draw(kc, tc):
        z = q.sample((kc, tc))  # (kc, tc, batch, latent_dim)
        return model.log_joint(x, z) - q.log_prob(z)

    with torch.no_grad(), seeded(seed, x.device):
        return _stream_log_mean_exp(draw, k, trials, x.shape[0], x.dtype, x.device)


def elbo(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int = 1) -> torch.Tensor:
    """Monte Carlo ELBO = mean_j [log p(x, z_j) - log q(z_j)], z_j ~ q reparameterised (differentiable in q and the
    model). Returns (batch,). Equals log p(x) - KL(q || p(z|x)) in expectation."""
    z = q.rsample((k,)) if q.has_rsample else q.sample((k,))  # (k, batch, latent_dim)
    return (model.log_joint(x, z) - q.log_prob(z)).mean(0)


# ------------------------------------------------------------------------------------------------ exact answers
CLOSED_FORM, EXACT_SUM, SHARED_GRID, ADAPTIVE_GRID = "closed form", "exact sum", "shared grid", "adaptive grid"


@dataclass(frozen=True)
class ExactLogMarginal:
    """log p(x) per point and how each value was computed.

    log_px: (batch,). method: (batch,) tuple of "closed form" (the model's own formula), "exact sum" (over a discrete
    z), "shared grid" (the trapezoid rule on a lattice of z shared by all points) or "adaptive grid" (a grid whitened
    by the point's own posterior, for the points the lattice does not resolve). Both grids are accurate to
    quadrature.REFINE_TOL = 1e-4 nats per point, unless a fixed ``resolution`` was asked for.
    """

    log_px: torch.Tensor
    method: tuple[str, ...]


def exact_method(model) -> str | None:
    """How ``exact_log_marginal`` treats this model: "closed form", "exact sum", "quadrature" (a continuous 1- or 2-D
    latent: per point "shared grid" or "adaptive grid"), or None where no exact method applies (use Monte Carlo)."""
    if getattr(model, "closed_form_log_marginal", None) is not None:
        return CLOSED_FORM
    if getattr(model, "enumerate_latents", None) is not None:
        return EXACT_SUM
    return "quadrature" if model.latent_dim in (1, 2) else None


def exact_marginal(model, x: torch.Tensor, resolution: int | None = None) -> ExactLogMarginal:
    """log p(x) in closed form where the model has one, by exact sum over a discrete z, else by quadrature over a 1- or
    2-D latent (accurate to 1e-4 nats per point), with the method per point. x: (batch, data_dim).

    ``resolution``: quadrature on each point's adaptive grid at that many nodes per axis, without refinement: an
    approximation, for comparisons. Raises ValueError for a continuous latent beyond 2-D.
    """
    how = exact_method(model)
    batch = x.shape[0]
    with torch.no_grad():
        if how == CLOSED_FORM:
            return ExactLogMarginal(model.closed_form_log_marginal(x), (CLOSED_FORM,) * batch)
        if how == EXACT_SUM:
            return ExactLogMarginal(torch.logsumexp(model.log_joint(x, model.enumerate_latents()), dim=0),
                                    (EXACT_SUM,) * batch)
        if how is None:
            raise ValueError(f"no exact log p(x) for a continuous latent_dim={model.latent_dim}: quadrature needs a 1- "
                             "or 2-D latent; use a Monte Carlo estimator")
        if resolution is not None:
            return ExactLogMarginal(adaptive_log_marginal(model, x, resolution=resolution), (ADAPTIVE_GRID,) * batch)
        log_px, on_lattice = integrate_log_marginal(model, x)
        return ExactLogMarginal(log_px, tuple(SHARED_GRID if s else ADAPTIVE_GRID for s in on_lattice.tolist()))


def exact_log_marginal(model, x: torch.Tensor, resolution: int | None = None) -> torch.Tensor:
    """log p(x): closed form, exact sum over a discrete z, or quadrature over a 1- or 2-D latent, accurate to 1e-4
    nats per point. x: (batch, data_dim) -> (batch,). ``exact_marginal`` also says how each value was computed."""
    return exact_marginal(model, x, resolution).log_px


def exact_posterior(model, x: torch.Tensor):
    """p(z|x) as a callable z -> log p(z|x) and its exact log p(x); z: (..., batch, latent_dim) -> (..., batch)."""
    log_px = exact_log_marginal(model, x)
    return (lambda z: model.log_joint(x, z) - log_px), log_px


def _expectation_under(log_q: Callable, fn: Callable, grid: LatentGrid) -> torch.Tensor:
    """E_q[fn(z)] on a grid: sum q(z) fn(z) dz / sum q(z) dz (the normaliser absorbs quadrature error). (batch,)."""
    lq = _evaluate(log_q, grid.z) + grid.log_cell
    p = torch.softmax(lq, 0)
    return (p * _evaluate(fn, grid.z)).nan_to_num(0.0).sum(0)


def quadrature_elbo(model, x: torch.Tensor, q: torch.distributions.Distribution,
                    resolution: int | None = None) -> torch.Tensor:
    """ELBO(q) = E_q[log p(x, z)] + H(q), E_q on a grid adapted to q, H(q) in closed form where torch has it.

    (batch,). A discrete z: the exact sum. Independent of the computations behind log p(x) and ``quadrature_kl``,
    so the residual log p(x) - ELBO - KL checks all three.
    """
    with torch.no_grad():
        enumerate_latents = getattr(model, "enumerate_latents", None)
        if enumerate_latents is not None:
            z = enumerate_latents()
            return (q.log_prob(z).exp() * (model.log_joint(x, z) - q.log_prob(z))).nan_to_num(0.0).sum(0)
        grid = adapt_latent_grid(q.log_prob, x.shape[0], model.latent_dim, x.dtype, x.device, resolution=resolution)
        try:
            return _expectation_under(q.log_prob, lambda z: model.log_joint(x, z), grid) + q.entropy()
        except NotImplementedError:
            return _expectation_under(q.log_prob, lambda z: model.log_joint(x, z) - q.log_prob(z), grid)


def quadrature_kl(model, x: torch.Tensor, q: torch.distributions.Distribution,
                  resolution: int | None = None, log_px: torch.Tensor | None = None) -> torch.Tensor:
    """KL(q || p(z|x)) = E_q[log q(z) - log p(z|x)] with log p(z|x) = log p(x, z) - log p(x), p(x) exact.

    (batch,). Every term on a grid adapted to q, finer than the ELBO's (an expectation under q needs q's mass only).
    ``log_px``: the exact log p(x) if the caller already has it (it does not depend on q), else computed here.
    """
    with torch.no_grad():
        log_px = exact_log_marginal(model, x) if log_px is None else log_px

        def log_ratio(z):
            return q.log_prob(z) - (model.log_joint(x, z) - log_px)

        enumerate_latents = getattr(model, "enumerate_latents", None)
        if enumerate_latents is not None:
            z = enumerate_latents()
            return (q.log_prob(z).exp() * log_ratio(z)).nan_to_num(0.0).sum(0)
        d = model.latent_dim
        finer = 2 * _final_resolution(d, resolution) - 1
        grid = adapt_latent_grid(q.log_prob, x.shape[0], d, x.dtype, x.device, resolution=finer)
        return _expectation_under(q.log_prob, log_ratio, grid)


# ------------------------------------------------------------------ estimator statistics (estimating helper, issue 5)
def _log_abs_expm1(a: torch.Tensor) -> torch.Tensor:
    """log |exp(a) - 1|, finite for any finite a (no overflow for large a, no cancellation near 0 beyond expm1's)."""
    pos = a > 0
    safe = torch.where(pos, -a, a)  # <= 0, so expm1 never overflows
    return torch.where(pos, a, torch.zeros_like(a)) + torch.log(-torch.expm1(safe))


def estimator_summary(log_estimates: torch.Tensor, log_px, dim: int = 0) -> dict[str, torch.Tensor]:
    """Statistics of repeated estimates log p-hat (trials along ``dim``) against the exact log p(x), all in log space.

    With r = p-hat / p(x) = exp(log p-hat - log p(x)):
      bias_rel  = E[r] - 1                relative bias of p-hat (0 for an unbiased estimator, up to MC error)
      sd_rel    = SD(r)                   standard deviation of p-hat relative to p(x)
      rel_rmse  = sqrt(E[(r - 1)^2])      relative root-mean-square error of p-hat
      log_rel_rmse, log_sd_rel            their logs (finite even when p-hat overshoots by e^1000)
      bias_log  = E[log p-hat] - log p(x) bias of log p-hat in nats (<= 0 in expectation: Jensen)
      sd_log    = SD(log p-hat)           in nats
      rmse_log  = sqrt(E[(log p-hat - log p(x))^2])
    Moments are over the trials (divide by trials, not trials - 1). Returns a dict of tensors with ``dim`` removed.
    """
    log_estimates = torch.as_tensor(log_estimates)
    log_px = torch.as_tensor(log_px, dtype=log_estimates.dtype)
    if dim < 0:
        dim += log_estimates.ndim
    a = log_estimates - log_px.unsqueeze(dim) if log_px.ndim else log_estimates - log_px  # log r
    log_mean_r = log_mean_exp(a, dim=dim)
    # every estimate 0 (log -inf): no spread; otherwise the deviations r_i / mean(r) - 1 in log space
    centred = torch.where(torch.isneginf(log_mean_r).unsqueeze(dim), -math.inf, a - log_mean_r.unsqueeze(dim))
    log_sd_rel = 0.5 * log_mean_exp(2 * _log_abs_expm1(centred), dim=dim) + log_mean_r
    log_rel_rmse = 0.5 * log_mean_exp(2 * _log_abs_expm1(a), dim=dim)
    return {
        "bias_rel": torch.expm1(log_mean_r),
        "sd_rel": torch.exp(log_sd_rel),
        "log_sd_rel": log_sd_rel,
        "rel_rmse": torch.exp(log_rel_rmse),
        "log_rel_rmse": log_rel_rmse,
        "bias_log": a.mean(dim),
        "sd_log": a.std(dim, correction=0),
        "rmse_log": a.pow(2).mean(dim).sqrt(),
    }


# ------------------------------------------------------ common random numbers (estimating helper, issue 5)
# Every estimator transforms the same uniforms u ~ U(0, 1): the naive box takes lo + (hi - lo) u, a Gaussian q takes
# loc + scale * Phi^-1(u), a Student-t q divides that Gaussian draw by sqrt(chi2_df / df) built from its own extra
# stream. Trial r's stream depends only on (seed, r), and within a trial sample j is the j-th row, so an estimate
# with k samples uses exactly the first k draws of one with more: differences between estimators or between k are
# the estimators' own, not the noise's.


def crn_uniforms(seed: int, trials: int, k: int, width: int, first_trial: int = 0, stream: int = 0,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniforms in (0, 1) of shape (k, trials, width); trial r's (k, width) block comes from a generator seeded by
    (seed, first_trial + r, stream) alone, so blocks are prefixes of each other in k and independent of trials."""
    import numpy as np

    out = np.empty((trials, k, width))
    for r in range(trials):  # one generator per trial (not per sample): the stream layout is fixed by (seed, r)
        out[r] = np.random.default_rng([int(seed), first_trial + r, stream]).random((k, width))
    # 0 has probability 2^-53 but Phi^-1(0) = -inf: nudge it to the smallest positive double
    u = torch.from_numpy(np.maximum(out, np.finfo(float).tiny)).to(dtype)
    return u.transpose(0, 1)  # (k, trials, width)


def uniform_to_box(u: torch.Tensor, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """z = lo + (hi - lo) u, uniform on the box [lo, hi]^d. u: (..., d) -> (z: (..., d), log q(z): (...))."""
    z = lo + (hi - lo) * u
    return z, torch.full(u.shape[:-1], -u.shape[-1] * math.log(hi - lo), dtype=u.dtype)


def uniform_to_gaussian(u: torch.Tensor, loc, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """z = loc + L eps with eps = Phi^-1(u) ~ N(0, I). scale: (d,) standard deviations, or (d, d) lower-triangular L.

    u: (..., d) -> (z: (..., d), log N(z; loc, L L^T): (...)). Broadcasting: loc (batch, d) with u (..., 1, d).
    """
    loc, scale = torch.as_tensor(loc, dtype=u.dtype), torch.as_tensor(scale, dtype=u.dtype)
    eps = torch.special.ndtri(u)
    if scale.ndim >= 2:
        z = loc + (scale @ eps[..., None])[..., 0]
        log_det = torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(-1)
    else:
        z = loc + scale * eps
        log_det = torch.log(scale).sum(-1)
    return z, -0.5 * (eps.pow(2).sum(-1) + u.shape[-1] * math.log(2 * math.pi)) - log_det


def uniform_to_student_t(u: torch.Tensor, u_chi2: torch.Tensor, loc, scale, df: int) -> tuple[torch.Tensor,
                                                                                               torch.Tensor]:
    """z = loc + scale * eps / sqrt(V / df), eps = Phi^-1(u), V = sum of df squared normals from u_chi2 (per axis).

    Independent Student-t axes with integer ``df``. u: (..., d), u_chi2: (..., d * df) -> (z: (..., d), log q: (...)).
    """
    loc, scale = torch.as_tensor(loc, dtype=u.dtype), torch.as_tensor(scale, dtype=u.dtype)
    d = u.shape[-1]
    v = torch.special.ndtri(u_chi2[..., : d * df]).pow(2).reshape(*u.shape[:-1], d, df).sum(-1)  # (..., d)
    t = torch.special.ndtri(u) / torch.sqrt(v / df)
    z = loc + scale * t
    log_q = (torch.lgamma(torch.tensor((df + 1) / 2, dtype=u.dtype)) - torch.lgamma(torch.tensor(df / 2, dtype=u.dtype))
             - 0.5 * math.log(df * math.pi) - torch.log(scale) - (df + 1) / 2 * torch.log1p(t.pow(2) / df))
    return z, log_q.sum(-1)


def uniform_to_categorical(u: torch.Tensor, probs) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot z ~ Categorical(probs) by inverse CDF of u[..., 0]. probs: (K,) or (batch, K), u: (..., 1) ->
    (z: (..., K) one-hot, log q(z): (...))."""
    probs = torch.as_tensor(probs, dtype=u.dtype)
    cdf = torch.cumsum(probs, -1)
    cdf = cdf / cdf[..., -1:]
    shape = torch.broadcast_shapes(u.shape[:-1], probs.shape[:-1])
    idx = torch.searchsorted(cdf.expand(*shape, -1).contiguous(), u[..., :1].expand(*shape, 1).contiguous(),
                             right=True)[..., 0].clamp(max=probs.shape[-1] - 1)
    z = torch.nn.functional.one_hot(idx, probs.shape[-1]).to(u.dtype)
    return z, torch.log((z * probs).sum(-1))
