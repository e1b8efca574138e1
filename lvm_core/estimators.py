"""Estimators of log p(x) = log sum_z p(x, z), the ELBO, and importance-weight diagnostics.

Everything is in log space. Estimators return log-quantities with a leading trials axis: ``(trials, batch)``.
Large ``trials * k`` is streamed in chunks with a running logsumexp, so memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    StudentT,
    kl_divergence,
)

from lvm_core.proposals import ProposalSpec, TrialStreams, sample, seed_from

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


def _stream_log_mean_exp(draw_log_w: Callable[[TrialStreams, int], torch.Tensor], seed: int, k: int, trials: int,
                         batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """log mean over k of exp(log w) for every trial, drawing at most ~CHUNK weights at a time.

    draw_log_w(streams, k_chunk) -> (k_chunk, trials in streams, batch): the next log weights of each trial's streams.
    Chunks hold whole trials where k allows (few, long streams); trial r's numbers come from its own streams, so the
    result does not depend on the chunk sizes. Returns (trials, batch).
    """
    t_chunk = max(1, min(trials, CHUNK // max(1, batch * k)))
    k_chunk = max(1, min(k, CHUNK // max(1, batch * t_chunk)))
    out = []
    for t0 in range(0, trials, t_chunk):
        t = min(t_chunk, trials - t0)
        streams = TrialStreams(seed, t, first_trial=t0, device=device)
        acc = torch.full((t, batch), -math.inf, dtype=dtype, device=device)
        for k0 in range(0, k, k_chunk):
            acc = torch.logaddexp(acc, torch.logsumexp(draw_log_w(streams, min(k_chunk, k - k0)), dim=0))
        out.append(acc)
    return torch.cat(out) - math.log(k)


# ------------------------------------------------------------------------------------------------- Monte Carlo
# Randomness: every estimator takes a ``seed`` or a ``generator`` (one seed is drawn from it); trial r then draws
# from its own streams seeded by (seed, r) (proposals.TrialStreams), sample after sample along k. The same seed gives
# the same numbers however the work is chunked, and estimators run with one seed share their uniforms draw for draw
# (common random numbers): the naive box maps them linearly, a Gaussian q through the normal quantile function.


def naive_proposal(model, box: tuple[float, float] = (-4.0, 4.0), batch: int = 1, dtype: torch.dtype = torch.float64,
                   device: torch.device | None = None) -> torch.distributions.Distribution:
    """Naive Monte Carlo's q: uniform on the box [lo, hi]^d, or uniform over a discrete z's values; batch (batch,)."""
    if model.discrete:
        spec = ProposalSpec("categorical", probs=(1.0,) * model.latent_dim)
    else:
        lo, hi = float(box[0]), float(box[1])
        if not hi > lo:
            raise ValueError(f"box must have lo < hi, got {box}")
        spec = ProposalSpec("box", lo=lo, hi=hi, dim=model.latent_dim)
    return spec.distribution(dtype, device).expand(torch.Size([batch]))


def naive_mc_log_marginal(model, x: torch.Tensor, k: int, box: tuple[float, float] = (-4.0, 4.0), trials: int = 1,
                          seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Naive Monte Carlo, as in the notes: z_j ~ Uniform(box^d), p(x) ~= |Z| mean_j p(x, z_j).

    log p(x) ~= log|Z| + logsumexp_j log p(x, z_j) - log k: importance sampling with q = 1/|Z| on the box
    (``naive_proposal``). For a discrete model, z is uniform over its values and |Z| is their count.
    x: (batch, data_dim) -> (trials, batch).
    """
    q = naive_proposal(model, box, x.shape[0], x.dtype, x.device)
    return importance_log_marginal(model, x, q, k, trials, seed=seed, generator=generator)


def _log_weights(model, x: torch.Tensor, q, k: int, streams: TrialStreams) -> tuple[torch.Tensor, torch.Tensor]:
    """The next k draws of every trial: log w (k, trials, batch) and z (k, trials, batch, latent_dim)."""
    z = sample(q, (k,), streams)
    flat = z.reshape(-1, *z.shape[-2:])  # one long axis of samples evaluates faster than nested batch axes
    log_joint = model.log_joint(x, flat).reshape(z.shape[:-1])
    return log_joint - q.log_prob(z), z


def importance_log_weights(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int,
                           trials: int | None = None, seed: int | None = None,
                           generator: torch.Generator | None = None,
                           first_trial: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """log w_j = log p(x, z_j) - log q(z_j) with z_j ~ q, log q being q's own log_prob.

    Returns (log_w: (k, batch), z: (k, batch, latent_dim)); with ``trials``: (k, trials, batch) and
    (k, trials, batch, latent_dim), trial r drawn from the streams of trial first_trial + r of this seed (so a page
    can compute its trials in chunks). ``importance_log_marginal`` with the same seed averages exactly these weights.
    """
    streams = TrialStreams(seed_from(seed, generator), trials or 1, first_trial, x.device)
    with torch.no_grad():
        log_w, z = _log_weights(model, x, q, k, streams)
    return (log_w, z) if trials is not None else (log_w[:, 0], z[:, 0])


def importance_log_marginal(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int, trials: int = 1,
                            seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance sampling: log p(x) ~= logsumexp_j(log p(x, z_j) - log q(z_j)) - log k, with z_j ~ q(z).

    q: a torch Distribution with batch shape (batch,) and event shape (latent_dim,). x: (batch, data_dim).
    Returns (trials, batch). Unbiased for p(x); its log is biased low (Jensen) and is the IWAE bound L_k on average.
    """
    def draw(streams, kc):
        return _log_weights(model, x, q, kc, streams)[0]

    with torch.no_grad():
        return _stream_log_mean_exp(draw, seed_from(seed, generator), k, trials, x.shape[0], x.dtype, x.device)


def elbo(model, x: torch.Tensor, q: torch.distributions.Distribution, k: int = 1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte Carlo ELBO = mean_j [log p(x, z_j) - log q(z_j)], z_j ~ q reparameterised (differentiable in q and the
    model), drawn from ``generator`` (None: fresh entropy). Returns (batch,). Equals log p(x) - KL(q || p(z|x)) in
    expectation."""
    z = sample(q, (k,), generator)  # (k, batch, latent_dim)
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


def exact_marginal(model, x: torch.Tensor, resolution: int | None = None,
                   tol: float = REFINE_TOL) -> ExactLogMarginal:
    """log p(x) in closed form where the model has one, by exact sum over a discrete z, else by quadrature over a 1- or
    2-D latent (accurate to ``tol``, 1e-4 nats per point by default), with the method per point. x: (batch, data_dim).

    ``resolution``: quadrature on each point's adaptive grid at that many nodes per axis, without refinement: an
    approximation, for comparisons. ``tol``: a looser accuracy for a quicker answer (e.g. 1e-2 for a live curve).
    Raises ValueError for a continuous latent beyond 2-D.
    """
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number of nats per point (1e-4 by default), got {tol!r}")
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
        log_px, on_lattice = integrate_log_marginal(model, x, tol)
        return ExactLogMarginal(log_px, tuple(SHARED_GRID if s else ADAPTIVE_GRID for s in on_lattice.tolist()))


def exact_log_marginal(model, x: torch.Tensor, resolution: int | None = None,
                       tol: float = REFINE_TOL) -> torch.Tensor:
    """log p(x): closed form, exact sum over a discrete z, or quadrature over a 1- or 2-D latent, accurate to ``tol``
    (1e-4 nats per point by default). x: (batch, data_dim) -> (batch,). ``exact_marginal`` also says how each value
    was computed."""
    return exact_marginal(model, x, resolution, tol).log_px


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


# ------------------------------------------------------------------------------------------- estimator statistics
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


# ------------------------------------------------------------------------------------------------------ diagnostics
# How far to trust importance sampling with a proposal q, and how many draws it needs: Pareto k-hat of the weights
# (PSIS: Vehtari, Simpson, Gelman, Yao, Gabry), and the forward KL(p(z|x) || q), whose exponential is the sample size
# importance sampling needs (Chatterjee and Diaconis 2018). The ELBO's gap is the other direction, KL(q || p(z|x)):
# ``quadrature_kl``.

KHAT_MIN_DRAWS = 25  # PSIS fits the largest min(S / 5, 3 sqrt(S)) weights and needs at least 5 of them
KHAT_GOOD, KHAT_HIGH, KHAT_NO_MEAN, KHAT_TOO_FEW = (
    "good", "threshold exceeded", "mean does not exist", "too few draws")


def pareto_khat(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Pareto k-hat of the importance weights w = exp(log_w) along ``dim``: the shape of a generalized Pareto
    distribution fitted to the largest weights, as PSIS computes it (arviz-stats, r_eff = 1 for independent draws).

    log_w: any shape with S draws along ``dim`` -> log_w's shape without ``dim``, in log_w's dtype. The variance of
    the weights is finite for k < 1/2 and their mean exists for k < 1; the estimate is reliable for
    k-hat < khat_threshold(S). NaN where it cannot be estimated (S < KHAT_MIN_DRAWS, a NaN or +inf weight); -inf where
    the largest weights are all equal (bounded weights: every moment exists). Weights of 0 (log_w = -inf) are fine.
    """
    from arviz_stats.base import array_stats

    moved = torch.movedim(torch.as_tensor(log_w), dim, -1)
    S = moved.shape[-1]
    flat = moved.detach().reshape(-1, S).double().cpu().numpy()  # (columns, S)
    out = np.full(flat.shape[0], np.nan)
    if S >= KHAT_MIN_DRAWS:
        valid = ~np.isnan(flat).any(-1) & ~np.isposinf(flat).any(-1) & np.isfinite(flat.max(-1, initial=-np.inf))
        cols = np.flatnonzero(valid)
        # psislw takes log-likelihoods and smooths the ratios exp(-ary), hence the minus sign; it loops over columns
        # itself, but a single constant tail stops the whole call, so on failure each column is fitted alone
        if len(cols):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a degenerate tail: NaN, no warning
                out[cols] = _psis_khat(array_stats, flat[cols])
    result = torch.from_numpy(out.reshape(moved.shape[:-1]))
    return result.to(dtype=moved.dtype if moved.is_floating_point() else torch.float64, device=moved.device)


def _psis_khat(array_stats, flat: np.ndarray) -> np.ndarray:
    """k-hat of each row of log weights (rows, S) by arviz-stats' PSIS"""
    try:
        return np.asarray(array_stats.psislw(-flat, r_eff=1.0, axis=-1)[1], dtype=float).reshape(-1)
    except ValueError:
        out = np.empty(flat.shape[0])
        for c in range(flat.shape[0]):
            try:
                out[c] = array_stats.psislw(-flat[c], r_eff=1.0, axis=-1)[1]
            except ValueError:  # "All tail values are the same": the weights are bounded
                out[c] = -np.inf
        return out


def khat_threshold(S: int) -> float:
    """The sample-size-dependent k-hat threshold of PSIS, min(1 - 1 / log10(S), 0.7): below it the importance
    sampling estimate from S draws is reliable (for S < 2,154 the bar is lower than 0.7)."""
    return min(1.0 - 1.0 / math.log10(S), 0.7) if S > 1 else -math.inf


def khat_verdict(khat: float, S: int) -> str:
    """KHAT_GOOD (k-hat <= khat_threshold(S)), KHAT_HIGH (above it, up to 1), KHAT_NO_MEAN (k-hat > 1: the weights'
    mean does not exist, the estimate is not to be trusted at any S) or KHAT_TOO_FEW (NaN: too few draws)."""
    khat = float(khat)
    if math.isnan(khat):
        return KHAT_TOO_FEW
    if khat > 1.0:
        return KHAT_NO_MEAN
    return KHAT_GOOD if khat <= khat_threshold(S) else KHAT_HIGH


def as_gaussian(q) -> MultivariateNormal | None:
    """q as a MultivariateNormal if it is one or an Independent Normal, else None."""
    if isinstance(q, MultivariateNormal):
        return q
    if isinstance(q, Independent) and isinstance(q.base_dist, Normal) and q.reinterpreted_batch_ndims == 1:
        return MultivariateNormal(q.base_dist.loc, scale_tril=torch.diag_embed(q.base_dist.scale))
    return None


def _posterior_grid(model, x: torch.Tensor, resolution: int | None):
    """(grid, log p(x, z) on it: (n, batch), cell masses of p(z|x): (n, batch)) on a grid adapted to p(x, z),
    twice as fine as log p(x)'s: expectations under p(z|x) weigh the tails more than its integral does."""
    d = model.latent_dim
    finer = 2 * _final_resolution(d, resolution) - 1
    grid = adapt_latent_grid(lambda z: model.log_joint(x, z), x.shape[0], d, x.dtype, x.device, resolution=finer)
    f = _evaluate(lambda z: model.log_joint(x, z), grid.z)
    return grid, f, torch.softmax(f + grid.log_cell, 0)


def forward_kl(model, x: torch.Tensor, q: torch.distributions.Distribution,
               resolution: int | None = None) -> torch.Tensor:
    """KL(p(z|x) || q) = E_p(z|x)[log p(z|x) - log q(z)], the inclusive KL that importance sampling pays for.

    Not the ELBO's gap, KL(q || p(z|x)) (``quadrature_kl``). x: (batch, data_dim) -> (batch,). Closed form for a
    Gaussian q and a model with a Gaussian posterior (linear-Gaussian, any latent dimension), an exact sum over a
    discrete z, else quadrature on a grid adapted to p(x, z) (1-/2-D latents), normalised on the grid itself.
    Infinite where q misses posterior mass (q's support smaller than the posterior's).
    """
    with torch.no_grad():
        closed_form = getattr(model, "closed_form_posterior", None)
        gaussian = as_gaussian(q)
        if closed_form is not None and gaussian is not None:
            return kl_divergence(closed_form(x), gaussian)
        enumerate_latents = getattr(model, "enumerate_latents", None)
        if enumerate_latents is not None:
            z = enumerate_latents()  # (K, 1, K)
            log_post = torch.log_softmax(model.log_joint(x, z), 0)  # (K, batch)
            terms = log_post.exp() * (log_post - q.log_prob(z))
            return torch.where(log_post > -math.inf, terms, 0.0).sum(0)
        grid, f, p = _posterior_grid(model, x, resolution)
        log_post = f - torch.logsumexp(f + grid.log_cell, 0)  # log p(z|x) at the nodes, normalised on this grid
        terms = p * (log_post - _evaluate(q.log_prob, grid.z))
        return torch.where(p > 0, terms, 0.0).sum(0)


def draws_needed(model, x: torch.Tensor, q: torch.distributions.Distribution,
                 resolution: int | None = None) -> torch.Tensor:
    """k = exp(KL(p(z|x) || q)): about this many draws from q make importance sampling accurate, and far fewer
    leave it off by a lot (Chatterjee and Diaconis 2018). (batch,); inf where q misses posterior mass."""
    return torch.exp(forward_kl(model, x, q, resolution=resolution))


def exact_posterior_moments(model, x: torch.Tensor, resolution: int | None = None) -> tuple[torch.Tensor,
                                                                                          torch.Tensor]:
    """Mean (batch, d) and covariance (batch, d, d) of p(z|x): closed form where the model has it, else quadrature
    (1-/2-D latents)."""
    with torch.no_grad():
        closed_form = getattr(model, "closed_form_posterior", None)
        if closed_form is not None:
            posterior = closed_form(x)
            return posterior.mean, posterior.covariance_matrix
        grid, _, p = _posterior_grid(model, x, resolution)
        mean = (p[..., None] * grid.z).sum(0)  # (batch, d)
        dz = grid.z - mean
        cov = (p[..., None, None] * dz[..., :, None] * dz[..., None, :]).sum(0)  # (batch, d, d)
        return mean, cov


def moment_matched_gaussian(model, x: torch.Tensor, full_covariance: bool = True,
                            resolution: int | None = None) -> torch.distributions.Distribution:
    """The Gaussian with p(z|x)'s mean and covariance (diagonal if not full_covariance): among Gaussians (of that
    family) it minimises the forward KL(p(z|x) || q), so no Gaussian proposal needs fewer draws. Batch (batch,)."""
    mean, cov = exact_posterior_moments(model, x, resolution=resolution)
    if full_covariance:
        return MultivariateNormal(mean, scale_tril=torch.linalg.cholesky(cov))
    return Independent(Normal(mean, torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()), 1)


def student_t_proposal(model, x: torch.Tensor, df: float = 3.0,
                       resolution: int | None = None) -> torch.distributions.Distribution:
    """Independent Student-t axes with p(z|x)'s mean as location and its per-axis standard deviation as scale: the
    mean-field moment-matched Gaussian given heavy tails (variance df / (df - 2) times the posterior's), the usual
    defensive proposal when a Gaussian's tails are too light. Batch (batch,)."""
    if not df > 0:
        raise ValueError(f"df must be positive, got {df}")
    mean, cov = exact_posterior_moments(model, x, resolution=resolution)
    sd = torch.diagonal(cov, dim1=-2, dim2=-1).sqrt()
    return Independent(StudentT(torch.as_tensor(df, dtype=mean.dtype, device=mean.device), mean, sd), 1)


def _gauss_hermite(d: int, n: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes (n^d, d) and log weights (n^d,) of the tensor Gauss-Hermite rule for E[f(u)], u ~ N(0, I_d)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)  # for the weight exp(-u^2 / 2)
    u = torch.as_tensor(nodes, dtype=dtype, device=device)
    log_w = torch.as_tensor(np.log(weights / math.sqrt(2 * math.pi)), dtype=dtype, device=device)
    if d == 1:
        return u[:, None], log_w
    grid = torch.stack(torch.meshgrid(*[u] * d, indexing="ij"), -1).reshape(-1, d)
    return grid, sum(torch.meshgrid(*[log_w] * d, indexing="ij")).reshape(-1)


def best_gaussian_elbo(model, x: torch.Tensor, full_covariance: bool = True, nodes: int = 24,
                       steps: int = 200) -> torch.distributions.Distribution:
    """The Gaussian q maximising the ELBO (minimising the ELBO's gap KL(q || p(z|x))) for each point, by L-BFGS on
    the ELBO computed deterministically: E_q[log p(x, z)] by Gauss-Hermite (z = m + L u at nodes**d nodes) plus
    H(q) in closed form. Two starts per point, the posterior's moments and its mode, keep the better: on a
    symmetric two-moded posterior the moments' start sits on a saddle between the modes. 1-/2-D latents; batch
    (batch,).
    """
    d = model.latent_dim
    u, log_w = _gauss_hermite(d, nodes, x.dtype, x.device)
    w = log_w.exp()[:, None]  # (n, 1)
    mean, cov = exact_posterior_moments(model, x)
    with torch.no_grad():
        grid, f, _ = _posterior_grid(model, x, None)
        mode = grid.z.gather(0, f.argmax(0)[None, :, None].expand(1, -1, d))[0]  # (batch, d)
    tril0 = torch.linalg.cholesky(cov)
    i, j = torch.tril_indices(d, d, offset=-1)  # the strictly lower triangle: free only with full covariance
    free_off = full_covariance and d > 1

    def fit(loc0, tril_start):
        loc = loc0.clone().requires_grad_(True)
        log_diag = torch.log(torch.diagonal(tril_start, dim1=-2, dim2=-1)).clone().requires_grad_(True)
        off = tril_start[..., i, j].clone().requires_grad_(free_off)  # (batch, d (d - 1) / 2)
        params = [loc, log_diag] + ([off] if free_off else [])

        def tril():
            L = torch.diag_embed(log_diag.exp())
            if free_off:
                L[:, i, j] = off  # L is a fresh tensor: writing into it keeps the graph
            return L

        def elbo_value():
            z = loc + torch.einsum("bij,nj->nbi", tril(), u)  # (n, batch, d)
            expected = (w * model.log_joint(x, z)).sum(0)  # (batch,)
            return expected + 0.5 * d * (1 + math.log(2 * math.pi)) + log_diag.sum(-1)

        opt = torch.optim.LBFGS(params, max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                                tolerance_change=1e-13)

        def closure():
            loss = -elbo_value().sum()  # points are independent: the sum's optimum is each point's own
            # autograd.grad, not backward: the model's own parameters must not collect gradients
            for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
                p.grad = g.contiguous()  # L-BFGS flattens it with view
            return loss.detach()

        with torch.enable_grad():
            opt.step(closure)
        with torch.no_grad():
            return loc.detach(), tril().detach(), elbo_value()

    start_tril = tril0 if full_covariance else torch.diag_embed(torch.diagonal(tril0, dim1=-2, dim2=-1))
    fits = [fit(mean, start_tril), fit(mode, 0.5 * start_tril)]
    better = (fits[1][2] > fits[0][2])[:, None]
    loc = torch.where(better, fits[1][0], fits[0][0])
    L = torch.where(better[..., None], fits[1][1], fits[0][1])
    if full_covariance:
        return MultivariateNormal(loc, scale_tril=L)
    return Independent(Normal(loc, torch.diagonal(L, dim1=-2, dim2=-1)), 1)


def fit_mixture_proposal(model, x: torch.Tensor, n_components: int = 2, n_draws: int = 20_000, seed: int = 0,
                         resolution: int | None = None) -> MixtureSameFamily:
    """A mixture of full-covariance Gaussians fitted to p(z|x) by maximum likelihood on draws from the quadrature
    grid (scikit-learn's EM): it approximately minimises the forward KL(p(z|x) || q) over mixtures, the proposal
    family that a two-moded or curved posterior needs. 1-/2-D latents. Batch (batch,); each point fitted alone.
    """
    from sklearn.mixture import GaussianMixture

    with torch.no_grad():
        grid, _, p = _posterior_grid(model, x, resolution)
        g = torch.Generator().manual_seed(seed)
        n, batch, d = grid.u.shape[0], x.shape[0], model.latent_dim
        # a node by inverse CDF of its cell's mass, then a uniform position inside the cell (whitened coordinates)
        cdf = torch.cumsum(p.T.cpu(), -1)  # (batch, n)
        u = torch.rand(batch, n_draws, generator=g, dtype=cdf.dtype)
        node = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=n - 1)  # (batch, n_draws)
        jitter = (torch.rand(batch, n_draws, d, generator=g, dtype=cdf.dtype) - 0.5) * grid.h.cpu()[:, None, :]
        u_nodes = grid.u.cpu().expand(n, batch, d).transpose(0, 1)  # (batch, n, d)
        u_draws = u_nodes.gather(1, node[..., None].expand(batch, n_draws, d)) + jitter
        z = grid.center.cpu()[:, None, :] + (grid.scale.cpu()[:, None] @ u_draws[..., None])[..., 0]
        weights, means, trils = [], [], []
        for i in range(batch):
            gm = GaussianMixture(n_components, covariance_type="full", n_init=3, random_state=seed)
            gm.fit(z[i].double().numpy())
            weights.append(gm.weights_)
            means.append(gm.means_)
            trils.append(np.linalg.cholesky(gm.covariances_))
        as_t = lambda a: torch.as_tensor(np.stack(a), dtype=x.dtype, device=x.device)  # noqa: E731
        return MixtureSameFamily(Categorical(probs=as_t(weights)), MultivariateNormal(as_t(means),
                                                                                      scale_tril=as_t(trils)))
