"""lvm_core.gradients against closed forms (the linear-Gaussian ELBO and its gradient, the score's variance at the
exact posterior), plain autograd on the same eps, and the known trends of IWAE gradients in k.

Statistical tolerances are k standard errors computed in the test from the draws themselves.
"""

import math

import numpy as np
import pytest
import torch

from lvm_core import gradients as gr
from lvm_core.models import MLPLVM, LinearGaussianLVM


def _diagonal_posterior_model() -> LinearGaussianLVM:
    """W with orthogonal columns: p(z|x) has a diagonal covariance, so the mean-field q family contains it."""
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    return LinearGaussianLVM(W, torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), 0.5).requires_grad_(False)


def _exact_posterior_phi(model, x):
    posterior = model.closed_form_posterior(x)
    return posterior.loc, torch.log(torch.diagonal(posterior.scale_tril, dim1=-2, dim2=-1))


def _closed_form_elbo(model, x, loc, log_scale):
    """E_q log p(x|z) + E_q log p(z) + H(q) for x = W z + b + sigma eps and q = N(loc, diag(exp(2 log_scale)))."""
    W, b, s2 = model.W, model.b, model.sigma**2
    var = torch.exp(2 * log_scale)
    resid = x - loc @ W.T - b
    trace = (W.pow(2) * var[:, None, :]).sum((-1, -2))  # tr(W S W^T) for diagonal S
    expected_lik = -0.5 * (x.shape[-1] * torch.log(2 * math.pi * s2) + (resid.pow(2).sum(-1) + trace) / s2)
    expected_prior = -0.5 * (loc.shape[-1] * math.log(2 * math.pi) + loc.pow(2).sum(-1) + var.sum(-1))
    entropy = 0.5 * loc.shape[-1] * (1 + math.log(2 * math.pi)) + log_scale.sum(-1)
    return expected_lik + expected_prior + entropy


def _variance_se(draws: torch.Tensor) -> torch.Tensor:
    """Standard error of the sample variance: sqrt((m4 - var^2 (n - 3) / (n - 1)) / n), per parameter."""
    n = draws.shape[0]
    centred = draws - draws.mean(0)
    m4, var = centred.pow(4).mean(0), draws.var(0)
    return torch.sqrt((m4 - var.pow(2) * (n - 3) / (n - 1)).clamp(min=0) / n)


# -------------------------------------------------------------------------------------------------- the ELBO
def test_sticking_the_landing_has_zero_variance_at_the_exact_posterior_while_reparameterisation_does_not():
    """At q = p(z|x), log p(x, z) - log q(z) = log p(x) for every z: STL's gradient is 0 draw by draw. The
    reparameterisation gradient keeps the score term -grad_phi log q: variance 1 / sigma^2 for each loc and 2 for
    each log_scale; the score function's is log p(x)^2 times that."""
    model = _diagonal_posterior_model()
    x = torch.tensor([[1.0, 0.5, -0.3]], dtype=torch.float64)
    loc, log_scale = _exact_posterior_phi(model, x)
    draws = gr.elbo_gradient_draws(model, x, loc, log_scale, 4000, torch.Generator().manual_seed(0))
    assert set(draws) == set(gr.ELBO_ESTIMATORS)
    assert draws["sticking the landing"].shape == (4000, 1, 4)
    assert gr.gradient_variance(draws["sticking the landing"]).max() < 1e-28
    theory = torch.cat([torch.exp(-2 * log_scale), torch.full_like(log_scale, 2.0)], -1)
    log_px2 = model.closed_form_log_marginal(x)[:, None].pow(2)
    for name, expected in (("reparameterisation", theory), ("score function", log_px2 * theory)):
        var = gr.gradient_variance(draws[name])
        assert torch.all((var - expected).abs() < 4 * _variance_se(draws[name])), name
        assert torch.all(var > 0.5 * expected)


@pytest.mark.parametrize("k", [1, 4])
def test_all_three_elbo_gradient_estimators_are_unbiased_away_from_the_posterior(k):
    """Mean over draws within 4 standard errors of the closed-form ELBO's gradient (autograd of its formula)."""
    model = LinearGaussianLVM.random(2, 3, 0.5, seed=2).requires_grad_(False)
    x = model.sample(2, generator=3)[0]
    loc0, log_scale0 = _exact_posterior_phi(model, x)
    loc, log_scale = loc0 + 0.4, log_scale0 + 0.3
    loc_e, ls_e = loc.clone().requires_grad_(True), log_scale.clone().requires_grad_(True)
    exact = torch.cat(torch.autograd.grad(_closed_form_elbo(model, x, loc_e, ls_e).sum(), (loc_e, ls_e)), -1)
    n = 20_000
    draws = gr.elbo_gradient_draws(model, x, loc, log_scale, n, torch.Generator().manual_seed(k), k=k)
    for name, g in draws.items():
        se = g.std(0) / math.sqrt(n)
        assert torch.all((g.mean(0) - exact).abs() < 4 * se), name
    # and the variances order as expected away from the posterior too
    var = {name: gr.gradient_variance(g).sum() for name, g in draws.items()}
    assert var["sticking the landing"] < var["reparameterisation"] < var["score function"]


def test_reparameterisation_minus_sticking_the_landing_is_the_score_term_draw_by_draw():
    """Same eps: the two differ by -grad_phi log q(z; phi) at fixed z, i.e. -eps / sigma (loc) and 1 - eps^2
    (log_scale), averaged over the k samples."""
    model = LinearGaussianLVM.random(2, 3, 0.5, seed=1).requires_grad_(False)
    x = model.sample(1, generator=0)[0]
    loc = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    log_scale = torch.tensor([[-0.5, 0.1]], dtype=torch.float64)
    draws = gr.elbo_gradient_draws(model, x, loc, log_scale, 50, torch.Generator().manual_seed(5), k=3,
                                   estimators=("reparameterisation", "sticking the landing"))
    eps = torch.randn(50, 3, 1, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    score = torch.cat([(-eps / torch.exp(log_scale)).mean(1), (1 - eps.pow(2)).mean(1)], -1)
    torch.testing.assert_close(draws["reparameterisation"] - draws["sticking the landing"], score)


def test_elbo_gradient_draws_follow_the_generator_and_reject_unknown_estimators():
    model = _diagonal_posterior_model()
    x = torch.tensor([[1.0, 0.5, -0.3], [0.0, 0.0, 0.0]], dtype=torch.float64)
    loc, log_scale = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    a = gr.elbo_gradient_draws(model, x, loc, log_scale, 10, torch.Generator().manual_seed(1))
    b = gr.elbo_gradient_draws(model, x, loc, log_scale, 10, torch.Generator().manual_seed(1))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    assert gr.phi_names(2) == ["loc[1]", "loc[2]", "log_scale[1]", "log_scale[2]"]
    with pytest.raises(ValueError, match="unknown estimators"):
        gr.elbo_gradient_draws(model, x, loc, log_scale, 10, torch.Generator(), estimators=("vimco",))


# -------------------------------------------------------------------------------------------------- IWAE-k
def _iwae_case():
    """A linear-Gaussian model and a q off its posterior (shifted half an SD, 1.3x wider)."""
    model = LinearGaussianLVM.random(2, 3, 0.5, seed=3).requires_grad_(False)
    x = model.sample(1, generator=1)[0]
    loc, log_scale = _exact_posterior_phi(model, x)
    posterior_sd = torch.diagonal(model.closed_form_posterior(x).covariance_matrix, dim1=-2, dim2=-1).sqrt()
    return model, x, loc + 0.5 * posterior_sd, torch.log(1.3 * posterior_sd)


def test_iwae_gradients_equal_plain_autograd_on_the_same_eps_for_an_mlp():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=8, depth=2, seed=0, dtype=torch.float64)
    x = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.float64)
    loc = torch.tensor([[0.1, 0.2], [-0.3, 0.0]], dtype=torch.float64)
    log_scale = torch.tensor([[-0.2, 0.1], [0.0, -0.5]], dtype=torch.float64)
    k, n = 5, 3
    got = gr.iwae_gradient_draws(model, x, loc, log_scale, k, n, torch.Generator().manual_seed(2))
    eps = torch.randn(n, k, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert got["theta"].shape == (n, sum(p.numel() for p in model.parameters()))
    assert len(gr.theta_names(model)) == got["theta"].shape[1]
    for r in range(n):
        loc_r, ls_r = loc.clone().requires_grad_(True), log_scale.clone().requires_grad_(True)
        z = loc_r + torch.exp(ls_r) * eps[r]
        log_w = model.log_joint(x, z) + 0.5 * (eps[r].pow(2) + math.log(2 * math.pi)).sum(-1) + ls_r.sum(-1)
        bound = (torch.logsumexp(log_w, 0) - math.log(k)).sum()
        grads = torch.autograd.grad(bound, [*model.parameters(), loc_r, ls_r])
        torch.testing.assert_close(got["theta"][r], torch.cat([g.reshape(-1) for g in grads[:-2]]))
        torch.testing.assert_close(got["phi iwae"][r], torch.cat(grads[-2:], -1))


def test_iwae_theta_gradient_at_k_1_is_unbiased_for_the_closed_form_elbo_gradient():
    model, x, loc, log_scale = _iwae_case()
    theta = list(model.parameters())
    for p in theta:
        p.requires_grad_(True)
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(_closed_form_elbo(model, x, loc, log_scale).sum(),
                                                                  theta)])
    model.requires_grad_(False)
    n = 20_000
    g = gr.iwae_gradient_draws(model, x, loc, log_scale, 1, n, torch.Generator().manual_seed(0))["theta"]
    assert torch.all((g.mean(0) - exact).abs() < 4 * g.std(0) / math.sqrt(n))


@pytest.mark.parametrize("k", [1, 8, 64])
def test_dreg_and_the_standard_iwae_phi_gradient_have_the_same_mean(k):
    """Paired on the same eps: the mean difference is within 4 of its own standard errors."""
    model, x, loc, log_scale = _iwae_case()
    n = 4_000
    draws = gr.iwae_gradient_draws(model, x, loc, log_scale, k, n, torch.Generator().manual_seed(k))
    diff = draws["phi iwae"] - draws["phi dreg"]
    assert torch.all(diff.mean(0).abs() < 4 * diff.std(0) / math.sqrt(n))


def test_snr_trends_in_k_theta_rises_standard_phi_falls_dreg_phi_does_not_collapse():
    """Rainforth et al. (2018): theta's SNR grows and the standard phi gradient's SNR falls as k grows from 1 to 64;
    DReG's phi SNR grows instead. Each comparison clears 4 combined standard errors of the SNR estimates."""
    model, x, loc, log_scale = _iwae_case()
    sweep = gr.iwae_snr_sweep(model, x, loc, log_scale, [1, 64], 4_000, torch.Generator().manual_seed(0))
    se = sweep.standard_error

    def rises(snr):  # snr: (2, ...) at k = 1 and k = 64
        return snr[1] - snr[0] > 4 * torch.hypot(se(snr[0]), se(snr[1]))

    assert torch.all(rises(sweep.theta))
    assert torch.all(rises(-sweep.phi_iwae))
    assert torch.all(rises(sweep.phi_dreg))
    assert torch.all(sweep.phi_dreg[1] - sweep.phi_iwae[1] > 4 * torch.hypot(se(sweep.phi_dreg[1]),
                                                                          se(sweep.phi_iwae[1])))


def test_standard_phi_gradient_sd_falls_like_one_over_sqrt_k():
    """SD(k = 16) / SD(k = 64) = 2 for the standard IWAE phi gradient, within 4 standard errors of the ratio (each SD's
    error from its draws' fourth moment); its SNR falls because the mean falls faster, like 1 / k."""
    model, x, loc, log_scale = _iwae_case()
    n = 8_000
    sd, rel_se = [], []
    for k in (16, 64):
        g = gr.iwae_gradient_draws(model, x, loc, log_scale, k, n, torch.Generator().manual_seed(k))["phi iwae"]
        var = g.var(0)
        sd.append(var.sqrt())
        rel_se.append(_variance_se(g) / (2 * var))  # SE(sd) / sd = SE(var) / (2 var)
    ratio = sd[0] / sd[1]
    ratio_se = ratio * torch.hypot(rel_se[0], rel_se[1])
    assert torch.all((ratio - 2).abs() < 4 * ratio_se), (ratio, ratio_se)


def test_signal_to_noise_is_mean_over_sd():
    g = torch.tensor([[1.0, -2.0], [3.0, -2.5], [2.0, -1.5]], dtype=torch.float64)
    np.testing.assert_allclose(gr.signal_to_noise(g).numpy(), [2.0 / 1.0, 2.0 / 0.5])


def test_gradient_draws_work_under_no_grad_and_leave_the_models_gradients_alone():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=8, depth=2, seed=0, dtype=torch.float64)
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    phi = torch.zeros(1, 2, dtype=torch.float64)
    with torch.no_grad():
        elbo = gr.elbo_gradient_draws(model, x, phi, phi, 20, torch.Generator().manual_seed(0))
        iwae = gr.iwae_gradient_draws(model, x, phi, phi, 4, 20, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in [*elbo.values(), *iwae.values()])
    assert all(p.grad is None for p in model.parameters())
