"""lvm_core.inference's diagnostics of a fitted q: fit_check (k-hat, ESS, both KLs) and the gradient variance along an
optimisation path. Known answers: a linear-Gaussian model with a 1-D latent, whose posterior is a Gaussian inside the
mean-field family, so q = p(z|x) is reachable; references: closed-form KLs, lvm_core.gradients' own estimators."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from lvm_core import gradients as gr
from lvm_core import inference as vi
from lvm_core.estimators import khat_threshold
from lvm_core.inference import (
    GRADIENT_ESTIMATORS,
    LocalGaussian,
    elbo_gradient_samples,
    fit_check,
    gradient_variance_path,
)
from lvm_core.models import LinearGaussianLVM
from lvm_core.proposals import make_generator


def posterior_case(latent_dim=1):
    model = LinearGaussianLVM.random(latent_dim, 2, 0.5, seed=0)
    x, _ = model.sample(1, generator=1)
    post = model.closed_form_posterior(x)
    q = Independent(Normal(post.loc, torch.diagonal(post.covariance_matrix, dim1=-2, dim2=-1).sqrt()), 1)
    return model, x, q


def test_fit_check_at_the_exact_posterior_has_no_gap_either_way_and_constant_weights():
    model, x, q = posterior_case()
    check = fit_check(model, x, q, draws=2000, seed=0)
    assert abs(float(check.reverse_kl[0])) < 1e-10 and abs(float(check.forward_kl[0])) < 1e-10
    assert float(check.draws_needed[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(check.ess[0]) == pytest.approx(2000, rel=1e-9)  # every weight is p(x)
    assert not float(check.khat[0]) > check.threshold  # -inf (bounded weights) or small: never a warning
    assert check.verdict() == "good" and check.threshold == pytest.approx(khat_threshold(2000))
    assert not check.too_few_draws()


def test_fit_check_of_a_too_narrow_q_flags_heavy_weights_and_matches_closed_form_kls():
    model, x, post = posterior_case()
    q = Independent(Normal(post.base_dist.loc, 0.3 * post.base_dist.scale), 1)
    check = fit_check(model, x, q, draws=2000, generator=make_generator(3))
    exact_post = model.closed_form_posterior(x)
    q_mvn = torch.distributions.MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))
    torch.testing.assert_close(check.reverse_kl, kl_divergence(q_mvn, exact_post))
    torch.testing.assert_close(check.forward_kl, kl_divergence(exact_post, q_mvn))
    # a proposal with 0.3 of the posterior's scale: weights with tail index 1 - 0.3^2 = 0.91, far past 0.7
    assert float(check.khat[0]) > check.threshold and check.verdict() != "good"
    assert float(check.ess[0]) < 0.5 * 2000
    # mode-seeking: the ELBO's gap is much smaller than the forward KL that importance sampling pays
    assert float(check.reverse_kl[0]) < float(check.forward_kl[0])


def test_fit_check_is_deterministic_by_seed():
    model, x, post = posterior_case()
    q = Independent(Normal(post.base_dist.loc + 0.3, post.base_dist.scale), 1)
    a, b = fit_check(model, x, q, seed=5), fit_check(model, x, q, seed=5)
    assert float(a.khat[0]) == float(b.khat[0]) and float(a.ess[0]) == float(b.ess[0])


def test_sticking_the_landing_vanishes_at_the_posterior_while_reparameterisation_does_not():
    model, x, q = posterior_case()
    var = gradient_variance_path(model, x, [q], k=1, replicates=400, seed=0)
    assert set(var) == set(GRADIENT_ESTIMATORS)
    assert float(var["sticking the landing"][0]) < 1e-20  # exactly 0 up to float error
    assert float(var["reparameterisation"][0]) > 1e-3 and float(var["score function"][0]) > 1e-3


def test_sticking_the_landing_agrees_with_the_reparameterised_mean_and_with_lvm_core_gradients():
    model, x, post = posterior_case()
    loc, log_scale = post.base_dist.loc + 0.7, torch.log(post.base_dist.scale) - 0.4
    phi = LocalGaussian(loc, log_scale)
    R = 20_000
    stl, names = elbo_gradient_samples(model, x, phi, "sticking the landing", k=1, replicates=R, seed=1)
    rp, _ = elbo_gradient_samples(model, x, phi, "reparameterisation", k=1, replicates=R, seed=2)
    ref = gr.elbo_gradient_draws(model, x, loc, log_scale, R, make_generator(3), k=1,
                                 estimators=("sticking the landing",))["sticking the landing"][:, 0]  # (R, 2)
    assert names == gr.phi_names(1)
    se = lambda g: g.std(0) / math.sqrt(R)  # noqa: E731
    assert torch.all((stl.mean(0) - rp.mean(0)).abs() < 4 * torch.sqrt(se(stl) ** 2 + se(rp) ** 2))
    assert torch.all((stl.mean(0) - ref.mean(0)).abs() < 4 * torch.sqrt(se(stl) ** 2 + se(ref) ** 2))
    # variances agree too: a sample variance's relative SE is about sqrt(2 / R) for near-Gaussian draws, so the
    # difference of two independent ones has about sqrt(4 / R); 4 of those
    torch.testing.assert_close(stl.var(0), ref.var(0), rtol=4 * math.sqrt(4 / R), atol=0)


def test_gradient_variance_path_follows_the_snapshots_and_stl_falls_toward_the_posterior():
    model, x, post = posterior_case()
    loc, scale = post.base_dist.loc, post.base_dist.scale
    qs = [Independent(Normal(loc + a, scale * math.exp(-a)), 1) for a in (1.0, 0.3, 0.0)]
    var = gradient_variance_path(model, x, qs, estimators=("sticking the landing",), k=2, replicates=300, seed=4)
    v = var["sticking the landing"]
    assert v.shape == (3,) and float(v[0]) > float(v[1]) > 1e-6 > 1e-20 > float(v[2])
    # each snapshot's value does not depend on the others asked for
    alone = gradient_variance_path(model, x, qs[:1], estimators=("sticking the landing",), k=2, replicates=300,
                                   seed=4)
    assert float(alone["sticking the landing"][0]) == float(v[0])


def test_fit_check_on_a_two_moded_posterior_sees_with_k_hat_what_the_ess_misses():
    from lvm_core.estimators import best_gaussian_elbo
    from lvm_core.models import hard_posterior

    model, x = hard_posterior("bimodal")
    q = best_gaussian_elbo(model, x)  # the ELBO's best Gaussian sits on one mode (the reverse KL is mode-seeking)
    check = fit_check(model, x, q, draws=2000, seed=0)
    assert float(check.khat[0]) > 1.0 and check.verdict() == "mean does not exist"
    assert float(check.ess[0]) > 0.5 * 2000  # the draws never visit the other mode, so they look evenly weighted
    assert float(check.reverse_kl[0]) < 1.0 < 10.0 < float(check.forward_kl[0])  # about log 2 against tens of nats
    assert check.too_few_draws()  # exp(tens of nats) draws: far more than 2,000


def test_exact_live_refines_where_the_live_grid_misses_an_image_decoders_log_joint():
    from lvm_core.datasets import load_binarized_digits
    from lvm_core.pretrained import load_pretrained

    model, _, _ = load_pretrained("digits")
    x = torch.tensor(load_binarized_digits(seed=0)[1][3:4]).to(model.dtype)
    opt = vi.PhiOptimizer(model, x, loc=torch.tensor([[2.0, -1.0]], dtype=model.dtype),
                          log_scale=torch.tensor([[-1.0, -1.0]], dtype=model.dtype), seed=0)
    coarse = abs(float(opt.exact(vi.live_resolution(2))["residual"][0]))
    refined = abs(float(opt.exact_live()["residual"][0]))
    assert coarse > vi.RESIDUAL_TOL  # the case the refinement is for (0.08 nats with the shipped model)
    assert refined < coarse / 10
