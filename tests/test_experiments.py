"""The estimator experiments behind the "Estimating p(x)" page: known answers, zero variance, CRN, dimensions."""

import math

import numpy as np
import pytest
import torch

from lvm_core import experiments as ex
from lvm_core.estimators import estimator_summary, exact_log_marginal, importance_log_weights
from lvm_core.models import GaussianMixtureLVM, LinearGaussianLVM, SeedLVM
from lvm_core.proposals import ProposalSpec


def diagonal_linear_model(latent_dim: int) -> LinearGaussianLVM:
    """W with orthogonal columns, so p(z|x) has a diagonal covariance (a mean-field q can equal it)"""
    W = torch.zeros(max(latent_dim, 2), latent_dim, dtype=torch.float64)
    W[range(latent_dim), range(latent_dim)] = torch.arange(1, latent_dim + 1, dtype=torch.float64)
    return LinearGaussianLVM(W, torch.zeros(W.shape[0], dtype=torch.float64), 0.5)


def exact_q(model, x) -> ProposalSpec:
    mean, std, _ = ex.posterior_moments(model, x)
    return ProposalSpec("gaussian", tuple(mean), tuple(std))


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_q_equal_to_the_posterior_gives_zero_variance_and_full_ess(latent_dim):
    model = diagonal_linear_model(latent_dim)
    x = torch.full((1, model.data_dim), 0.7, dtype=torch.float64)
    log_px = float(exact_log_marginal(model, x)[0])
    run = ex.run_estimator(model, x, exact_q(model, x), k=50, trials=20, seed=0)
    # every weight p(x, z) / p(z | x) equals p(x): each estimate is exact up to rounding
    assert np.allclose(run.log_estimates, log_px, atol=1e-12)
    assert np.allclose(run.ess, 50) and np.allclose(run.max_weight, 1 / 50)
    assert float(estimator_summary(torch.tensor(run.log_estimates), log_px)["rel_rmse"]) < 1e-10


def test_relative_variance_matches_the_closed_form_for_a_too_wide_gaussian_q():
    # posterior N(m, s^2), q = N(m, t^2): E_q[(p(z|x) / q)^2] = t^2 / (s sqrt(2 t^2 - s^2)), so with k = 1 the
    # squared relative error of p-hat has mean t^2 / (s sqrt(2 t^2 - s^2)) - 1
    model = diagonal_linear_model(1)
    x = torch.tensor([[0.4, 0.0]], dtype=torch.float64)
    mean, std, _ = ex.posterior_moments(model, x)
    s, t = float(std[0]), 2.0 * float(std[0])
    trials = 20_000
    run = ex.run_estimator(model, x, ProposalSpec("gaussian", tuple(mean), (t,)), k=1, trials=trials, seed=1)
    r = np.exp(run.log_estimates - float(exact_log_marginal(model, x)[0]))
    sq = (r - 1) ** 2
    expected = t**2 / (s * math.sqrt(2 * t**2 - s**2)) - 1
    se = sq.std() / math.sqrt(trials)
    assert abs(sq.mean() - expected) < 4 * se
    summary = estimator_summary(torch.tensor(run.log_estimates), float(exact_log_marginal(model, x)[0]))
    assert float(summary["rel_rmse"]) ** 2 == pytest.approx(sq.mean(), rel=1e-9)
    # and p-hat is unbiased: E[r] = 1 within 4 standard errors
    assert abs(r.mean() - 1) < 4 * r.std() / math.sqrt(trials)


@pytest.mark.parametrize("name", ["naive", "prior"])
def test_naive_and_prior_estimates_of_p_are_unbiased(name):
    model = SeedLVM(latent_dim=1, noise_scale=0.5)
    x = torch.tensor([[0.4, 0.6]], dtype=torch.float64)
    log_px = float(exact_log_marginal(model, x)[0])
    proposal = ex.default_proposals(model, (-6.0, 6.0), exact_q(model, x))[name]
    run = ex.run_estimator(model, x, proposal, k=20, trials=2000, seed=3)
    r = np.exp(run.log_estimates - log_px)
    assert abs(r.mean() - 1) < 4 * r.std() / math.sqrt(len(r))


def test_common_random_numbers_share_the_uniforms_across_estimators_k_and_trials():
    model = SeedLVM(latent_dim=2)
    x = torch.tensor([[0.3, 0.8]], dtype=torch.float64)
    prior = ProposalSpec("gaussian", (0.0, 0.0), (1.0, 1.0))
    loc, scale = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    shifted = ProposalSpec("gaussian", (1.0, -0.5), (0.5, 2.0))
    heavy = ProposalSpec("student_t", (1.0, -0.5), (0.5, 2.0), df=3)
    box = ProposalSpec("box", lo=-4.0, hi=4.0, dim=2)

    def draws(spec):
        return importance_log_weights(model, x, spec.distribution(), 100, trials=3, seed=5)[1][:, :, 0]

    # every estimator maps the very same uniforms: the box linearly, the Gaussian through Phi^-1, the Student-t's
    # normal part too (its chi-square comes from a stream of its own, so it cannot flip a sign)
    u = (draws(box) + 4.0) / 8.0  # (k, trials, 2)
    torch.testing.assert_close(draws(shifted), loc + scale * torch.special.ndtri(u), atol=1e-9, rtol=0)
    assert torch.equal(torch.sign(draws(heavy) - loc), torch.sign(draws(shifted) - loc))
    # an estimate with k samples uses the first k draws of one with more; trials are prefixes too
    big = ex.run_estimator(model, x, shifted, k=1000, trials=30, seed=5)
    small = ex.run_estimator(model, x, shifted, k=100, trials=10, seed=5)
    i = list(big.sweep_k).index(100)
    assert np.allclose(big.sweep[i, :10], small.log_estimates, rtol=0, atol=1e-12)
    # the same proposal under two names gives identical numbers (differences on screen are the estimator's)
    a = ex.run_estimator(model, x, prior, k=200, trials=5, seed=9)
    b = ex.run_estimator(model, x, ProposalSpec("gaussian", (0.0, 0.0), (1.0, 1.0)), k=200, trials=5, seed=9)
    assert np.array_equal(a.log_estimates, b.log_estimates)
    assert not np.array_equal(a.log_estimates, ex.run_estimator(model, x, prior, 200, 5, seed=10).log_estimates)


@pytest.mark.parametrize("family", ["box", "gaussian", "student_t"])
def test_run_estimator_does_not_depend_on_the_chunk_size(monkeypatch, family):
    model = SeedLVM(latent_dim=2)
    x = torch.tensor([[0.3, 0.8]], dtype=torch.float64)
    spec = ProposalSpec("box", dim=2) if family == "box" else ProposalSpec(family, (0.2, 0.1), (0.7, 1.3), df=2)
    whole = ex.run_estimator(model, x, spec, k=300, trials=40, seed=2)
    monkeypatch.setattr(ex, "CHUNK", 7 * 300)  # three or four trials per chunk, the last one ragged
    chunked = ex.run_estimator(model, x, spec, k=300, trials=40, seed=2)
    # the same draws: the estimates agree to rounding (a reduction over a wider block may round its last bit apart)
    for a, b in ((whole.log_estimates, chunked.log_estimates), (whole.sweep, chunked.sweep), (whole.ess, chunked.ess)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_the_page_runs_the_documented_estimator_its_trials_are_importance_log_marginal():
    from lvm_core.estimators import importance_log_marginal, naive_mc_log_marginal

    model = SeedLVM(latent_dim=1, noise_scale=0.5)
    x = torch.tensor([[0.4, 0.6]], dtype=torch.float64)
    q = ProposalSpec("student_t", (0.3,), (0.8,), df=4)
    run = ex.run_estimator(model, x, q, k=250, trials=12, seed=8)
    documented = importance_log_marginal(model, x, q.distribution(), 250, trials=12, seed=8)[:, 0]
    np.testing.assert_allclose(run.log_estimates, documented.numpy(), rtol=0, atol=1e-12)
    naive = ex.run_estimator(model, x, ex.default_proposals(model, (-5.0, 5.0), q)["naive"], k=250, trials=12, seed=8)
    documented = naive_mc_log_marginal(model, x, 250, box=(-5.0, 5.0), trials=12, seed=8)[:, 0]
    np.testing.assert_allclose(naive.log_estimates, documented.numpy(), rtol=0, atol=1e-12)


def test_naive_error_grows_with_latent_dimension_while_importance_sampling_does_not():
    sweep = ex.dimension_sweep([1, 3, 6], sigma=0.5, k=500, trials=60, seed=0)
    naive, importance = sweep["log_naive"], sweep["log_importance"]
    assert naive[0] < naive[1] < naive[2]
    assert naive[2] - naive[0] > math.log(4)  # at least 4x the relative error at d = 6 than at d = 1
    assert np.all(importance[1:] < naive[1:] - math.log(3))


def test_jensen_mean_log_estimate_rises_with_k_and_stays_below_log_px():
    model = SeedLVM(latent_dim=1, noise_scale=0.3)
    x = torch.tensor([[0.2, 0.9]], dtype=torch.float64)
    log_px = float(exact_log_marginal(model, x)[0])
    run = ex.run_estimator(model, x, ProposalSpec("gaussian", (0.0,), (1.0,)), k=1000, trials=200, seed=0)
    stats = ex.sweep_statistics(run, log_px)
    m, se = stats["mean_log"], stats["se_log"]
    assert np.all(m <= log_px + 3 * se)
    assert m[0] < m[-1] and m[0] < log_px - 0.05  # the bound at k = 1 (an ELBO) is visibly loose
    assert np.all(np.diff(stats["log_rel_rmse"][-6:]) < 0)  # the error keeps falling at large k


@pytest.mark.parametrize("preset", ["too narrow", "too wide"])
def test_extreme_proposals_k1_and_far_points_stay_finite(preset):
    model = SeedLVM(latent_dim=2, noise_scale=0.5)
    for point in ([0.4, 0.6], [60.0, -40.0]):  # a typical x, and one far outside the data
        x = torch.tensor([point], dtype=torch.float64)
        log_px = float(exact_log_marginal(model, x)[0])
        mean, std, _ = ex.posterior_moments(model, x)
        loc, scale = ex.preset_proposal(preset, mean, std)
        scale = scale * (1e-2 if preset == "too narrow" else 1e2)  # 1000x off the posterior's scale
        q = ProposalSpec("gaussian", tuple(loc), tuple(scale))
        for k in (1, 500):
            runs = {n: ex.run_estimator(model, x, p, k, 20, 0) for n, p in ex.default_proposals(model, (-4, 4),
                                                                                              q).items()}
            rows = ex.summary_table(runs, log_px, k)
            for row in rows:
                assert math.isfinite(row["mean log p-hat"]), (point, preset, k, row)
                assert math.isfinite(row["log_rel_rmse"]) and 1 <= row["ess"] <= k


def test_posterior_moments_by_quadrature_match_the_closed_form():
    model = LinearGaussianLVM.random(2, 2, 0.4, seed=3)

    class WithoutClosedForm(LinearGaussianLVM):
        closed_form_posterior = None
        closed_form_log_marginal = None

    other = WithoutClosedForm(model.W.detach(), model.b.detach(), 0.4)
    x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    m1, s1, how1 = ex.posterior_moments(model, x)
    m2, s2, how2 = ex.posterior_moments(other, x)
    assert (how1, how2) == ("closed form", "quadrature")
    assert np.allclose(m1, m2, atol=1e-5) and np.allclose(s1, s2, atol=1e-5)


def test_display_grid_of_log_px_agrees_with_the_exact_values():
    model = SeedLVM(latent_dim=1)
    xs = torch.linspace(-1.0, 2.0, 4, dtype=torch.float64)
    grid = ex.log_marginal_on_grid(model, xs, xs)  # (ny, nx)
    x = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    assert np.allclose(grid.reshape(-1).numpy(), exact_log_marginal(model, x).numpy(), atol=1e-4)
    linear = LinearGaussianLVM.random(4, 2, 0.5)
    assert torch.allclose(ex.log_marginal_on_grid(linear, xs, xs).reshape(-1), linear.closed_form_log_marginal(x))


def test_discrete_model_naive_is_uniform_over_components_and_the_posterior_q_is_exact():
    model = GaussianMixtureLVM([0.2, 0.5, 0.3], [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]],
                               torch.eye(2, dtype=torch.float64).expand(3, 2, 2) * 0.5)
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    log_px = float(exact_log_marginal(model, x)[0])
    post, _, _ = ex.posterior_moments(model, x)
    prior = np.array([0.2, 0.5, 0.3])
    props = ex.default_proposals(model, (-4, 4), ex.discrete_proposal(post, prior, 0.0))
    assert props["naive"].probs == pytest.approx((1 / 3,) * 3)
    exact = ex.run_estimator(model, x, props["importance"], k=10, trials=10, seed=0)
    assert np.allclose(exact.log_estimates, log_px, atol=1e-12)
    naive = ex.run_estimator(model, x, props["naive"], k=5, trials=4000, seed=0)
    r = np.exp(naive.log_estimates - log_px)
    assert abs(r.mean() - 1) < 4 * r.std() / math.sqrt(len(r))


def test_latent_view_stays_near_the_posterior_for_a_thousandfold_wide_q():
    mean, std = np.array([0.5, -0.2]), np.array([0.1, 0.2])
    wide = ProposalSpec("gaussian", (0.5, -0.2), (100.0, 200.0))
    view = ex.latent_view(mean, std, wide, 2)
    assert np.all(view[:, 1] - view[:, 0] <= 2 * 16 * std + 1e-12)
    narrow = ProposalSpec("gaussian", (0.5, -0.2), (1e-4, 1e-4))
    assert np.allclose(ex.latent_view(mean, std, narrow, 2), np.stack([mean - 4 * std, mean + 4 * std], -1))


def test_trials_are_lowered_only_beyond_the_evaluation_budget():
    assert ex.trials_within_budget(1_000, 200) == 200  # the page's default runs in full
    assert ex.trials_within_budget(100_000, 1_000) == ex.MAX_EVALUATIONS // 100_000
    assert ex.trials_within_budget(10**9, 1_000) == 2  # never fewer than two trials (a spread needs two)


def test_proposal_divergences_match_torch_closed_forms_and_exact_sums():
    from torch.distributions import MultivariateNormal, kl_divergence

    model = LinearGaussianLVM.random(2, 2, 0.5, seed=0)
    x = torch.tensor([[0.4, -0.3]], dtype=torch.float64)
    q = ProposalSpec("gaussian", (0.2, -0.1), (0.6, 1.3))
    gq = MultivariateNormal(torch.tensor([[0.2, -0.1]], dtype=torch.float64),
                            torch.diag(torch.tensor([0.36, 1.69], dtype=torch.float64))[None])
    post = model.closed_form_posterior(x)
    out = ex.proposal_divergences(model, x, q)
    assert out["forward_kl"] == pytest.approx(float(kl_divergence(post, gq)[0].detach()), rel=1e-12)
    assert out["reverse_kl"] == pytest.approx(float(kl_divergence(gq, post)[0].detach()), rel=1e-12)
    assert out["draws_needed"] == pytest.approx(math.exp(out["forward_kl"]), rel=1e-12)
    # the same model through quadrature (a Student-t q has no closed form): against a brute-force grid
    t = ProposalSpec("student_t", (0.2, -0.1), (0.6, 1.3), df=4)
    grid = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 1, 2)
    log_post = post.log_prob(z)[:, 0].detach()
    log_t = t.distribution().log_prob(z)[:, 0]
    cell = (grid[1] - grid[0]) ** 2
    forward = float((log_post.exp() * (log_post - log_t)).sum() * cell)
    assert ex.proposal_divergences(model, x, t)["forward_kl"] == pytest.approx(forward, abs=1e-4)
    # a discrete z: sums over the components, by hand
    mixture = GaussianMixtureLVM([0.3, 0.7], [[0.0, 0.0], [2.0, 1.0]], np.stack([np.eye(2) * 0.5, np.eye(2)]))
    xm = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    p = torch.softmax(mixture.log_joint(xm, mixture.enumerate_latents())[:, 0], 0).detach().numpy()
    qm = np.array([0.5, 0.5])
    got = ex.proposal_divergences(mixture, xm, ProposalSpec("categorical", probs=tuple(qm)))
    assert got["forward_kl"] == pytest.approx(float(np.sum(p * np.log(p / qm))), rel=1e-10)
    assert got["reverse_kl"] == pytest.approx(float(np.sum(qm * np.log(qm / p))), rel=1e-10)
    # beyond a 2-D latent without a closed form: no exact posterior, NaN rather than a guess
    assert math.isnan(ex.proposal_divergences(_mlp3(), xm, ProposalSpec("gaussian", (0.0,) * 3,
                                                                         (1.0,) * 3))["forward_kl"])


def _mlp3():
    from lvm_core.models import MLPLVM

    return MLPLVM(latent_dim=3, data_dim=2, hidden=8, depth=1, seed=0, dtype=torch.float64)


def test_run_estimator_reports_pareto_khat_per_trial_and_along_the_sweep():
    from lvm_core.estimators import KHAT_MIN_DRAWS, pareto_khat

    model = diagonal_linear_model(2)
    x = torch.full((1, 2), 0.7, dtype=torch.float64)
    mean, std, _ = ex.posterior_moments(model, x)
    narrow = ProposalSpec("gaussian", tuple(mean), tuple(std / 3))
    wide = ProposalSpec("gaussian", tuple(mean), tuple(std * 3))
    runs = {name: ex.run_estimator(model, x, q, 2000, 12, seed=1) for name, q in (("narrow", narrow),
                                                                                   ("wide", wide))}
    # the per-trial k-hat is pareto_khat of that trial's weights (the documented function, not a copy)
    log_w, _ = importance_log_weights(model, x, narrow.distribution(), 2000, trials=12, seed=1)
    assert np.allclose(runs["narrow"].khat, pareto_khat(log_w[..., 0], 0).numpy())
    # q narrower than the posterior: heavy-tailed weights (k-hat above the threshold); wider: light (below)
    assert runs["narrow"].median_khat > 0.7 and runs["wide"].median_khat < 0.5
    ks = runs["narrow"].sweep_k
    assert np.isnan(runs["narrow"].sweep_khat[ks < KHAT_MIN_DRAWS]).all()
    assert np.isfinite(runs["narrow"].sweep_khat[ks >= KHAT_MIN_DRAWS]).all()
