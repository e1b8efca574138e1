"""Property tests (hypothesis): shapes and broadcasting over random sizes; finite numbers, never NaN, far from the data
and with proposals 1e4 times too narrow or too wide, for every model and every estimator."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture
from torch.distributions import Independent, Normal, OneHotCategorical

from lvm_core.estimators import (
    effective_sample_size,
    elbo,
    exact_log_marginal,
    importance_log_marginal,
    importance_log_weights,
    naive_mc_log_marginal,
    normalized_weights,
    quadrature_elbo,
    quadrature_kl,
)
from lvm_core.models import MLPLVM, GaussianMixtureLVM, LinearGaussianLVM, SeedLVM

FAST = settings(deadline=None, max_examples=6, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SLOW = settings(deadline=None, max_examples=5, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
KINDS = ["linear", "seed", "mlp", "mixture"]


def _mixture(K: int, data_dim: int) -> GaussianMixtureLVM:
    rng = np.random.default_rng(K)
    X = rng.normal(size=(30 * K, data_dim)) + 3 * rng.normal(size=(K, data_dim)).repeat(30, axis=0)
    return GaussianMixtureLVM.from_sklearn(GaussianMixture(K, random_state=0).fit(X))


def make_model(kind: str, latent_dim: int, data_dim: int = 2):
    """latent_dim is the number of components for the mixture."""
    if kind == "linear":
        return LinearGaussianLVM.random(latent_dim, data_dim, sigma=0.3, seed=latent_dim)
    if kind == "seed":
        return SeedLVM(latent_dim, seed=1, data_dim=data_dim, noise_scale=0.3)
    if kind == "mlp":
        return MLPLVM(latent_dim=latent_dim, data_dim=data_dim, hidden=8, seed=2)
    return _mixture(latent_dim + 1, data_dim)


def make_proposal(model, batch: int, scale: float, shift: float = 0.0):
    """A Gaussian q(z) = N(shift, scale^2 I) per point; for a mixture, logits scale * (one-hot of the last component):
    scale >> 1 is a q sure of the wrong component, scale << 1 a uniform q."""
    if model.discrete:
        logits = torch.zeros(batch, model.latent_dim, dtype=model.dtype)
        logits[:, -1] = min(scale, 1e4)
        return OneHotCategorical(logits=logits)
    loc = torch.full((batch, model.latent_dim), shift, dtype=model.dtype)
    return Independent(Normal(loc, torch.full_like(loc, scale)), 1)


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# ---------------------------------------------------------------------------------------------------------- shapes
@FAST
@given(kind=st.sampled_from(KINDS), latent_dim=st.integers(1, 3), data_dim=st.integers(1, 4),
       batch=st.integers(1, 5), lead=st.lists(st.integers(1, 3), max_size=2))
def test_log_densities_broadcast_z_leading_axes_against_x(kind, latent_dim, data_dim, batch, lead):
    model = make_model(kind, latent_dim, data_dim)
    x, z0 = model.sample(batch, generator=0)
    assert x.shape == (batch, model.data_dim) and z0.shape == (batch, model.latent_dim)
    z = z0.expand(*lead, batch, model.latent_dim)
    lp, ll, lj = model.log_prior(z), model.log_likelihood(x, z), model.log_joint(x, z)
    assert lp.shape == ll.shape == lj.shape == (*lead, batch)
    torch.testing.assert_close(lj, (model.log_prior(z0) + model.log_likelihood(x, z0)).expand(*lead, batch))


@FAST
@given(kind=st.sampled_from(KINDS), latent_dim=st.integers(1, 3), batch=st.integers(1, 4), trials=st.integers(1, 3),
       k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_estimators_return_trials_by_batch_and_weights_k_by_batch(kind, latent_dim, batch, trials, k, seed):
    model = make_model(kind, latent_dim)
    x, _ = model.sample(batch, generator=seed)
    q = make_proposal(model, batch, scale=1.0)
    assert naive_mc_log_marginal(model, x, k, trials=trials, seed=seed).shape == (trials, batch)
    assert importance_log_marginal(model, x, q, k, trials=trials, seed=seed).shape == (trials, batch)
    log_w, z = importance_log_weights(model, x, q, k, seed=seed)
    assert log_w.shape == (k, batch) and z.shape == (k, batch, model.latent_dim)
    w = normalized_weights(log_w)
    torch.testing.assert_close(w.sum(0), torch.ones(batch, dtype=w.dtype))
    ess = effective_sample_size(log_w)
    assert ess.shape == (batch,) and torch.all(ess >= 1 - 1e-9) and torch.all(ess <= k + 1e-9)
    assert elbo(model, x, q, k=k).shape == (batch,)
    if model.discrete or latent_dim <= 2:
        assert exact_log_marginal(model, x).shape == (batch,)


# ------------------------------------------------------------------------------------------------------ finiteness
def _all_estimates(model, x, q, k=8, trials=2):
    """Every estimator's output for (model, x, q), by name."""
    log_w, _ = importance_log_weights(model, x, q, k, seed=0)
    out = {"naive": naive_mc_log_marginal(model, x, k, trials=trials, seed=0),
           "importance": importance_log_marginal(model, x, q, k, trials=trials, seed=0),
           "log_weights": log_w, "normalized_weights": normalized_weights(log_w), "ess": effective_sample_size(log_w),
           "elbo": elbo(model, x, q, k=k).detach()}
    if model.discrete or model.latent_dim <= 2:
        out |= {"exact": exact_log_marginal(model, x), "quadrature_elbo": quadrature_elbo(model, x, q),
                "quadrature_kl": quadrature_kl(model, x, q)}
    return out


@SLOW
@given(kind=st.sampled_from(KINDS), latent_dim=st.integers(1, 2), sign=st.sampled_from([1.0, -1.0]),
       scale=st.sampled_from([1e-4, 1e4]))
def test_every_estimator_is_finite_far_from_the_data_and_with_bad_proposals(kind, latent_dim, sign, scale):
    model = make_model(kind, latent_dim)
    # x = 1e3 (or -1e3) on every axis, one mixed point, one typical point
    x = torch.tensor([[sign * 1e3, sign * 1e3], [1e3, -1e3], [0.3, 0.6]], dtype=model.dtype)
    q = make_proposal(model, 3, scale=scale)
    for name, value in _all_estimates(model, x, q).items():
        assert _finite(value), (name, value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_bad_proposals_at_a_typical_point_bound_log_marginal_from_below(kind, scale):
    """Finite, and not just finite: a 1e4-times-wrong q gives a poor but valid estimate, E[log p-hat] <= log p(x)."""
    model = make_model(kind, 2)
    x, _ = model.sample(3, generator=1)
    q = make_proposal(model, 3, scale=scale, shift=0.5)
    estimates = _all_estimates(model, x, q)
    for name, value in estimates.items():
        assert _finite(value), (name, value)
    exact = estimates["exact"]
    assert torch.all(estimates["quadrature_elbo"] <= exact + 1e-6)
    assert torch.all(estimates["quadrature_kl"] >= -1e-6)
    # a Monte Carlo bound holds in expectation only: the mean of many estimates, within 4 standard errors
    draws = 400
    log_w, _ = importance_log_weights(model, x, q, draws, seed=1)  # (draws, batch): the ELBO's terms
    value = elbo(model, x, q, k=draws, generator=torch.Generator().manual_seed(1)).detach()
    assert torch.all(value <= exact + 4 * log_w.std(0) / math.sqrt(draws) + 1e-6)
    estimates = importance_log_marginal(model, x, q, 8, trials=draws, seed=1)  # (trials, batch)
    assert torch.all(estimates.mean(0) <= exact + 4 * estimates.std(0) / math.sqrt(draws) + 1e-6)


def test_log_weights_of_minus_infinity_give_zero_weight_not_nan():
    """A q with no mass on a component gives log w = -inf for nothing it samples; a -inf log weight passed in by
    hand (e.g. a zero-prior sample) must still give weight 0, ESS in [1, k] and finite log means."""
    log_w = torch.tensor([[0.0, -math.inf], [-math.inf, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    w = normalized_weights(log_w)
    assert _finite(w) and w[1, 0] == 0 and w[0, 1] == 0
    ess = effective_sample_size(log_w)
    assert _finite(ess) and torch.all((ess >= 1) & (ess <= 3))
