"""Estimator statistics (lvm_core.estimators.estimator_summary) against numpy on known ratios."""

import math

import numpy as np
import pytest
import torch

from lvm_core.estimators import estimator_summary


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
