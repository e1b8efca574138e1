"""lvm_core.estimators against closed forms, scipy quadrature, fine independent grids and the Monte Carlo identities.

Statistical tolerances are k standard errors, with the SE computed in the test from the draws themselves.
"""

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import expit
from sklearn.mixture import GaussianMixture
from torch.distributions import Independent, MultivariateNormal, Normal, OneHotCategorical, StudentT, kl_divergence

import lvm_core.estimators as est
from lvm_core.estimators import (
    adapt_latent_grid,
    effective_sample_size,
    elbo,
    exact_log_marginal,
    exact_posterior,
    importance_log_marginal,
    importance_log_weights,
    log_mean_exp,
    naive_mc_log_marginal,
    normalized_weights,
    quadrature_elbo,
    quadrature_kl,
    quadrature_log_marginal,
)
from lvm_core.models import MLPLVM, GaussianMixtureLVM, LinearGaussianLVM, SeedLVM

ROOT = Path(__file__).resolve().parent.parent
QUADRATURE_TOL = 1e-4  # nats: the contract for exact_log_marginal by quadrature


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _linear(latent_dim=2, data_dim=3, sigma=0.5, seed=0) -> LinearGaussianLVM:
    return LinearGaussianLVM.random(latent_dim, data_dim, sigma=sigma, seed=seed)


def _shifted_wide_proposal(posterior: MultivariateNormal, shift: float, wide: float) -> MultivariateNormal:
    """A deliberately mediocre q: the posterior moved `shift` posterior SDs along its first axis, `wide` times wider."""
    L = posterior.scale_tril
    return MultivariateNormal(posterior.loc + shift * L[..., 0], scale_tril=wide * L)


# ---------------------------------------------------------------------------------------------- quadrature accuracy
def _posterior_far_and_narrow_cases():
    """(name, model, x): posteriors near the origin, 0.01 wide and tilted, and far from the origin (30 prior SDs)."""
    tilt2 = torch.tensor([[1.0, 0.9], [0.8, 1.0], [0.3, -0.2]], dtype=torch.float64)  # correlated columns: tilted
    tilt1 = torch.tensor([[1.0], [0.5]], dtype=torch.float64)
    cases = []
    for d, W in ((1, tilt1), (2, tilt2)):
        b = torch.zeros(W.shape[0], dtype=torch.float64)
        near = LinearGaussianLVM(W, b, 0.7)
        narrow = LinearGaussianLVM(W, b, 0.01)
        z_far = torch.tensor([[30.0, -20.0][:d], [-25.0, 5.0][:d]], dtype=torch.float64)
        cases += [(f"{d}d-near", near, near.sample(4, generator=d)[0]),
                  (f"{d}d-narrow-tilted", narrow, narrow.sample(4, generator=d)[0]),
                  (f"{d}d-far", narrow, z_far @ W.T + b)]
    return cases


@pytest.mark.parametrize("name,model,x", _posterior_far_and_narrow_cases(),
                         ids=lambda c: c if isinstance(c, str) else "-")
def test_quadrature_matches_linear_closed_form_to_1e_4_nats_for_narrow_tilted_and_far_posteriors(name, model, x):
    if "narrow" in name or "far" in name:  # check the case is what its name says
        post_sd = torch.linalg.eigvalsh(model.closed_form_posterior(x).covariance_matrix[0]).sqrt()
        assert post_sd.max() < 0.03
    got = quadrature_log_marginal(model, x)
    torch.testing.assert_close(got, model.closed_form_log_marginal(x), atol=QUADRATURE_TOL, rtol=0)


def _seed_log_joint_numpy(model: SeedLVM, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The notes' log p(x, z) written independently in numpy; z: (..., d) -> (...)."""
    A, B, c, d = (_np(p) for p in (model.A, model.B, model.c, model.d))
    var = model.noise_scale**2 * np.exp(expit(z @ B.T + d))
    log_lik = -0.5 * ((x - expit(z @ A.T + c)) ** 2 / var + np.log(2 * np.pi * var)).sum(-1)
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * np.log(2 * np.pi) + log_lik


@pytest.mark.parametrize("noise_scale", [1.0, 0.1])
def test_seed_1d_quadrature_matches_scipy_quad_to_1e_4_nats(noise_scale):
    model = SeedLVM(1, seed=0, noise_scale=noise_scale)
    x, _ = model.sample(6, generator=1)
    expected = []
    for xi in _np(x):
        z_grid = np.linspace(-12, 12, 2401)
        peak = _seed_log_joint_numpy(model, xi, z_grid[:, None]).max()  # rescale so quad sees values near 1

        def f(z, xi=xi, peak=peak):
            return np.exp(_seed_log_joint_numpy(model, xi, np.array([[z]]))[0] - peak)
        val, _ = integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-11, limit=200)
        expected.append(peak + np.log(val))
    np.testing.assert_allclose(_np(exact_log_marginal(model, x)), expected, atol=QUADRATURE_TOL, rtol=0)


def _seed_2d_fine_grid(model: SeedLVM, x: torch.Tensor, half: float = 8.0, n: int = 1001) -> np.ndarray:
    """log p(x) by the trapezoid rule on a fixed 1001 x 1001 grid over [-8, 8]^2 (spacing 0.016), in numpy.

    Independent of the adaptive grid. Checked by hand against scipy.integrate.dblquad (~1e-12 apart on 6 points; it
    takes ~10 s a point, too slow for the suite) and against a 2401 x 2401 grid over [-12, 12]^2. The prior leaves
    e^-32 of its mass outside the box, and these posteriors are at least ~0.05 wide, so 0.016 resolves them.
    """
    g = np.linspace(-half, half, n)
    h = g[1] - g[0]
    z = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    out = []
    for xi in _np(x):
        log_f = _seed_log_joint_numpy(model, xi, z)
        peak = log_f.max()
        out.append(peak + np.log(np.exp(log_f - peak).sum() * h * h))  # edge weights are e^-40: immaterial
    return np.array(out)


@pytest.mark.parametrize("noise_scale", [1.0, 0.2])
def test_seed_2d_quadrature_matches_a_fine_independent_grid_to_1e_4_nats(noise_scale):
    """noise_scale 0.2: sharp, bent posteriors (the design's featured case) that the adaptive grid must resolve."""
    model = SeedLVM(2, seed=0, noise_scale=noise_scale)
    x, _ = model.sample(10, generator=1)
    x = x[[0, 1, 5, 9, 2, 3]]  # 0 (noise 1) and 1, 5, 9 (noise 0.2) needed the refinement of a 81 x 81 grid
    np.testing.assert_allclose(_np(exact_log_marginal(model, x)), _seed_2d_fine_grid(model, x),
                               atol=QUADRATURE_TOL, rtol=0)


def _grid_moments_proposal(model, x: torch.Tensor) -> MultivariateNormal:
    """A good q: the Gaussian with the posterior's mean and covariance, both computed on the adaptive grid."""
    with torch.no_grad():
        grid = adapt_latent_grid(lambda z: model.log_joint(x, z), x.shape[0], model.latent_dim, x.dtype, x.device)
        p = torch.softmax(model.log_joint(x, grid.z) + grid.log_cell, 0)[..., None]  # (n, batch, 1)
        mean = (p * grid.z).sum(0)
        dz = grid.z - mean
        cov = (p[..., None] * dz[..., :, None] * dz[..., None, :]).sum(0)
    return MultivariateNormal(mean, covariance_matrix=cov * 1.2**2)  # a little wider: bounded weights


def test_mlp_quadrature_agrees_with_importance_sampling_with_large_k_within_standard_errors():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=16, depth=2, min_scale=0.05, seed=4, dtype=torch.float64)
    with torch.no_grad():
        model.net[-1].weight.mul_(6.0)  # a curvier mu(z) and a smaller sigma(z) than at init: non-Gaussian posteriors
    x, _ = model.sample(4, generator=2)
    q = _grid_moments_proposal(model, x)
    k = 100_000
    log_w, _ = importance_log_weights(model, x, q, k, seed=0)
    is_estimate = log_mean_exp(log_w)
    # delta method: SE(log p-hat) ~= SD(w / mean w) / sqrt(k)
    w = torch.exp(log_w - log_w.max(0).values)
    se = (w / w.mean(0)).std(0) / math.sqrt(k)
    assert torch.all(se < 2e-3)  # the comparison has teeth
    diff = (exact_log_marginal(model, x) - is_estimate).abs()
    assert torch.all(diff < 4 * se + QUADRATURE_TOL), (diff, se)


# ------------------------------------------------------------------------------------------------------ identities
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_importance_with_the_exact_posterior_has_zero_variance_and_equals_log_marginal(k):
    model = _linear(2, sigma=0.3, seed=1)
    x, _ = model.sample(5, generator=3)
    estimates = importance_log_marginal(model, x, model.closed_form_posterior(x), k, trials=4, seed=0)
    assert estimates.shape == (4, 5)
    torch.testing.assert_close(estimates, model.closed_form_log_marginal(x).expand(4, 5), atol=1e-10, rtol=0)
    assert torch.all(estimates.std(0) < 1e-12)


def test_importance_with_the_exact_mixture_posterior_has_zero_variance():
    gm = GaussianMixture(3, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2)) * [1.0, 3.0])
    model = GaussianMixtureLVM.from_sklearn(gm)
    x = torch.tensor([[0.0, 0.0], [2.0, -5.0], [40.0, 3.0]], dtype=torch.float64)
    q = OneHotCategorical(probs=torch.as_tensor(gm.predict_proba(_np(x))))  # responsibilities = p(z | x)
    estimates = importance_log_marginal(model, x, q, 10, trials=3, seed=1)
    expected = torch.as_tensor(gm.score_samples(_np(x)))
    torch.testing.assert_close(estimates, expected.expand(3, 3), atol=1e-9, rtol=0)


def _unbiasedness_check(log_estimates: torch.Tensor, log_px: torch.Tensor) -> None:
    """E[p-hat / p(x)] = 1: the mean ratio over trials lies within 4 standard errors of 1, for every point."""
    ratio = torch.exp(log_estimates - log_px)  # (trials, batch)
    se = ratio.std(0) / math.sqrt(ratio.shape[0])
    assert torch.all(se < 0.05)  # enough trials for the check to mean something
    assert torch.all((ratio.mean(0) - 1).abs() < 4 * se), (ratio.mean(0), se)


def test_importance_estimate_of_p_of_x_is_unbiased():
    model = _linear(2, sigma=0.5, seed=3)
    x, _ = model.sample(3, generator=2)
    q = _shifted_wide_proposal(model.closed_form_posterior(x), shift=1.0, wide=1.5)
    estimates = importance_log_marginal(model, x, q, k=5, trials=4000, seed=7)
    _unbiasedness_check(estimates, model.closed_form_log_marginal(x))


def test_naive_monte_carlo_estimate_of_p_of_x_is_unbiased_when_the_box_holds_the_mass():
    model = _linear(1, data_dim=2, sigma=1.0, seed=2)
    x, _ = model.sample(3, generator=4)
    # the prior leaves 1e-15 of its mass outside (-8, 8): the box's truncation bias is far below the SE
    estimates = naive_mc_log_marginal(model, x, k=20, box=(-8.0, 8.0), trials=4000, seed=8)
    _unbiasedness_check(estimates, model.closed_form_log_marginal(x))


def test_expected_log_estimate_rises_with_k_and_stays_below_log_marginal():
    """E[log p-hat_k] is the IWAE bound L_k: L_1 < L_10 < L_100 < log p(x), each step beyond 4 standard errors."""
    model = _linear(2, sigma=0.5, seed=3)
    x, _ = model.sample(1, generator=2)
    q = _shifted_wide_proposal(model.closed_form_posterior(x), shift=2.0, wide=2.0)
    log_px = model.closed_form_log_marginal(x)[0]
    trials = 4000
    means, ses = [], []
    for k in (1, 10, 100):
        e = importance_log_marginal(model, x, q, k, trials=trials, seed=k)[:, 0]
        means.append(e.mean())
        ses.append(e.std() / math.sqrt(trials))
    for i in range(2):
        assert means[i + 1] - means[i] > 4 * math.hypot(ses[i], ses[i + 1])
    for m, se in zip(means, ses, strict=True):
        assert log_px - m > 4 * se


def _gaussian_cases():
    """(model, x, q): Gaussian posteriors in 1-D and 2-D and Gaussian proposals (full and diagonal covariance)."""
    out = []
    for d in (1, 2):
        model = _linear(d, sigma=0.6, seed=10 + d)
        x, _ = model.sample(3, generator=d)
        post = model.closed_form_posterior(x)
        out.append((model, x, _shifted_wide_proposal(post, shift=0.7, wide=1.3)))
        out.append((model, x, MultivariateNormal(post.loc - 0.3, scale_tril=torch.diag_embed(0.8 * post.stddev))))
    return out


@pytest.mark.parametrize("model,x,q", _gaussian_cases())
def test_elbo_equals_log_marginal_minus_closed_form_kl_for_gaussian_posteriors(model, x, q):
    kl = kl_divergence(q, model.closed_form_posterior(x))  # closed form, torch.distributions
    log_px = model.closed_form_log_marginal(x)
    # the grid-based ELBO and KL (independent of each other and of the closed forms) to quadrature accuracy
    torch.testing.assert_close(quadrature_elbo(model, x, q), log_px - kl, atol=1e-6, rtol=0)
    torch.testing.assert_close(quadrature_kl(model, x, q), kl, atol=1e-6, rtol=0)
    # the Monte Carlo ELBO within 4 SE; SE from an independent draw of the same per-sample terms
    k = 20_000
    z = q.sample((k,))
    terms = model.log_joint(x, z) - q.log_prob(z)
    se = terms.std(0) / math.sqrt(k)
    with torch.no_grad():
        mc = elbo(model, x, q, k=k)
    assert torch.all((mc - (log_px - kl)).abs() < 4 * se), (mc, log_px - kl, se)


@pytest.mark.parametrize("model_fn", [lambda: SeedLVM(2, seed=1, noise_scale=0.3), lambda: SeedLVM(1, seed=2)])
def test_log_marginal_minus_elbo_minus_kl_vanishes_for_non_gaussian_posteriors(model_fn):
    model = model_fn()
    x, _ = model.sample(3, generator=5)
    q = Independent(Normal(torch.zeros(3, model.latent_dim, dtype=torch.float64),
                           0.5 * torch.ones(3, model.latent_dim, dtype=torch.float64)), 1)
    residual = exact_log_marginal(model, x) - quadrature_elbo(model, x, q) - quadrature_kl(model, x, q)
    assert torch.all(residual.abs() < 1e-6)
    assert torch.all(quadrature_kl(model, x, q) > 0)


def test_exact_posterior_integrates_to_one_and_returns_log_marginal():
    model = SeedLVM(2, seed=3, noise_scale=0.3)
    x, _ = model.sample(3, generator=1)
    log_post, log_px = exact_posterior(model, x)
    torch.testing.assert_close(log_px, exact_log_marginal(model, x))
    with torch.no_grad():
        grid = adapt_latent_grid(log_post, 3, 2, x.dtype, x.device)
        total = torch.logsumexp(log_post(grid.z) + grid.log_cell, 0)
    torch.testing.assert_close(total, torch.zeros(3, dtype=x.dtype), atol=QUADRATURE_TOL, rtol=0)


def test_elbo_is_differentiable_in_the_proposal_parameters():
    model = _linear(2, seed=4)
    x, _ = model.sample(3, generator=1)
    loc = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    value = elbo(model, x, Independent(Normal(loc, torch.ones_like(loc)), 1), k=4)
    assert value.shape == (3,)
    value.sum().backward()
    assert loc.grad is not None and torch.all(torch.isfinite(loc.grad)) and loc.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ weights, helpers
@pytest.mark.parametrize("dim", [0, 1])
def test_normalized_weights_ess_and_log_mean_exp_match_a_direct_numpy_computation(dim):
    rng = np.random.default_rng(0)
    log_w = rng.normal(scale=3.0, size=(50, 4)) - 700.0  # exp underflows in float64 without the max shift
    w = np.exp(log_w - log_w.max(dim, keepdims=True))
    t = torch.as_tensor(log_w)
    np.testing.assert_allclose(_np(normalized_weights(t, dim=dim)), w / w.sum(dim, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(_np(effective_sample_size(t, dim=dim)), w.sum(dim) ** 2 / (w**2).sum(dim), rtol=1e-10)
    expected = log_w.max(dim) + np.log(w.mean(dim))
    np.testing.assert_allclose(_np(log_mean_exp(t, dim=dim)), expected, rtol=1e-12)


def test_effective_sample_size_is_k_for_equal_weights_and_one_for_a_single_dominant_weight():
    k = 40
    assert effective_sample_size(torch.full((k, 2), -3.0, dtype=torch.float64)).tolist() == pytest.approx([k, k])
    dominant = torch.full((k,), -1000.0, dtype=torch.float64)
    dominant[7] = 0.0
    assert effective_sample_size(dominant).item() == pytest.approx(1.0)


def test_seeded_estimates_are_reproducible_and_leave_the_global_rng_alone():
    model = _linear(2, seed=5)
    x, _ = model.sample(3, generator=1)
    q = Independent(Normal(torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)), 1)
    state = torch.get_rng_state()
    calls = [lambda s: naive_mc_log_marginal(model, x, 50, trials=3, seed=s),
             lambda s: importance_log_marginal(model, x, q, 50, trials=3, seed=s),
             lambda s: importance_log_weights(model, x, q, 50, seed=s)[0]]
    for call in calls:
        assert torch.equal(call(3), call(3))
        assert not torch.equal(call(3), call(4))
    assert torch.equal(torch.get_rng_state(), state)


def test_importance_log_weights_are_log_joint_minus_log_q_at_the_returned_z():
    model = SeedLVM(2, seed=1)
    x, _ = model.sample(3, generator=1)
    q = Independent(Normal(torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)), 1)
    log_w, z = importance_log_weights(model, x, q, 25, seed=2)
    assert log_w.shape == (25, 3) and z.shape == (25, 3, 2)
    torch.testing.assert_close(log_w, model.log_joint(x, z).detach() - q.log_prob(z))


def test_exact_log_marginal_of_a_mixture_is_the_enumerated_sum():
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(np.random.default_rng(1).normal(size=(50, 2)))
    model = GaussianMixtureLVM.from_sklearn(gm)
    x = torch.tensor([[0.5, -1.0], [1e3, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(_np(exact_log_marginal(model, x)), gm.score_samples(_np(x)), rtol=1e-10)


# ------------------------------------------------------------------------------------------------------- streaming
def test_streamed_log_mean_exp_equals_the_unchunked_computation_on_the_same_weights(monkeypatch):
    trials, k, batch = 5, 23, 3
    log_w = torch.randn(k, trials, batch, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4

    def replay():
        """draw_log_w that hands out log_w in the order the streamer asks for it (trial chunks outer, k inner)"""
        cursor = {"t": 0, "k": 0}

        def draw(streams, kc):
            tc = streams.trials
            block = log_w[cursor["k"]:cursor["k"] + kc, cursor["t"]:cursor["t"] + tc]
            cursor["k"] += kc
            if cursor["k"] == k:
                cursor["k"], cursor["t"] = 0, cursor["t"] + tc
            return block
        return draw

    expected = log_mean_exp(log_w, dim=0)  # (trials, batch)
    for chunk in (1, 7, 3 * 4, 10**9):  # ragged chunks in k and in trials, and no chunking at all
        monkeypatch.setattr(est, "CHUNK", chunk)
        got = est._stream_log_mean_exp(replay(), 0, k, trials, batch, torch.float64, torch.device("cpu"))
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_tiny_chunks_give_the_same_estimates_through_the_public_api(monkeypatch):
    model = _linear(2, sigma=0.4, seed=6)
    x, _ = model.sample(3, generator=1)
    posterior = model.closed_form_posterior(x)
    monkeypatch.setattr(est, "CHUNK", 5)
    got = importance_log_marginal(model, x, posterior, k=13, trials=4, seed=0)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got, model.closed_form_log_marginal(x).expand(4, 3), atol=1e-10, rtol=0)
    naive = naive_mc_log_marginal(model, x, k=13, trials=4, seed=0)
    assert naive.shape == (4, 3) and torch.all(torch.isfinite(naive))


def test_estimates_do_not_depend_on_the_chunk_size_and_average_the_documented_weights(monkeypatch):
    # trial r draws from its own streams, sample after sample: chunks along k or trials only split the same draws
    model = _linear(2, sigma=0.4, seed=6)
    x, _ = model.sample(3, generator=1)
    gaussian = _shifted_wide_proposal(model.closed_form_posterior(x), shift=1.0, wide=1.5)
    heavy = Independent(StudentT(torch.full((3, 2), 3.0, dtype=torch.float64), gaussian.loc.detach(),
                                 torch.ones(3, 2, dtype=torch.float64)), 1)  # extra uniforms from a second stream
    runs = {"naive": lambda: naive_mc_log_marginal(model, x, k=50, trials=7, seed=3)}
    for name, q in (("gaussian", gaussian), ("student-t", heavy)):
        runs[name] = lambda q=q: importance_log_marginal(model, x, q, k=50, trials=7, seed=3)
    whole = {name: run() for name, run in runs.items()}
    monkeypatch.setattr(est, "CHUNK", 5)  # ragged chunks: a trial's 50 draws in pieces of one or two samples
    for name, run in runs.items():
        torch.testing.assert_close(run(), whole[name], atol=1e-12, rtol=0)
    for name, q in (("gaussian", gaussian), ("student-t", heavy)):
        log_w, _ = importance_log_weights(model, x, q, 50, trials=7, seed=3)  # (k, trials, batch)
        torch.testing.assert_close(log_mean_exp(log_w), whole[name], atol=1e-12, rtol=0)


_MEMORY_SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch.distributions import MultivariateNormal
    import lvm_core.estimators as est
    from lvm_core.models import LinearGaussianLVM

    def status_mib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    torch.set_num_threads(1)
    est.CHUNK = int(sys.argv[3]) if len(sys.argv) > 3 else est.CHUNK
    model = LinearGaussianLVM.random(2, 3, sigma=0.5, seed=0)
    x, _ = model.sample(1, generator=0)
    q = MultivariateNormal(torch.zeros(1, 2, dtype=torch.float64), 2 * torch.eye(2, dtype=torch.float64))
    est.importance_log_marginal(model, x, q, k=1000, trials=10, seed=0)  # warm up the allocator and kernels
    # VmHWM, reset here to the current RSS (ru_maxrss would carry the parent's RSS over fork and exec)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_mib("VmRSS:")
    trials, k = int(sys.argv[1]), int(sys.argv[2])
    out = est.importance_log_marginal(model, x, q, k=k, trials=trials, seed=0)
    assert out.shape == (trials, 1) and bool(torch.isfinite(out).all())
    print(status_mib("VmHWM:") - base)
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_memory_stays_bounded_when_trials_times_k_is_4e6():
    """4e6 weights for one point, peak RSS growth in a fresh process: measured ~60 MiB with CHUNK = 2^18, ~140 MiB with
    2^20, ~460 MiB unchunked (CHUNK = 10**9), so the bound separates streaming from materialising all the draws.
    1e8 is in benchmarks/bench_core.py."""
    result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, "40", "100000"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    growth_mib = float(result.stdout.strip().splitlines()[-1])
    assert growth_mib < 200, growth_mib
