"""Gradient estimators of the ELBO and of the IWAE bound, drawn many times so their spread can be seen.

q(z; phi) = N(loc, diag(exp(log_scale))^2) per data point, phi = (loc, log_scale); the model's parameters are theta.
Every function takes an explicit torch.Generator and draws eps ~ N(0, I), z = loc + exp(log_scale) * eps (the same
eps for every estimator it compares: common random numbers). Gradients come per draw, vectorised over draws:

    ELBO, k samples per estimate (phi only):
      score function        mean_j f(z_j) grad_phi log q(z_j; phi),  f = log p(x, z) - log q(z; phi), z held fixed
      reparameterisation    grad_phi mean_j f(loc + scale * eps_j; phi)
      sticking the landing  the same with phi stopped inside log q (Roeder, Wu and Duvenaud 2017): the score term
                            E[grad_phi log q] = 0 is dropped, so at q = p(z|x) every draw's gradient is exactly 0
    IWAE-k, log mean_j w_j with w_j = p(x, z_j) / q(z_j):
      theta and phi         grad of the bound itself (reparameterised)
      DReG for phi          sum_j wt_j^2 grad_z log w_j dz_j/dphi with log q's phi stopped, wt = normalised weights
                            (doubly reparameterised, Tucker, Lawson, Gu and Maddison 2018); same mean, and its
                            signal-to-noise ratio does not collapse as k grows (Rainforth et al. 2018)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from lvm_core.estimators import log_mean_exp
from lvm_core.models import diag_normal_log_prob

ELBO_ESTIMATORS = ("score function", "reparameterisation", "sticking the landing")
# per-draw gradients held in memory at once, counted in evaluations of log p(x, z) (draws * k * batch)
DRAW_CHUNK = 1 << 16


def phi_names(latent_dim: int) -> list[str]:
    """Labels of phi's entries in the gradient's last axis: loc[1..d], then log_scale[1..d]."""
    return [f"loc[{i + 1}]" for i in range(latent_dim)] + [f"log_scale[{i + 1}]" for i in range(latent_dim)]


def elbo_gradient_draws(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, n_draws: int,
                        generator: torch.Generator, k: int = 1,
                        estimators: Sequence[str] = ELBO_ESTIMATORS) -> dict[str, torch.Tensor]:
    """n_draws independent estimates of grad_phi ELBO(x; phi) by each estimator, from the same eps.

    x: (batch, data_dim); loc, log_scale: (batch, latent_dim), each point's own phi (pass x repeated with a path
    of phi to follow an optimisation). k: samples per estimate. Returns {estimator: (n_draws, batch, 2 latent_dim)},
    the last axis ordered as phi_names(latent_dim).
    """
    unknown = set(estimators) - set(ELBO_ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown estimators {sorted(unknown)}: choose from {ELBO_ESTIMATORS}")
    loc, log_scale = loc.detach(), log_scale.detach()
    eps = torch.randn(n_draws, k, *loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
    out = {}
    with torch.enable_grad():  # a caller's no_grad must not silence the estimators
        for name in estimators:
            out[name] = _elbo_phi_gradient(model, x, loc, log_scale, eps, name)
    return out


def _elbo_phi_gradient(model, x, loc, log_scale, eps, name: str) -> torch.Tensor:
    """One estimator's per-draw gradients (n_draws, batch, 2 d) for eps: (n_draws, k, batch, d)."""
    n_draws = eps.shape[0]
    # phi replicated per draw: draws are independent terms of one sum, so its gradient is each draw's own
    loc_r = loc.expand(n_draws, *loc.shape).clone().requires_grad_(True)[:, None]  # (n_draws, 1, batch, d)
    ls_r = log_scale.expand(n_draws, *loc.shape).clone().requires_grad_(True)[:, None]
    z = loc_r + torch.exp(ls_r) * eps  # (n_draws, k, batch, d)
    if name == "score function":
        z = z.detach()
        log_q = diag_normal_log_prob(z, loc_r, ls_r)
        objective = ((model.log_joint(x, z) - log_q).detach() * log_q).mean(1)
    elif name == "reparameterisation":
        objective = (model.log_joint(x, z) - diag_normal_log_prob(z, loc_r, ls_r)).mean(1)
    else:  # sticking the landing: phi enters through z alone
        objective = (model.log_joint(x, z) - diag_normal_log_prob(z, loc_r.detach(), ls_r.detach())).mean(1)
    g_loc, g_ls = torch.autograd.grad(objective.sum(), (loc_r, ls_r))
    return torch.cat([g_loc[:, 0], g_ls[:, 0]], -1)


def gradient_variance(draws: torch.Tensor) -> torch.Tensor:
    """Per-parameter variance over draws (the leading axis), with Bessel's correction: (...) from (n_draws, ...)."""
    return draws.var(0, correction=1)


def signal_to_noise(draws: torch.Tensor) -> torch.Tensor:
    """SNR = |E[g]| / SD[g] per parameter over draws (the leading axis), as in Rainforth et al. (2018)."""
    return draws.mean(0).abs() / draws.std(0, correction=1)


class _LogJoint(nn.Module):
    """model.log_joint as a forward, so torch.func.functional_call can swap theta in."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, z):
        return self.model.log_joint(x, z)


def iwae_gradient_draws(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, k: int, n_draws: int,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
    """n_draws independent gradient estimates of the IWAE-k bound summed over the minibatch x, from the same eps.

    x: (batch, data_dim); loc, log_scale: (batch, latent_dim). Returns
      "theta":     (n_draws, n_theta) grad_theta sum_i log mean_j w_ij, theta flattened in named_parameters order
      "phi iwae":  (n_draws, batch, 2 latent_dim) the bound's reparameterised gradient in phi
      "phi dreg":  (n_draws, batch, 2 latent_dim) the doubly reparameterised gradient in phi (same expectation)
    Vectorised over draws with torch.func.vmap, in chunks of DRAW_CHUNK evaluations.
    """
    wrapper = _LogJoint(model)
    theta = {"model." + name: p.detach() for name, p in model.named_parameters()}
    loc, log_scale = loc.detach(), log_scale.detach()

    def log_weights(theta, loc, log_scale, eps, stop_phi: bool):
        z = loc + torch.exp(log_scale) * eps  # (k, batch, d)
        q_loc, q_log_scale = (loc.detach(), log_scale.detach()) if stop_phi else (loc, log_scale)
        return functional_call(wrapper, theta, (x, z)) - diag_normal_log_prob(z, q_loc, q_log_scale)  # (k, batch)

    def iwae(theta, loc, log_scale, eps):
        return log_mean_exp(log_weights(theta, loc, log_scale, eps, False), 0).sum()

    def dreg_surrogate(loc, log_scale, eps):
        log_w = log_weights(theta, loc, log_scale, eps, True)
        w_tilde = torch.softmax(log_w, 0).detach()
        return (w_tilde.pow(2) * log_w).sum()  # its gradient in phi is DReG's

    eps = torch.randn(n_draws, k, *loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
    chunk = max(1, DRAW_CHUNK // (k * loc.shape[0]))
    g_theta, g_loc, g_ls = vmap(grad(iwae, argnums=(0, 1, 2)), in_dims=(None, None, None, 0),
                                chunk_size=chunk)(theta, loc, log_scale, eps)
    d_loc, d_ls = vmap(grad(dreg_surrogate, argnums=(0, 1)), in_dims=(None, None, 0), chunk_size=chunk)(
        loc, log_scale, eps)
    flat_theta = [g_theta[name].reshape(n_draws, -1) for name in theta]
    return {
        "theta": torch.cat(flat_theta, -1) if flat_theta else torch.zeros(n_draws, 0, dtype=loc.dtype),
        "phi iwae": torch.cat([g_loc, g_ls], -1),
        "phi dreg": torch.cat([d_loc, d_ls], -1),
    }


def theta_names(model) -> list[str]:
    """Labels of theta's flattened entries, in the order of iwae_gradient_draws' "theta" axis."""
    return [f"{name}[{i}]" for name, p in model.named_parameters() for i in range(p.numel())]


@dataclass(frozen=True)
class SNRSweep:
    """Signal-to-noise ratios of IWAE-k gradients against k. ks: (K,); theta: (K, n_theta); phi_iwae, phi_dreg:
    (K, batch, 2 latent_dim); each also with its standard error (delta method for a Gaussian gradient: SE(SNR) =
    sqrt((1 + SNR^2 / 2) / n_draws))."""

    ks: torch.Tensor
    theta: torch.Tensor
    phi_iwae: torch.Tensor
    phi_dreg: torch.Tensor
    n_draws: int

    def standard_error(self, snr: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((1 + snr.pow(2) / 2) / self.n_draws)


def iwae_snr_sweep(model, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, ks: Sequence[int],
                   n_draws: int, generator: torch.Generator) -> SNRSweep:
    """SNR of the theta gradient and of both phi gradients (IWAE, DReG) of the IWAE-k bound, for each k in ks.

    Rainforth et al. (2018): as k grows, theta's SNR grows like sqrt(k) while the standard phi gradient's falls like
    1 / sqrt(k); DReG's does not fall. Each k draws its own eps from the generator.
    """
    rows = [iwae_gradient_draws(model, x, loc, log_scale, int(k), n_draws, generator) for k in ks]
    return SNRSweep(torch.as_tensor(list(ks)),
                    torch.stack([signal_to_noise(r["theta"]) for r in rows]),
                    torch.stack([signal_to_noise(r["phi iwae"]) for r in rows]),
                    torch.stack([signal_to_noise(r["phi dreg"]) for r in rows]), n_draws)
