"""Tests for lvm_core.gmm against scikit-learn, scipy and closed forms."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from lvm_core.datasets import PRESET_NAMES, make_dataset
from lvm_core.gmm import (
    COVARIANCE_TYPES,
    INIT_PARAMS,
    MixtureFitError,
    component_ellipses,
    decompose_density,
    em_extend,
    em_frames,
    em_run,
    em_start,
    em_steps,
    fit_mixture,
    frame_iterations,
    full_covariances,
    log_marginal,
    mixture_1d_log_terms,
    mixture_from_params,
    responsibilities,
    run_restarts,
    sample_generative,
    select_n_components,
    trajectory_table,
)


@pytest.fixture(scope="module")
def blobs():
    return make_dataset("overlapping", n=400, seed=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_stepping_n_iterations_equals_a_fit_with_max_iter_n(blobs, covariance_type, init_params):
    n = 7
    stepped, curve, _ = em_steps(blobs, n, 4, covariance_type, init_params, seed=3)
    # tol=0: the reference fit never stops early, so it runs exactly n iterations
    ref = fit_mixture(blobs, 4, covariance_type, init_params, seed=3, max_iter=n, tol=0.0)
    assert ref.n_iter_ == n and curve.shape == (n + 1,)
    np.testing.assert_allclose(stepped.weights_, ref.weights_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stepped.means_, ref.means_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stepped.covariances_, ref.covariances_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(curve[-1], ref.score(blobs), rtol=1e-12)


def test_step_zero_is_the_initialisation_and_extending_in_pieces_matches_one_run(blobs):
    init = fit_mixture(blobs, 3, "full", "random_from_data", seed=5, max_iter=0)
    trace = em_start(blobs, 3, "full", "random_from_data", seed=5)
    np.testing.assert_array_equal(trace.params[0].means, init.means_)
    em_extend(trace, blobs, 2)
    em_extend(trace, blobs, 3)
    whole, curve, _ = em_steps(blobs, 5, 3, "full", "random_from_data", seed=5)
    np.testing.assert_allclose(trace.mixture().means_, whole.means_, rtol=1e-12)
    np.testing.assert_allclose(trace.log_likelihoods, curve, rtol=1e-12)
    # snapshots rebuild the mixture at any iteration: its score is the recorded curve value
    for t in (0, 2, 5):
        np.testing.assert_allclose(trace.mixture(t).score(blobs), curve[t], rtol=1e-12)


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_iteration_zero_is_a_proper_density_for_every_initialisation(blobs, init_params):
    # scikit-learn's one-point initialisations leave pi summing to K / n; em_start rescales it, which must change
    # nothing after the first E-step (pinned by the stepping-equals-fitting test above for every init)
    trace = em_start(blobs, 4, "full", init_params, seed=2)
    raw = fit_mixture(blobs, 4, "full", init_params, seed=2, max_iter=0)
    np.testing.assert_allclose(trace.params[0].weights.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(trace.params[0].weights, raw.weights_ / raw.weights_.sum(), rtol=1e-12)
    np.testing.assert_allclose(trace.mixture(0).score(blobs), trace.log_likelihoods[0], rtol=1e-12)


def test_a_trace_without_its_live_model_resumes_identically(blobs):
    a = em_extend(em_start(blobs, 3, "diag", "kmeans", seed=1), blobs, 3)
    b = em_extend(em_start(blobs, 3, "diag", "kmeans", seed=1), blobs, 3)
    b._model = None  # as after a pickle round trip
    em_extend(a, blobs, 4)
    em_extend(b, blobs, 4)
    np.testing.assert_allclose(a.mixture().means_, b.mixture().means_, rtol=1e-10)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_log_likelihood_never_decreases_across_presets_seeds_and_covariance_types(name):
    X = make_dataset(name, n=200, seed=1)
    for seed in (0, 1):
        for covariance_type in COVARIANCE_TYPES:
            _, curve, _ = em_steps(X, 8, 5, covariance_type, "random_from_data", seed, tol=0.0)
            rel_change = np.diff(curve) / np.abs(curve[1:])
            assert rel_change.min() >= -1e-9, (name, seed, covariance_type, rel_change.min())


def test_converged_flag_is_set_when_the_change_falls_below_tol():
    X = make_dataset("well_separated", n=300, seed=0)
    trace = em_extend(em_start(X, 3, "full", "kmeans", seed=0, tol=1e-3), X, 60)
    t = trace.converged_at
    assert t is not None and abs(trace.log_likelihoods[t] - trace.log_likelihoods[t - 1]) < 1e-3
    assert all(abs(np.diff(trace.log_likelihoods[:t]))[1:] >= 1e-3)
    assert trace.converged() and not trace.converged(t - 1)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_decomposition_terms_logsumexp_to_score_samples_and_match_scipy(blobs, covariance_type):
    gm = fit_mixture(blobs, 3, covariance_type, seed=0)
    terms = decompose_density(gm, blobs[:50])  # (50, K)
    assert terms.shape == (50, 3)
    np.testing.assert_allclose(logsumexp(terms, axis=1), gm.score_samples(blobs[:50]), rtol=1e-12)
    np.testing.assert_allclose(log_marginal(gm, blobs[:50]), gm.score_samples(blobs[:50]), rtol=1e-12)
    covs = full_covariances(gm)
    x = np.array([0.3, -1.2])
    ref = [np.log(gm.weights_[k]) + multivariate_normal(gm.means_[k], covs[k]).logpdf(x) for k in range(3)]
    np.testing.assert_allclose(decompose_density(gm, x), ref, rtol=1e-12)


def test_responsibilities_are_the_normalised_terms(blobs):
    gm = fit_mixture(blobs, 3, "full", seed=0)
    terms = decompose_density(gm, blobs)
    resp = responsibilities(gm, blobs)
    np.testing.assert_allclose(resp, np.exp(terms - logsumexp(terms, axis=1, keepdims=True)), atol=1e-12)
    np.testing.assert_allclose(resp.sum(1), 1.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_ellipses_lie_at_the_right_mahalanobis_distance(blobs, covariance_type):
    gm = fit_mixture(blobs, 3, covariance_type, seed=0)
    covs = full_covariances(gm)
    ellipses = component_ellipses(gm, n_stds=(1.0, 2.0))
    for k in range(3):
        prec = np.linalg.inv(covs[k])
        for n_std, pts in zip((1.0, 2.0), ellipses[k], strict=True):
            diff = pts - gm.means_[k]
            maha = np.sqrt(np.einsum("ni,ij,nj->n", diff, prec, diff))
            np.testing.assert_allclose(maha, n_std, rtol=1e-9)
            np.testing.assert_allclose(pts[0], pts[-1])


def test_generative_samples_follow_pi_and_the_components():
    X = make_dataset("unequal_variances", n=600, seed=0)
    gm = fit_mixture(X, 3, "full", seed=0)
    n = 40_000
    x, k = sample_generative(gm, n, seed=1)
    assert x.shape == (n, 2) and k.shape == (n,)
    freq = np.bincount(k, minlength=3) / n
    se = np.sqrt(gm.weights_ * (1 - gm.weights_) / n)
    assert np.all(np.abs(freq - gm.weights_) < 5 * se)
    covs = full_covariances(gm)
    for j in range(3):
        xs = x[k == j]
        se_mean = np.sqrt(np.diag(covs[j]) / len(xs))
        assert np.all(np.abs(xs.mean(0) - gm.means_[j]) < 5 * se_mean)
        # sample covariance: SE of each entry is about sqrt((s_ii s_jj + s_ij^2) / m)
        se_cov = np.sqrt((np.outer(np.diag(covs[j]), np.diag(covs[j])) + covs[j] ** 2) / len(xs))
        assert np.all(np.abs(np.cov(xs.T) - covs[j]) < 5 * se_cov)
    np.testing.assert_array_equal(sample_generative(gm, 10, seed=1)[0], x[:10])  # prefix-stable: animation


def test_restarts_find_distinct_optima_best_first_and_resume():
    X = make_dataset("well_separated", n=300, seed=0)
    calls = []
    res = run_restarts(X, 4, 5, "full", "random_from_data", seed=0, callback=lambda r, R, _: calls.append(r))
    assert calls == list(range(1, 6)) and res.log_likelihoods.shape == (5,)
    lls = [o.restart.log_likelihood for o in res.optima]
    assert lls == sorted(lls, reverse=True) and sum(o.count for o in res.optima) == 5
    assert np.isclose(lls[0], res.log_likelihoods.max()) and len(res.optima) >= 2  # K=4 on 3 blobs: many optima
    resumed = run_restarts(X, 4, 5, "full", "random_from_data", seed=0, done=res.restarts[:2])
    np.testing.assert_allclose(resumed.log_likelihoods, res.log_likelihoods, rtol=1e-12)
    # the same optimum reached from two initialisations is counted once
    res3 = run_restarts(X, 3, 4, "full", "kmeans", seed=0)
    assert len(res3.optima) == 1 and res3.optima[0].count == 4


def test_model_selection_prefers_the_true_number_of_clusters():
    X = make_dataset("well_separated", n=600, seed=0)
    sel = select_n_components(X, ks=range(1, 7), seed=0)
    assert sel.ks[np.argmin(sel.bic)] == 3
    assert sel.heldout_log_likelihood[2] > sel.heldout_log_likelihood[0] + 0.5
    assert sel.n_train + sel.n_test == 600


def test_fitting_that_cannot_work_raises_a_message_saying_what_to_do():
    X = make_dataset("rings", n=5, seed=0)
    with pytest.raises(MixtureFitError, match="Reduce K"):
        fit_mixture(X, 6)
    with pytest.raises(MixtureFitError, match="identical"):
        fit_mixture(np.ones((10, 2)), 2)
    with pytest.raises(MixtureFitError, match="at least 2"):
        fit_mixture(np.ones((1, 2)), 1)
    dup = np.array([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    with pytest.raises(MixtureFitError, match="distinct"):
        em_start(dup, 3)
    with pytest.raises(ValueError):  # MixtureFitError is a ValueError
        em_start(dup, 3)


def test_mixture_from_params_round_trips_every_covariance_type(blobs):
    from lvm_core.gmm import get_params

    for covariance_type in COVARIANCE_TYPES:
        gm = fit_mixture(blobs, 3, covariance_type, seed=0)
        again = mixture_from_params(get_params(gm), covariance_type)
        np.testing.assert_allclose(again.score_samples(blobs), gm.score_samples(blobs), rtol=1e-12)
        np.testing.assert_allclose(again.precisions_, gm.precisions_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lvm_from_sklearn_exact_log_marginal_matches_score_samples(blobs, covariance_type):
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("lvm_core.models")
    gm = fit_mixture(blobs, 3, covariance_type, seed=0)
    lvm = models.GaussianMixtureLVM.from_sklearn(gm)
    x = torch.as_tensor(blobs[:64])
    z = lvm.enumerate_latents()  # (K, 1, K)
    exact = torch.logsumexp(lvm.log_joint(x, z), dim=0)  # (64,)
    np.testing.assert_allclose(exact.detach().numpy(), gm.score_samples(blobs[:64]), rtol=1e-10)
    if hasattr(lvm, "closed_form_log_marginal"):
        closed = lvm.closed_form_log_marginal(x).detach().numpy()
        np.testing.assert_allclose(closed, gm.score_samples(blobs[:64]), rtol=1e-10)


# ---- the whole trajectory at once ---------------------------------------------------------------------------


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_em_run_stops_at_convergence_and_matches_stepping(blobs, init_params):
    trace = em_run(blobs, 3, "full", init_params, seed=2)
    t = trace.converged_at
    assert t is not None and trace.n_iter == t  # stops at the first converged iteration
    assert abs(trace.log_likelihoods[t] - trace.log_likelihoods[t - 1]) < trace.tol
    assert all(abs(trace.log_likelihoods[s] - trace.log_likelihoods[s - 1]) >= trace.tol for s in range(1, t))
    stepped, curve, _ = em_steps(blobs, t, 3, "full", init_params, seed=2)
    np.testing.assert_allclose(trace.log_likelihoods, curve, rtol=1e-12)
    np.testing.assert_allclose(trace.mixture().means_, stepped.means_, rtol=1e-12)


def test_em_run_stops_at_the_iteration_limit(blobs):
    trace = em_run(blobs, 5, "full", "random", seed=0, max_iter=3, tol=0.0)
    assert trace.n_iter == 3 and trace.converged_at is None


def test_frame_iterations_keep_the_start_the_end_and_every_early_iteration():
    np.testing.assert_array_equal(frame_iterations(10, 60), np.arange(11))
    it = frame_iterations(200, 60)
    assert len(it) <= 60 and it[0] == 0 and it[-1] == 200 and np.all(np.diff(it) > 0)
    np.testing.assert_array_equal(it[:20], np.arange(20))
    assert frame_iterations(200, 2).tolist() == [0, 200]


def test_em_frames_hold_each_iterations_responsibilities_and_density(blobs):
    trace = em_run(blobs, 3, "full", "random", seed=0)
    frames = em_frames(trace, blobs, [0, trace.n_iter], (-6, 6), (-6, 6), density_n=25)
    for f in frames:
        gm = trace.mixture(f.iteration)
        np.testing.assert_allclose(f.responsibilities, responsibilities(gm, blobs))
        np.testing.assert_allclose(f.means, gm.means_)
        assert f.log_likelihood == trace.log_likelihoods[f.iteration]
        xs, ys, log_p = f.density
        assert log_p.shape == (25, 25)
        np.testing.assert_allclose(log_p[3, 7], log_marginal(gm, np.array([[xs[7], ys[3]]]))[0], rtol=1e-10)
        assert len(f.ellipses) == 3 and len(f.ellipses[0]) == 2
    assert em_frames(trace, blobs, [0])[0].density is None


def test_trajectory_table_has_a_row_per_iteration_and_component(blobs):
    trace = em_run(blobs, 2, "diag", "kmeans", seed=0, max_iter=4)
    table = trajectory_table(trace)
    n = (trace.n_iter + 1) * 2
    assert all(len(v) == n for v in table.values())
    last = table["iteration"] == trace.n_iter
    np.testing.assert_allclose(table["weight"][last], trace.mixture().weights_)
    cov = full_covariances(trace.mixture())
    np.testing.assert_allclose(table["cov_12"][last], cov[:, 0, 1])  # zero for diagonal covariances
    np.testing.assert_allclose(table["cov_22"][last], cov[:, 1, 1])


def test_mixture_1d_log_terms_are_scipy_normals_weighted_by_normalised_pi():
    from scipy.stats import norm

    x = np.linspace(-30, 30, 201)
    terms = mixture_1d_log_terms(x, [2.0, 6.0], [-1.0, 2.0], [0.5, 3.0])
    np.testing.assert_allclose(terms[0], np.log(0.25) + norm.logpdf(x, -1.0, 0.5), rtol=1e-12)
    np.testing.assert_allclose(terms[1], np.log(0.75) + norm.logpdf(x, 2.0, 3.0), rtol=1e-12)
    assert np.all(np.isfinite(logsumexp(terms, axis=0)))  # far in the tails too: log space
