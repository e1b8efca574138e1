"""Experiments behind the "Estimating p(x)" page: estimator sweeps over k and over latent dimension, a display grid
of log p(x), and the latent-space picture of one estimate. Everything vectorised over trials and k, in log space.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import Distribution, MultivariateNormal, kl_divergence

from lvm_core.estimators import (
    adapt_latent_grid,
    as_gaussian,
    effective_sample_size,
    estimator_summary,
    exact_log_marginal,
    exact_method,
    forward_kl,
    importance_log_weights,
    normalized_weights,
    pareto_khat,
    quadrature_kl,
)
from lvm_core.proposals import ProposalSpec

DISPLAY_PRIOR_SAMPLES = 4096  # latent_dim > 2: log p(x) ~= log mean_j p(x | z_j), z_j ~ p(z), common to all points


def log_marginal_on_grid(model, xs: torch.Tensor, ys: torch.Tensor, resolution: int | None = None) -> torch.Tensor:
    """log p(x) on the plane x = (xs[i], ys[j]) for display: (len(ys), len(xs)), rows along y.

    Exact (``exact_log_marginal``: closed form, exact sum, or quadrature over a 1- or 2-D latent to 1e-4 nats) where
    an exact method applies; beyond a 2-D latent an approximation good enough to draw, by prior sampling with
    DISPLAY_PRIOR_SAMPLES draws common to all points. ``resolution``: quadrature on each point's own fixed grid of
    that many nodes per axis instead (an approximation, faster where most points need their own grid). The selected
    point's value is always computed exactly.
    """
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (ny, nx) each
    x = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1).to(model.dtype)  # (n, 2)
    with torch.no_grad():
        if exact_method(model) is not None:
            out = exact_log_marginal(model, x, resolution=resolution)
        else:
            g = torch.Generator().manual_seed(0)
            z = torch.randn(DISPLAY_PRIOR_SAMPLES, model.latent_dim, generator=g, dtype=x.dtype)
            step = max(1, (1 << 21) // x.shape[0])
            acc = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
            for i in range(0, z.shape[0], step):  # chunks bound memory, a running logsumexp joins them
                acc = torch.logaddexp(acc, torch.logsumexp(model.log_likelihood(x, z[i:i + step, None, :]), 0))
            out = acc - math.log(DISPLAY_PRIOR_SAMPLES)
    return out.reshape(len(ys), len(xs))


# ---------------------------------------------------------------------------------------- proposals and presets

ESTIMATORS = ("naive", "prior", "importance")
ESTIMATOR_LABELS = {"naive": "naive MC (uniform box)", "prior": "prior sampling", "importance": "importance sampling"}
PRESETS = ("prior", "fitted", "too narrow", "too wide", "shifted")
PRESET_FACTOR = 10.0  # "too narrow" / "too wide": the posterior's standard deviation divided / multiplied by this
PRESET_SHIFT = 3.0  # "shifted": the fitted q moved by this many posterior standard deviations on every axis
MAX_EVALUATIONS = 2 * 10**6  # k * trials per estimator (about a second of one core each); beyond it fewer trials
# k-hat costs about as much as drawing the weights it judges: it is computed for the first KHAT_TRIALS trials (their
# median is steady to a few hundredths) and, along the sweep (a chart), for the first KHAT_SWEEP_TRIALS
KHAT_TRIALS = 30
KHAT_SWEEP_TRIALS = 10
CHUNK = 1 << 20  # uniforms held at once (k * trials * latent_dim); chunks run over whole trials


def default_proposals(model, box: tuple[float, float], q: ProposalSpec) -> dict[str, ProposalSpec]:
    """The page's three estimators: naive (uniform box, or uniform over a discrete z's values), the prior, and q."""
    if model.discrete:
        K = model.latent_dim
        prior = torch.softmax(model.log_weights.detach(), -1).tolist()
        return {"naive": ProposalSpec("categorical", probs=(1.0 / K,) * K),
                "prior": ProposalSpec("categorical", probs=tuple(prior)), "importance": q}
    d = model.latent_dim
    return {"naive": ProposalSpec("box", lo=float(box[0]), hi=float(box[1]), dim=d),
            "prior": ProposalSpec("gaussian", loc=(0.0,) * d, scale=(1.0,) * d), "importance": q}


def posterior_moments(model, x: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean and per-axis standard deviation of p(z|x) for one point x (1, data_dim) -> (mean (d,), std (d,), how).

    Closed form where the model has one; moments on the adaptive quadrature grid for a 1-/2-D latent; else a
    mean-field Gaussian fitted by maximising the ELBO (the notes' inner loop). A discrete z: (probs, probs, ...).
    """
    with torch.no_grad():
        posterior = getattr(model, "closed_form_posterior", None)
        if posterior is not None:
            p = posterior(x)
            return p.mean[0].numpy(), p.variance[0].sqrt().numpy(), "closed form"
        if model.discrete:
            probs = torch.softmax(model.log_joint(x, model.enumerate_latents())[:, 0], 0).numpy()
            return probs, probs, "exact sum over z"
        if model.latent_dim <= 2:
            log_f = lambda z: model.log_joint(x, z)  # noqa: E731
            grid = adapt_latent_grid(log_f, 1, model.latent_dim, x.dtype, x.device, resolution=41)
            w = torch.softmax(log_f(grid.z) + grid.log_cell, 0)[..., None]  # (n, 1, 1)
            mean = (w * grid.z).sum(0)
            std = (w * (grid.z - mean).pow(2)).sum(0).sqrt()
            return mean[0].numpy(), std[0].numpy(), "quadrature"
    from lvm_core.inference import fit_local_posterior

    q, _ = fit_local_posterior(model, x, seed=seed)
    return q.mean[0].detach().numpy(), q.stddev[0].detach().numpy(), "fitted by maximising the ELBO"


def preset_proposal(name: str, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) of q for a preset: prior, fitted (the posterior's moments), too narrow, too wide, shifted."""
    d = len(mean)
    if name == "prior":
        return np.zeros(d), np.ones(d)
    if name == "fitted":
        return mean.copy(), std.copy()
    if name == "too narrow":
        return mean.copy(), std / PRESET_FACTOR
    if name == "too wide":
        return mean.copy(), std * PRESET_FACTOR
    if name == "shifted":
        return mean + PRESET_SHIFT * std, std.copy()
    raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")


def discrete_proposal(posterior: np.ndarray, prior: np.ndarray, mix: float) -> ProposalSpec:
    """q(z) = (1 - mix) p(z|x) + mix p(z) for a discrete z: mix = 0 is the exact posterior, 1 the prior."""
    probs = (1.0 - mix) * np.asarray(posterior) + mix * np.asarray(prior)
    return ProposalSpec("categorical", probs=tuple(float(p) for p in probs / probs.sum()))


def proposal_divergences(model, x: torch.Tensor, proposal: ProposalSpec | Distribution) -> dict[str, float]:
    """Both KLs between p(z|x) and a proposal q for one point x: (1, data_dim), in nats.

    "forward_kl": KL(p(z|x) || q), what importance sampling pays; "draws_needed": exp(forward_kl), about the k it
    needs (Chatterjee and Diaconis 2018); "reverse_kl": KL(q || p(z|x)), the ELBO's gap. Closed form for a Gaussian q
    on a model with a Gaussian posterior, an exact sum over a discrete z, quadrature over a 1-/2-D latent; NaN where
    none applies (a continuous latent beyond 2-D without a closed form). inf where q misses posterior mass.
    """
    q = proposal.distribution(x.dtype, x.device) if isinstance(proposal, ProposalSpec) else proposal
    nan = {"forward_kl": math.nan, "draws_needed": math.nan, "reverse_kl": math.nan}
    closed_form = getattr(model, "closed_form_posterior", None)
    gaussian = as_gaussian(q)
    with torch.no_grad():
        if closed_form is not None and gaussian is not None:
            posterior = closed_form(x)
            forward, reverse = kl_divergence(posterior, gaussian), kl_divergence(gaussian, posterior)
        elif exact_method(model) is None or (model.latent_dim > 2 and not model.discrete):
            return nan
        else:
            forward, reverse = forward_kl(model, x, q), quadrature_kl(model, x, q)
    forward, reverse = float(forward[0]), float(reverse[0])
    return {"forward_kl": forward, "draws_needed": math.exp(forward) if forward < 700 else math.inf,
            "reverse_kl": reverse}


# ------------------------------------------------------------------------------------ estimates with shared noise
# The page's three estimators run through estimators.importance_log_weights with the same seed: trial r of each draws
# the same uniforms (the naive box maps them linearly, the prior and q through the normal quantile function), and an
# estimate with k samples uses the first k draws of one with more, so differences between estimators or between k are
# the estimators' own, not the noise's.


def sweep_ks(k: int, points: int = 16) -> np.ndarray:
    """about `points` sample counts from 1 to k, evenly spaced in log k (distinct integers, k included)"""
    return np.unique(np.round(np.logspace(0, math.log10(max(k, 1)), points)).astype(int))


@dataclass
class EstimatorRun:
    """R trials of one estimator with k samples each; arrays over trials, log quantities in nats.

    log_estimates: (trials,) log p-hat_k. sweep_k: (n,) sample counts; sweep: (n, trials) log p-hat at each of
    them, from the first k draws of the same trials (common random numbers). ess, max_weight: (trials,) Kish ESS
    and largest normalised weight. shown_z: (m, latent_dim) the first trial's first m samples, shown_w: (m,) their
    normalised weights (normalised over all k). seconds_per_sample: wall time per sample of this estimator.
    khat: (trials,) Pareto k-hat of each trial's k weights, for the first KHAT_TRIALS trials (NaN after them);
    sweep_khat: (n,) the median k-hat over the first KHAT_SWEEP_TRIALS trials at each sweep k (NaN below
    estimators.KHAT_MIN_DRAWS draws).
    """

    log_estimates: np.ndarray
    sweep_k: np.ndarray
    sweep: np.ndarray
    ess: np.ndarray
    max_weight: np.ndarray
    shown_z: np.ndarray
    shown_w: np.ndarray
    seconds_per_sample: float
    khat: np.ndarray | None = None
    sweep_khat: np.ndarray | None = None

    @property
    def median_khat(self) -> float:
        """the median Pareto k-hat over the trials (NaN where k is too small to estimate it)"""
        if self.khat is None or np.isnan(self.khat).all():
            return math.nan
        return float(np.nanmedian(self.khat))


def run_estimator(model, x: torch.Tensor, proposal: ProposalSpec | Distribution, k: int, trials: int, seed: int,
                  max_shown: int = 2000, sweep_points: int = 16) -> EstimatorRun:
    """R = trials estimates of log p(x) with k samples each, plus their prefixes at ``sweep_ks(k)`` (one pass:
    a cumulative logsumexp over each trial's log weights from estimators.importance_log_weights). Chunked over whole
    trials, so memory stays bounded and the numbers do not depend on the chunk size. x: (1, data_dim); proposal: a
    ProposalSpec or a Distribution with batch shape (1,).
    """
    q = proposal.distribution(x.dtype, x.device) if isinstance(proposal, ProposalSpec) else proposal
    ks = sweep_ks(k, sweep_points)
    t_chunk = max(1, CHUNK // (k * max(1, model.latent_dim)))
    parts = {"est": [], "sweep": [], "ess": [], "maxw": [], "khat": []}
    sweep_khat = []  # (n, t) per chunk, for the first KHAT_SWEEP_TRIALS trials
    diagnostics_seconds = 0.0
    shown_z = shown_w = None
    start = time.perf_counter()
    for t0 in range(0, trials, t_chunk):
        t = min(t_chunk, trials - t0)
        log_w, z = importance_log_weights(model, x, q, k, trials=t, seed=seed, first_trial=t0)
        log_w, z = log_w[..., 0], z[..., 0, :]  # (k, t), (k, t, d): the one point
        log_w = log_w.nan_to_num(nan=-math.inf)  # a sample where p(x, z) underflows to nothing carries no weight
        cum = torch.logcumsumexp(log_w, 0)  # (k, t): log sum of the first j weights
        ks_t = torch.as_tensor(ks, device=log_w.device)
        parts["sweep"].append(cum[ks_t - 1] - torch.log(ks_t.to(log_w.dtype))[:, None])
        parts["est"].append(cum[-1] - math.log(k))
        parts["ess"].append(effective_sample_size(log_w, 0))
        parts["maxw"].append(torch.exp(log_w.max(0).values - cum[-1]))
        diagnostics_start = time.perf_counter()  # the diagnostics are not the estimator's cost: left out of it
        khat = torch.full((t,), math.nan, dtype=log_w.dtype, device=log_w.device)
        if t0 < KHAT_TRIALS:
            khat[: KHAT_TRIALS - t0] = pareto_khat(log_w[:, : KHAT_TRIALS - t0], 0)
        parts["khat"].append(khat)
        if t0 < KHAT_SWEEP_TRIALS:
            first = log_w[:, : KHAT_SWEEP_TRIALS - t0]
            sweep_khat.append(torch.stack([pareto_khat(first[:kk], 0) for kk in ks.tolist()]))  # (n, t)
        diagnostics_seconds += time.perf_counter() - diagnostics_start
        if shown_z is None:
            shown_z = z[:max_shown, 0].cpu().numpy()
            shown_w = normalized_weights(log_w[:, 0], 0)[:max_shown].nan_to_num(0.0).cpu().numpy()
    seconds = (time.perf_counter() - start - diagnostics_seconds) / (k * trials)
    cat = {name: torch.cat(v, -1).cpu().numpy() for name, v in parts.items()}
    # all weights zero (x unreachable from these samples): ESS and the largest weight are undefined; report 1
    khats = torch.cat(sweep_khat, -1).cpu().numpy()  # (n, trials used)
    sweep_median = np.array([np.nan if np.isnan(row).all() else np.nanmedian(row) for row in khats])
    return EstimatorRun(cat["est"], ks, cat["sweep"], np.nan_to_num(cat["ess"], nan=1.0),
                        np.nan_to_num(cat["maxw"], nan=1.0), shown_z, shown_w, seconds, cat["khat"], sweep_median)


def summary_table(runs: dict[str, EstimatorRun], log_px: float | None, k: int) -> list[dict]:
    """One row per estimator: bias, standard deviation, relative RMSE (of p-hat and of log p-hat), mean Kish ESS
    and the largest normalised weight (averaged over trials); statistics need the exact log p(x) (None: NaN)."""
    rows = []
    for name, run in runs.items():
        est = torch.as_tensor(run.log_estimates)
        row = {"estimator": name, "k": k, "trials": len(est), "mean log p-hat": float(est.mean()),
               "sd log p-hat": float(est.std(correction=0))}
        if log_px is not None and math.isfinite(log_px):
            s = estimator_summary(est, log_px)
            row |= {key: float(s[key]) for key in ("bias_rel", "sd_rel", "rel_rmse", "log_rel_rmse", "bias_log",
                                                    "sd_log", "rmse_log")}
        row |= {"ess": float(np.mean(run.ess)), "ess_fraction": float(np.mean(run.ess)) / k,
                "max_weight": float(np.mean(run.max_weight)), "khat": run.median_khat}
        rows.append(row)
    return rows


DEGENERATE_ESS = 1.5  # mean Kish ESS below this: the weights have degenerated onto one sample
LOW_BIAS = 0.1  # mean of p-hat / p(x) this far below 1 (and beyond 4 standard errors): q misses posterior mass
ALL_ZERO, DEGENERATE, MISSED_MASS = "all weights zero", "degenerate weights", "missed mass"


def diagnose(row: dict) -> str | None:
    """What went wrong with one estimator, from its summary_table row: ALL_ZERO (every p(x, z) underflowed, so
    p-hat = 0), DEGENERATE (k > 1 and the mean ESS below DEGENERATE_ESS: one sample decides each estimate), MISSED_MASS
    (p-hat / p(x) averages more than LOW_BIAS below 1, beyond 4 standard errors: the huge weights that would make up
    the difference never turned up), or None."""
    if not np.isfinite(row["mean log p-hat"]) or row["mean log p-hat"] < -1e300:
        return ALL_ZERO
    if row["k"] > 1 and row["ess"] < DEGENERATE_ESS:
        return DEGENERATE
    if "bias_rel" in row and row["bias_rel"] < -LOW_BIAS and \
            row["bias_rel"] < -4 * row["sd_rel"] / math.sqrt(row["trials"]):
        return MISSED_MASS
    return None


def sweep_statistics(run: EstimatorRun, log_px: float) -> dict[str, np.ndarray]:
    """relative RMSE (and its log), E[log p-hat_k] and its standard error at every k of the run's sweep: (n,) each"""
    s = estimator_summary(torch.as_tensor(run.sweep), log_px, dim=1)
    trials = run.sweep.shape[1]
    return {"k": run.sweep_k, "rel_rmse": s["rel_rmse"].numpy(), "log_rel_rmse": s["log_rel_rmse"].numpy(),
            "mean_log": run.sweep.mean(1), "se_log": run.sweep.std(1) / math.sqrt(trials),
            "seconds": run.sweep_k * run.seconds_per_sample}


def trials_within_budget(k: int, trials: int) -> int:
    """the trials actually run: at most MAX_EVALUATIONS / k (and at least 2), so any k stays computable"""
    return max(2, min(trials, MAX_EVALUATIONS // max(k, 1)))


# ----------------------------------------------------------------------------------------------- the latent space


def latent_view(mean: np.ndarray, std: np.ndarray, proposal: ProposalSpec | Distribution, axes: int) -> np.ndarray:
    """the plotted range per axis (axes, 2): the posterior +-4 sd joined with q's +-2.5 scale, but at most 4x wider
    than the posterior's range, so a q a thousand times too wide does not shrink the posterior to a dot"""
    lo, hi = mean[:axes] - 4 * std[:axes], mean[:axes] + 4 * std[:axes]
    if isinstance(proposal, ProposalSpec) and proposal.family in ("gaussian", "student_t"):
        loc, scale = np.asarray(proposal.loc[:axes]), np.asarray(proposal.scale[:axes])
        lo, hi = np.minimum(lo, loc - 2.5 * scale), np.maximum(hi, loc + 2.5 * scale)
    centre, half = mean[:axes], 4 * (4 * std[:axes])
    return np.stack([np.maximum(lo, centre - half), np.minimum(hi, centre + half)], -1)


def latent_picture(model, x: torch.Tensor, log_px: float | None, proposal: ProposalSpec | Distribution,
                   view: np.ndarray, n: int | None = None) -> dict:
    """The exact posterior and q on the latent plane (first one or two axes) for the figure.

    view: (axes, 2) ranges. Returns {"axes": 1 | 2, "zs": [grid per axis], "log_post": (n,) or (n, n) rows along
    z2 (None when p(z|x) has no computable form there), "log_q": same shape, "marginal": bool (axes < latent_dim)}.
    """
    d = model.latent_dim
    axes = 1 if d == 1 else 2
    n = n or (400 if axes == 1 else 90)
    zs = [torch.linspace(float(view[i, 0]), float(view[i, 1]), n, dtype=x.dtype) for i in range(axes)]
    z = zs[0][:, None] if axes == 1 else torch.stack(torch.meshgrid(zs[0], zs[1], indexing="xy"), -1).reshape(-1, 2)
    log_post = None
    with torch.no_grad():
        if d == axes and log_px is not None:
            log_post = model.log_joint(x, z[:, None, :])[:, 0] - log_px  # (n^axes,)
        elif getattr(model, "closed_form_posterior", None) is not None:
            post = model.closed_form_posterior(x)  # the marginal of a Gaussian on axes (1, 2) is Gaussian
            log_post = MultivariateNormal(post.mean[0, :axes], post.covariance_matrix[0, :axes, :axes]).log_prob(z)
        log_q = _plane_log_q(proposal, z, axes, x)  # q's own density there
    shape = (n,) if axes == 1 else (n, n)
    return {"axes": axes, "zs": [a.numpy() for a in zs],
            "log_post": None if log_post is None else log_post.reshape(shape).numpy(),
            "log_q": log_q.reshape(shape).numpy(), "marginal": axes < d}


def _plane_log_q(proposal: ProposalSpec | Distribution, z: torch.Tensor, axes: int, x: torch.Tensor) -> torch.Tensor:
    """log q at plane points z: (m, axes) -> (m,), q's marginal on its first ``axes`` axes"""
    if isinstance(proposal, ProposalSpec):
        return proposal.marginal(axes).distribution(x.dtype, x.device).log_prob(z)
    if proposal.event_shape[-1] == axes:
        return proposal.log_prob(z[:, None, :])[:, 0]
    if isinstance(proposal, MultivariateNormal):  # a Gaussian's marginal on a few axes is the Gaussian of those axes
        marginal = MultivariateNormal(proposal.loc[0, :axes], proposal.covariance_matrix[0, :axes, :axes])
        return marginal.log_prob(z)
    raise ValueError(f"no marginal on {axes} axes for a {type(proposal).__name__} proposal")


def discrete_picture(model, x: torch.Tensor, proposal: ProposalSpec, run: EstimatorRun) -> dict:
    """p(z = k | x), q(z = k) and the normalised weight each component received in the first trial: (K,) each"""
    with torch.no_grad():
        post = torch.softmax(model.log_joint(x, model.enumerate_latents())[:, 0], 0).numpy()
    weight = (run.shown_z * run.shown_w[:, None]).sum(0)
    return {"posterior": post, "q": np.asarray(proposal.probs), "weight": weight}


# ------------------------------------------------------------------------------------ the curse of dimensionality


def dimension_sweep(dims, sigma: float, k: int, trials: int, seed: int, box: tuple[float, float] = (-4.0, 4.0),
                    model_seed: int = 0) -> dict[str, np.ndarray]:
    """Relative RMSE of p-hat at fixed k against the latent dimension of the linear-Gaussian model.

    For each d: LinearGaussianLVM.random(d, 2, sigma, model_seed), x = b (the centre of p(x)), and three estimators
    with common random numbers: naive MC on the box, the prior as proposal, and q = the posterior's mean-field
    moments (importance). Returns {"dims": (n,), name: (n,) relative RMSE, "log_" + name: (n,) its log}.
    """
    from lvm_core.models import LinearGaussianLVM

    out = {"dims": np.asarray(list(dims))}
    for d in out["dims"]:
        model = LinearGaussianLVM.random(int(d), 2, sigma, seed=model_seed)
        x = model.b.detach()[None]
        log_px = float(exact_log_marginal(model, x)[0])
        mean, std, _ = posterior_moments(model, x)
        q = ProposalSpec("gaussian", tuple(mean.tolist()), tuple(std.tolist()))
        for name, proposal in default_proposals(model, box, q).items():
            run = run_estimator(model, x, proposal, k, trials, seed, max_shown=0, sweep_points=1)
            s = estimator_summary(torch.as_tensor(run.log_estimates), log_px)
            out.setdefault(name, []).append(float(s["rel_rmse"]))
            out.setdefault("log_" + name, []).append(float(s["log_rel_rmse"]))
    return {key: np.asarray(v) for key, v in out.items()}
