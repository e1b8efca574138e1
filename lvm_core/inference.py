"""Fitting q(z; phi) to p(z|x): per data point phi by stochastic gradient ascent on the ELBO (the notes' inner loop)."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

from lvm_core.estimators import elbo, seeded


class LocalGaussian(nn.Module):
    """q(z; phi_i) for each data point i: phi = (loc, log_scale), plus a strictly lower-triangular factor for
    full-covariance q. loc, log_scale: (batch, latent_dim); off_diag: (batch, latent_dim, latent_dim)."""

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, full_covariance: bool = False):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.log_scale = nn.Parameter(log_scale.detach().clone())
        self.full_covariance = full_covariance
        d = loc.shape[-1]
        self.off_diag = nn.Parameter(torch.zeros(*loc.shape, d, dtype=loc.dtype, device=loc.device),
                                     requires_grad=full_covariance)

    @classmethod
    def standard(cls, batch: int, latent_dim: int, dtype=torch.float64, device=None, full_covariance=False):
        """phi at the prior: loc 0, scale 1."""
        zeros = torch.zeros(batch, latent_dim, dtype=dtype, device=device)
        return cls(zeros, zeros, full_covariance)

    def scale_tril(self) -> torch.Tensor:
        """(batch, d, d): diag(exp(log_scale)) plus the strictly lower part of off_diag."""
        return torch.diag_embed(torch.exp(self.log_scale)) + torch.tril(self.off_diag, diagonal=-1)

    def distribution(self) -> torch.distributions.Distribution:
        """q as a torch Distribution with batch shape (batch,) and event shape (latent_dim,)."""
        if self.full_covariance:
            return MultivariateNormal(self.loc, scale_tril=self.scale_tril())
        return Independent(Normal(self.loc, torch.exp(self.log_scale)), 1)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily stop gradients into a module's parameters (theta stays fixed while phi moves)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def make_optimizer(params, name: str, lr: float) -> torch.optim.Optimizer:
    """'adam' or 'sgd' over the given parameters."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def fit_local_posterior(model, x: torch.Tensor, steps: int = 500, lr: float = 0.05, k: int = 8,
                        full_covariance: bool = False, optimizer: str = "adam", init: LocalGaussian | None = None,
                        seed: int | None = 0, callback=None):
    """Maximise ELBO(x_i; phi_i) over each point's own phi_i with reparameterised gradients; theta is frozen.

    x: (batch, data_dim). Returns (q, history): q a Distribution with batch shape (batch,) (detached) and history a
    dict with "elbo": (steps, batch), the Monte Carlo ELBO before each step. callback(step, phi, elbo) may return
    True to stop early.
    """
    if steps < 1 or k < 1 or not math.isfinite(lr) or lr <= 0:
        raise ValueError("steps and k must be at least 1 and lr a positive number")
    phi = init if init is not None else LocalGaussian.standard(x.shape[0], model.latent_dim, x.dtype, x.device,
                                                               full_covariance)
    opt = make_optimizer([p for p in phi.parameters() if p.requires_grad], optimizer, lr)
    trace = []
    with frozen(model), seeded(seed, x.device):
        for step in range(steps):
            opt.zero_grad()
            value = elbo(model, x, phi.distribution(), k)  # (batch,)
            (-value.sum()).backward()  # points are independent: the sum's gradient is each phi_i's own
            opt.step()
            trace.append(value.detach())
            if callback is not None and callback(step, phi, trace[-1]):
                break
    with torch.no_grad():
        q = phi.distribution()
    return q, {"elbo": torch.stack(trace), "phi": phi}
