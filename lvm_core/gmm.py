"""Gaussian mixtures through scikit-learn: fit, EM step by step, decomposition of p(x), sampling, restarts, choice.

The model of the notes: z ~ Categorical(pi), x | z = k ~ N(mu_k, Sigma_k), p(x) = sum_k pi_k N(x; mu_k, Sigma_k).
All EM iterations are scikit-learn's own (GaussianMixture with warm_start): nothing here re-implements EM.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from lvm_core.datasets import train_test_split_points

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
COVARIANCE_LABELS = {
    "full": "full (any ellipse)",
    "diag": "diagonal (axis-aligned)",
    "spherical": "spherical (circles)",
    "tied": "tied (one shared ellipse)",
}
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
INIT_LABELS = {
    "kmeans": "k-means",
    "k-means++": "k-means++ seeds",
    "random": "random responsibilities",
    "random_from_data": "random data points",
}
# initialisations that put each component on one data point, with covariance reg_covar * I: a spike, so iteration 0's
# log-likelihood is near -1e6 and its samples sit on K points; the first E-step assigns each point to its nearest spike
ONE_POINT_INITS = ("k-means++", "random_from_data")
MAX_COMPONENTS = 10
MAX_EM_ITER = 200  # a trajectory stops here if EM has not converged by then
# converged when the mean log-likelihood changes by less than this (nats per point); 10x stricter than scikit-learn's
# 1e-3, under which EM from random responsibilities (whose first steps change little) is "converged" after one step
DEFAULT_TOL = 1e-4
DEFAULT_REG_COVAR = 1e-6


class MixtureFitError(ValueError):
    """A mixture that cannot be fitted to these data; the message tells the user what to change."""


def check_fit_inputs(X: np.ndarray, n_components: int) -> np.ndarray:
    """Validate X (n, d) for a K-component fit; raise MixtureFitError saying what to do."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise MixtureFitError("A mixture needs at least 2 data points; add points or choose a data set.")
    if not np.isfinite(X).all():
        raise MixtureFitError("The data contain NaN or infinite values; remove those rows.")
    n_distinct = len(np.unique(X, axis=0))
    if n_distinct < 2:
        raise MixtureFitError(
            "All data points are identical, so no Gaussian can be fitted (its covariance would be zero). "
            "Add points that differ, or increase reg_covar."
        )
    if n_components > X.shape[0]:
        raise MixtureFitError(
            f"K = {n_components} components but only {X.shape[0]} data points: each component needs at least "
            f"one point. Reduce K to at most {X.shape[0]}, or add points."
        )
    if n_components > n_distinct:
        raise MixtureFitError(
            f"K = {n_components} components but only {n_distinct} distinct points. "
            f"Reduce K to at most {n_distinct}, or increase reg_covar."
        )
    return X


def make_mixture(
    n_components: int,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    reg_covar: float = DEFAULT_REG_COVAR,
    warm_start: bool = False,
) -> GaussianMixture:
    """An unfitted scikit-learn GaussianMixture with one initialisation (n_init=1) drawn from `seed`."""
    return GaussianMixture(
        n_components=int(n_components),
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=int(seed),
        max_iter=int(max_iter),
        tol=tol,
        reg_covar=reg_covar,
        n_init=1,
        warm_start=warm_start,
    )


def _fit(gm: GaussianMixture, X: np.ndarray) -> GaussianMixture:
    """gm.fit(X), silencing "did not converge" (a short run is on purpose here) and explaining failures."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return gm.fit(X)
    except ValueError as exc:  # e.g. "ill-defined empirical covariance" when a component collapses
        raise MixtureFitError(
            f"The fit failed: a component collapsed onto too few points ({exc}). Reduce K, or increase reg_covar."
        ) from exc


def fit_mixture(
    X: np.ndarray,
    n_components: int,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    max_iter: int = 100,
    tol: float = DEFAULT_TOL,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> GaussianMixture:
    """Fit a K-component mixture to X (n, d) by EM from one initialisation; raises MixtureFitError on bad input."""
    X = check_fit_inputs(X, n_components)
    gm = make_mixture(n_components, covariance_type, init_params, seed, max_iter, tol, reg_covar)
    return _fit(gm, X)


# ---- EM step by step ------------------------------------------------------------------------------------------


@dataclass
class MixtureParams:
    """One snapshot of a mixture's parameters (scikit-learn's attribute names), enough to rebuild it."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d) full, (K, d) diag, (K,) spherical, (d, d) tied
    precisions_cholesky: np.ndarray


def get_params(gm: GaussianMixture) -> MixtureParams:
    return MixtureParams(gm.weights_.copy(), gm.means_.copy(), gm.covariances_.copy(), gm.precisions_cholesky_.copy())


def mixture_from_params(params: MixtureParams, covariance_type: str) -> GaussianMixture:
    """A fitted-looking GaussianMixture holding `params` (score_samples, predict_proba... work on it)."""
    gm = GaussianMixture(n_components=len(params.weights), covariance_type=covariance_type)
    gm.weights_ = params.weights.copy()
    gm.means_ = params.means.copy()
    gm.covariances_ = params.covariances.copy()
    gm.precisions_cholesky_ = params.precisions_cholesky.copy()
    if covariance_type == "full":
        gm.precisions_ = np.einsum("kij,klj->kil", params.precisions_cholesky, params.precisions_cholesky)
    elif covariance_type == "tied":
        gm.precisions_ = params.precisions_cholesky @ params.precisions_cholesky.T
    else:
        gm.precisions_ = params.precisions_cholesky**2
    gm.converged_ = False
    gm.n_iter_ = 0
    gm.lower_bound_ = -np.inf
    gm.n_features_in_ = params.means.shape[1]
    return gm


@dataclass
class EMTrace:
    """The EM path from one initialisation: parameters after 0, 1, 2, ... iterations and their mean log-likelihoods.

    `log_likelihoods[t]` is the mean log p(x) over the data under `params[t]` (t = 0: the initialisation).
    `converged_at` is the first t with |log_likelihoods[t] - log_likelihoods[t-1]| < tol, or None.
    """

    covariance_type: str
    tol: float
    params: list[MixtureParams] = field(default_factory=list)
    log_likelihoods: list[float] = field(default_factory=list)
    converged_at: int | None = None
    _model: GaussianMixture | None = field(default=None, repr=False)  # the live warm-start model at the last step

    @property
    def n_iter(self) -> int:
        return len(self.params) - 1

    def mixture(self, t: int | None = None) -> GaussianMixture:
        """The mixture after t iterations (default: the last one computed)."""
        t = self.n_iter if t is None else t
        return mixture_from_params(self.params[t], self.covariance_type)

    def converged(self, t: int | None = None) -> bool:
        t = self.n_iter if t is None else t
        return self.converged_at is not None and t >= self.converged_at


def em_start(
    X: np.ndarray,
    n_components: int,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    tol: float = DEFAULT_TOL,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> EMTrace:
    """Initialise EM (iteration 0: scikit-learn's initialisation, no EM step yet) -> a trace of length 1."""
    X = check_fit_inputs(X, n_components)
    gm = make_mixture(n_components, covariance_type, init_params, seed, 0, tol, reg_covar, warm_start=True)
    _fit(gm, X)  # max_iter=0: initialise only
    # scikit-learn's one-point initialisations ("random data points", k-means++ seeds) leave pi summing to K / n, not
    # 1; rescaling pi by a constant leaves every responsibility, and so the whole EM path, unchanged, and makes
    # iteration 0 a proper density
    gm.weights_ = gm.weights_ / gm.weights_.sum()
    trace = EMTrace(covariance_type, tol, _model=gm)
    trace.params.append(get_params(gm))
    trace.log_likelihoods.append(float(gm.score(X)))
    return trace


def em_extend(trace: EMTrace, X: np.ndarray, n_steps: int = 1) -> EMTrace:
    """Run `n_steps` more EM iterations (each one scikit-learn fit with warm_start and max_iter=1), in place."""
    X = np.asarray(X, dtype=np.float64)
    gm = trace._model
    if gm is None:  # e.g. a trace restored from a pickle: rebuild the warm model from the last snapshot
        gm = mixture_from_params(trace.params[-1], trace.covariance_type)
        gm.set_params(warm_start=True, tol=trace.tol)
        trace._model = gm
    gm.set_params(max_iter=1)
    for _ in range(int(n_steps)):
        _fit(gm, X)
        ll = float(gm.score(X))
        trace.params.append(get_params(gm))
        trace.log_likelihoods.append(ll)
        if trace.converged_at is None and abs(ll - trace.log_likelihoods[-2]) < trace.tol:
            trace.converged_at = trace.n_iter
    return trace


def em_steps(
    X: np.ndarray,
    n_iter: int,
    n_components: int,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    tol: float = DEFAULT_TOL,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> tuple[GaussianMixture, np.ndarray, bool]:
    """Exactly `n_iter` EM iterations from the initialisation of `seed`.

    Returns (mixture after n_iter iterations, mean log-likelihood per iteration (n_iter + 1,) starting at the
    initialisation, converged flag: some change in mean log-likelihood fell below tol).
    """
    trace = em_extend(em_start(X, n_components, covariance_type, init_params, seed, tol, reg_covar), X, n_iter)
    return trace.mixture(), np.array(trace.log_likelihoods), trace.converged()


def em_run(
    X: np.ndarray,
    n_components: int,
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    max_iter: int = MAX_EM_ITER,
    tol: float = DEFAULT_TOL,
    reg_covar: float = DEFAULT_REG_COVAR,
) -> EMTrace:
    """EM's whole trajectory from the initialisation of `seed`: one iteration at a time until it converges or reaches
    max_iter iterations. Raises MixtureFitError on bad input or when a component collapses."""
    X = check_fit_inputs(X, n_components)
    trace = em_start(X, n_components, covariance_type, init_params, seed, tol, reg_covar)
    while trace.converged_at is None and trace.n_iter < max_iter:
        em_extend(trace, X, 1)
    return trace


def frame_iterations(n_iter: int, max_frames: int, dense: int = 20) -> np.ndarray:
    """Which of the iterations 0..n_iter an animation shows when it can show at most max_frames (>= 2) of them: every
    iteration up to `dense` (EM moves most at the start), then evenly spaced ones, always the last -> sorted (m,)."""
    if n_iter + 1 <= max_frames:
        return np.arange(n_iter + 1)
    head = np.arange(min(dense, max_frames // 2))
    tail = np.linspace(n_iter, head[-1] + 1, max_frames - len(head))[::-1].round().astype(int)  # ends at n_iter
    return np.unique(np.concatenate([head, tail]))


@dataclass
class EMFrame:
    """What one EM iteration looks like: the mixture's responsibilities, means, ellipses and density."""

    iteration: int
    log_likelihood: float  # mean log p(x) over the data, nats
    responsibilities: np.ndarray  # (n, K): p(z = k | x) per data point
    means: np.ndarray  # (K, 2)
    ellipses: list[list[np.ndarray]]  # [k][j]: component k's contour at n_stds[j], (n_points, 2)
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (xs (m,), ys (m,), log p (m, m)) or None


def em_frames(
    trace: EMTrace,
    X: np.ndarray,
    iterations,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    density_n: int = 60,
    n_stds=(1.0, 2.0),
    ellipse_points: int = 49,
) -> list[EMFrame]:
    """The given iterations of a trajectory as EMFrames (2-D data); the density grid only where xlim and ylim are
    given."""
    X = np.asarray(X, dtype=np.float64)
    frames = []
    for t in iterations:
        gm = trace.mixture(int(t))
        frames.append(EMFrame(
            iteration=int(t),
            log_likelihood=float(trace.log_likelihoods[int(t)]),
            responsibilities=gm.predict_proba(X),
            means=gm.means_.copy(),
            ellipses=component_ellipses(gm, n_stds, ellipse_points),
            density=density_grid(gm, xlim, ylim, density_n) if xlim is not None and ylim is not None else None,
        ))
    return frames


def trajectory_table(trace: EMTrace) -> dict[str, np.ndarray]:
    """EM's path as a long table, one row per iteration and component: iteration, the mean log-likelihood, and the
    component's weight, mean and full covariance (2-D data) -> columns of equal length (n_iter + 1) * K."""
    rows = []
    for t in range(trace.n_iter + 1):
        gm = trace.mixture(t)
        cov = full_covariances(gm)  # (K, 2, 2)
        for k in range(len(gm.weights_)):
            rows.append((t, trace.log_likelihoods[t], k + 1, gm.weights_[k], *gm.means_[k], cov[k, 0, 0],
                         cov[k, 0, 1], cov[k, 1, 1]))
    names = ("iteration", "mean_log_likelihood", "component", "weight", "mean_x1", "mean_x2", "cov_11", "cov_12",
             "cov_22")
    return {name: np.array(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


# ---- the density, term by term -------------------------------------------------------------------------------


def full_covariances(gm: GaussianMixture) -> np.ndarray:
    """Every component's covariance as a full matrix -> (K, d, d), whatever the covariance type."""
    K, d = gm.means_.shape
    cov = np.asarray(gm.covariances_)
    if gm.covariance_type == "full":
        return cov.copy()
    if gm.covariance_type == "tied":
        return np.broadcast_to(cov, (K, d, d)).copy()
    if gm.covariance_type == "diag":
        return np.einsum("kd,de->kde", cov, np.eye(d))
    return cov[:, None, None] * np.eye(d)  # spherical


def decompose_density(gm: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """The K terms of log p(x): log pi_k + log N(x; mu_k, Sigma_k), from Cholesky factors.

    x: (d,) -> (K,), or (batch, d) -> (batch, K). logsumexp over the last axis is log p(x).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    xb = x[None, :] if single else x  # (batch, d)
    L = np.linalg.cholesky(full_covariances(gm))  # (K, d, d), Sigma_k = L_k L_k^T
    diff = xb[:, None, :] - gm.means_[None, :, :]  # (batch, K, d)
    # solve L_k u = (x - mu_k) for every k and point: the Mahalanobis distance is |u|^2
    u = np.linalg.solve(L[None], diff[..., None])[..., 0]  # (batch, K, d)
    d = x.shape[-1]
    log_det = 2 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)  # (K,)
    log_normal = -0.5 * (d * np.log(2 * np.pi) + log_det[None] + (u**2).sum(-1))  # (batch, K)
    terms = np.log(gm.weights_)[None] + log_normal
    return terms[0] if single else terms


def log_marginal(gm: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """log p(x) = logsumexp_k (log pi_k + log N(x; mu_k, Sigma_k)); x (batch, d) -> (batch,)."""
    return logsumexp(decompose_density(gm, np.atleast_2d(x)), axis=-1)


def responsibilities(gm: GaussianMixture, X: np.ndarray) -> np.ndarray:
    """p(z = k | x) for every point -> (n, K), rows summing to 1."""
    return gm.predict_proba(np.asarray(X, dtype=np.float64))


def density_grid(gm: GaussianMixture, xlim: tuple[float, float], ylim: tuple[float, float], n: int = 120):
    """log p(x) on an n x n grid -> (xs (n,), ys (n,), log_p (n, n) indexed [y, x])."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    gx, gy = np.meshgrid(xs, ys)
    log_p = gm.score_samples(np.column_stack([gx.ravel(), gy.ravel()])).reshape(n, n)
    return xs, ys, log_p


def ellipse_points(mean: np.ndarray, cov: np.ndarray, n_std: float = 1.0, n_points: int = 73) -> np.ndarray:
    """The n_std standard-deviation contour of N(mean, cov) in 2-D -> (n_points, 2), closed (first == last)."""
    evals, evecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, n_points)
    circle = np.stack([np.cos(t), np.sin(t)])  # (2, n_points)
    return (mean[:, None] + n_std * evecs @ (np.sqrt(np.maximum(evals, 0))[:, None] * circle)).T


def component_ellipses(gm: GaussianMixture, n_stds=(1.0, 2.0), n_points: int = 73) -> list[list[np.ndarray]]:
    """Ellipses of every component at each n_std -> [k][j] arrays (n_points, 2); any covariance type (2-D data)."""
    covs = full_covariances(gm)
    return [[ellipse_points(gm.means_[k], covs[k], s, n_points) for s in n_stds] for k in range(len(covs))]


def sample_generative(gm: GaussianMixture, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The notes' two steps: k ~ Categorical(pi), then x = mu_k + L_k eps -> (x (n, d), k (n,)), in draw order."""
    # two independent streams, so the first m of n samples are the same as sample_generative(gm, m, seed)
    rng_k, rng_x = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    cdf = np.cumsum(gm.weights_ / gm.weights_.sum())
    k = np.minimum(np.searchsorted(cdf, rng_k.random(int(n)), side="right"), len(cdf) - 1)  # (n,): k ~ Cat(pi)
    L = np.linalg.cholesky(full_covariances(gm))  # (K, d, d)
    eps = rng_x.standard_normal((int(n), gm.means_.shape[1]))  # (n, d)
    x = gm.means_[k] + np.einsum("nij,nj->ni", L[k], eps)
    return x, k


def number_of_parameters(gm: GaussianMixture) -> int:
    """Free parameters: K - 1 weights, K d means, and the covariances (scikit-learn's count, used by BIC/AIC)."""
    return int(gm._n_parameters())


def mixture_1d_log_terms(x: np.ndarray, weights, means, stds) -> np.ndarray:
    """The terms log pi_k + log N(x; mu_k, sigma_k^2) of a 1-D mixture at x (n,) -> (K, n); logsumexp over axis 0 is
    log p(x). The weights are normalised to sum to 1."""
    weights = np.asarray(weights, dtype=float)
    means, stds = np.asarray(means, dtype=float)[:, None], np.asarray(stds, dtype=float)[:, None]  # (K, 1)
    z = (np.asarray(x, dtype=float)[None, :] - means) / stds  # (K, n)
    return np.log(weights / weights.sum())[:, None] - 0.5 * z**2 - np.log(stds) - 0.5 * np.log(2 * np.pi)


def sample_mixture_1d(weights, means, stds, n: int, seed: int) -> np.ndarray:
    """n draws x ~ sum_k pi_k N(mu_k, sigma_k^2), the generative way: z ~ Categorical(pi), then x | z -> (n,)"""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=np.asarray(weights) / np.sum(weights))  # (n,)
    return rng.normal(np.asarray(means)[z], np.asarray(stds)[z])


# ---- non-convexity: restarts ----------------------------------------------------------------------------------


@dataclass
class Restart:
    seed: int
    log_likelihood: float  # mean log p(x) at the end of EM
    n_iter: int
    converged: bool
    params: MixtureParams


@dataclass
class Optimum:
    """A distinct local optimum: the best restart reaching it and how many restarts ended there."""

    restart: Restart
    count: int


@dataclass
class RestartsResult:
    covariance_type: str
    restarts: list[Restart]
    optima: list[Optimum]  # best first

    @property
    def log_likelihoods(self) -> np.ndarray:
        return np.array([r.log_likelihood for r in self.restarts])


def restart_seed(seed: int, r: int) -> int:
    """Restart r's initialisation seed, derived from the base seed (so restarts can resume where they stopped)."""
    return int(np.random.SeedSequence([int(seed), int(r)]).generate_state(1)[0] % (2**31 - 1))


def run_restart(X, n_components, covariance_type, init_params, seed, r, max_iter=200, reg_covar=DEFAULT_REG_COVAR):
    """One restart: a full EM run from restart r's initialisation."""
    s = restart_seed(seed, r)
    gm = fit_mixture(X, n_components, covariance_type, init_params, s, max_iter, reg_covar=reg_covar)
    ll = float(gm.score(X))
    return Restart(s, ll, int(gm.n_iter_), bool(gm.converged_), get_params(gm))


def run_restarts(
    X: np.ndarray,
    n_components: int,
    n_restarts: int,
    covariance_type: str = "full",
    init_params: str = "random",
    seed: int = 0,
    max_iter: int = 200,
    reg_covar: float = DEFAULT_REG_COVAR,
    callback: Callable[[int, int, Restart], None] | None = None,
    done: list[Restart] | None = None,
) -> RestartsResult:
    """R EM runs from R random initialisations -> final log-likelihoods and the distinct local optima found.

    `callback(r, R, restart)` is called after each run (progress). `done`: restarts already computed (they are
    deterministic by (seed, r)), so an interrupted run resumes instead of starting again.
    """
    X = check_fit_inputs(X, n_components)
    restarts = list(done or [])[:n_restarts]
    for r in range(len(restarts), int(n_restarts)):
        restarts.append(run_restart(X, n_components, covariance_type, init_params, seed, r, max_iter, reg_covar))
        if callback is not None:
            callback(r + 1, int(n_restarts), restarts[-1])
    return RestartsResult(covariance_type, restarts, distinct_optima(restarts, X))


def distinct_optima(
    restarts: list[Restart], X: np.ndarray, ll_tol: float = 1e-3, mean_tol: float = 0.05
) -> list[Optimum]:
    """Group restarts whose solutions coincide: mean log-likelihoods within ll_tol nats per point and means within
    mean_tol (relative to the data's spread) after matching components (Hungarian). Best optimum first."""
    scale = float(np.std(X, axis=0).max()) or 1.0
    optima: list[Optimum] = []
    for rs in sorted(restarts, key=lambda r: -r.log_likelihood):
        for opt in optima:
            if abs(opt.restart.log_likelihood - rs.log_likelihood) < ll_tol and (
                _matched_mean_distance(opt.restart.params.means, rs.params.means) < mean_tol * scale
            ):
                opt.count += 1
                break
        else:
            optima.append(Optimum(rs, 1))
    return optima


def _matched_mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between matched means of two solutions, minimised over label permutations."""
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)  # (K, K)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


# ---- model choice ---------------------------------------------------------------------------------------------


@dataclass
class ModelSelection:
    """Per K: BIC, AIC (on the training part), mean log-likelihood on train and held-out points."""

    ks: np.ndarray  # (m,)
    bic: np.ndarray
    aic: np.ndarray
    train_log_likelihood: np.ndarray  # mean log p(x) per point, nats
    heldout_log_likelihood: np.ndarray
    n_train: int
    n_test: int


def select_n_components(
    X: np.ndarray,
    ks=range(1, MAX_COMPONENTS + 1),
    covariance_type: str = "full",
    init_params: str = "kmeans",
    seed: int = 0,
    test_fraction: float = 0.25,
    callback: Callable[[int, int], None] | None = None,
) -> ModelSelection:
    """BIC and AIC against K on a training split, and the mean log-likelihood of the held-out split.

    BIC = -2 log L + p log n, AIC = -2 log L + 2 p (lower is better); a K that cannot be fitted gets NaN.
    """
    X = np.asarray(X, dtype=np.float64)
    train, test = train_test_split_points(X, test_fraction, seed)
    ks = np.array(list(ks))
    out = {name: np.full(len(ks), np.nan) for name in ("bic", "aic", "train", "test")}
    for i, k in enumerate(ks):
        try:
            gm = fit_mixture(train, int(k), covariance_type, init_params, seed)
        except MixtureFitError:
            continue
        out["bic"][i] = gm.bic(train)
        out["aic"][i] = gm.aic(train)
        out["train"][i] = gm.score(train)
        out["test"][i] = gm.score(test)
        if callback is not None:
            callback(i + 1, len(ks))
    return ModelSelection(ks, out["bic"], out["aic"], out["train"], out["test"], len(train), len(test))
