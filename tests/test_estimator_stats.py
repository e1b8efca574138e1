"""Estimator statistics and the common-random-number samplers appended to lvm_core.estimators (issue 5)."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import MultivariateNormal, Normal, StudentT

from lvm_core.estimators import (
    crn_uniforms,
    estimator_summary,
    uniform_to_box,
    uniform_to_categorical,
    uniform_to_gaussian,
    uniform_to_student_t,
)


def test_summary_matches_numpy_on_known_ratios():
    log_px = -3.7
    r = np.array([1.0, 2.0, 3.0, 4.0])  # p-hat / p
    s = estimator_summary(torch.tensor(np.log(r) + log_px), log_px)
    assert float(s["bias_rel"]) == pytest.approx(r.mean() - 1, rel=1e-12)
    assert float(s["sd_rel"]) == pytest.approx(r.std(), rel=1e-12)
    assert float(s["rel_rmse"]) == pytest.approx(np.sqrt(np.mean((r - 1) ** 2)), rel=1e-12)
    assert float(s["log_rel_rmse"]) == pytest.approx(0.5 * np.log(np.mean((r - 1) ** 2)), rel=1e-12)
    assert float(s["bias_log"]) == pytest.approx(np.log(r).mean(), rel=1e-12)
    assert float(s["sd_log"]) == pytest.approx(np.log(r).std(), rel=1e-12)
    assert float(s["rmse_log"]) == pytest.approx(np.sqrt(np.mean(np.log(r) ** 2)), rel=1e-12)


def test_summary_of_exact_estimates_is_zero():
    s = estimator_summary(torch.full((50,), -2.0, dtype=torch.float64), -2.0)
    for key in ("bias_rel", "sd_rel", "rel_rmse", "bias_log", "sd_log", "rmse_log"):
        assert float(s[key]) == 0.0, key


def test_summary_stays_finite_for_astronomical_overshoot_and_all_zero_estimates():
    # p-hat / p = e^1000 cannot be exponentiated, but its log RMSE can: log |e^1000 - 1| = 1000
    s = estimator_summary(torch.tensor([1000.0, 1000.0], dtype=torch.float64), 0.0)
    assert float(s["log_rel_rmse"]) == pytest.approx(1000.0)
    assert float(s["log_sd_rel"]) == -math.inf or float(s["sd_rel"]) == 0.0
    zero = estimator_summary(torch.full((3,), -math.inf, dtype=torch.float64), -1.0)
    assert float(zero["bias_rel"]) == -1.0 and float(zero["sd_rel"]) == 0.0
    assert float(zero["rel_rmse"]) == pytest.approx(1.0)


def test_summary_along_a_trial_axis_with_per_row_truth():
    log_est = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]], dtype=torch.float64)  # (rows, trials)
    s = estimator_summary(log_est, torch.tensor([0.0, 1.0], dtype=torch.float64), dim=1)
    assert s["bias_rel"].tolist() == pytest.approx([1.0, 0.0])
    assert s["sd_rel"].tolist() == pytest.approx([1.0, 0.0])


def test_crn_uniforms_are_prefixes_in_k_and_in_trials():
    big = crn_uniforms(seed=7, trials=20, k=500, width=3)  # (k, trials, width)
    small = crn_uniforms(seed=7, trials=5, k=40, width=3)
    assert big.shape == (500, 20, 3)
    assert torch.equal(big[:40, :5], small)
    # a later chunk of trials continues the same streams
    assert torch.equal(crn_uniforms(7, 5, 40, 3, first_trial=10), big[:40, 10:15])
    assert not torch.equal(crn_uniforms(8, 5, 40, 3), small)
    assert not torch.equal(crn_uniforms(7, 5, 40, 3, stream=1), small)


def test_crn_uniforms_are_uniform():
    u = crn_uniforms(seed=0, trials=10, k=2000, width=1).reshape(-1).numpy()
    assert 0.0 < u.min() and u.max() < 1.0
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3


def test_box_sampler_covers_the_box_with_its_log_volume():
    u = crn_uniforms(0, 1, 1000, 2)
    z, log_q = uniform_to_box(u, -4.0, 4.0)
    assert z.min() >= -4 and z.max() <= 4
    assert torch.allclose(log_q, torch.full_like(log_q, -2 * math.log(8.0)))


def test_gaussian_sampler_density_matches_torch_and_samples_match_the_law():
    u = crn_uniforms(1, 4, 5000, 2)
    loc, scale = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.3, 2.0], dtype=torch.float64)
    z, log_q = uniform_to_gaussian(u, loc, scale)
    assert torch.allclose(log_q, Normal(loc, scale).log_prob(z).sum(-1))
    for i in range(2):
        assert scipy.stats.kstest(z[..., i].reshape(-1).numpy(), "norm", args=(loc[i], scale[i])).pvalue > 1e-3
    tril = torch.tensor([[1.0, 0.0], [0.8, 0.5]], dtype=torch.float64)
    z, log_q = uniform_to_gaussian(u, loc, tril)
    assert torch.allclose(log_q, MultivariateNormal(loc, scale_tril=tril).log_prob(z))


@pytest.mark.parametrize("df", [1, 3])
def test_student_t_sampler_density_matches_torch_and_samples_match_scipy(df):
    u = crn_uniforms(2, 4, 5000, 1)
    u_chi2 = crn_uniforms(2, 4, 5000, df, stream=1)
    z, log_q = uniform_to_student_t(u, u_chi2, [1.0], [0.5], df)
    assert torch.allclose(log_q, StudentT(float(df), 1.0, 0.5).log_prob(z[..., 0]))
    assert scipy.stats.kstest(z.reshape(-1).numpy(), "t", args=(df, 1.0, 0.5)).pvalue > 1e-3


def test_categorical_sampler_frequencies_within_standard_errors():
    probs = np.array([0.1, 0.6, 0.3])
    u = crn_uniforms(3, 1, 20000, 1)
    z, log_q = uniform_to_categorical(u, probs)
    freq = z.reshape(-1, 3).mean(0).numpy()
    se = np.sqrt(probs * (1 - probs) / 20000)
    assert np.all(np.abs(freq - probs) < 5 * se)
    assert torch.allclose(log_q, torch.log((z * torch.tensor(probs)).sum(-1)))
