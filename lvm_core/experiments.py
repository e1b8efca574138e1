"""Experiments behind the "Estimating p(x)" page: estimator sweeps over k and over latent dimension, a display grid
of log p(x), and the latent-space picture of one estimate. Everything vectorised over trials and k, in log space.
"""

from __future__ import annotations

import math

import torch

from lvm_core.estimators import exact_log_marginal

# z-grid points per axis for the display density of a continuous model without a closed form (1-D, 2-D latent)
DISPLAY_Z_RESOLUTION = {1: 601, 2: 61}
DISPLAY_Z_HALF_WIDTH = 6.0  # the display grid covers [-6, 6]^d: the N(0, I) prior's mass, and so the posterior's
DISPLAY_PRIOR_SAMPLES = 4096  # latent_dim > 2: log p(x) ~= log mean_j p(x | z_j), z_j ~ p(z), common to all points


def log_marginal_on_grid(model, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """log p(x) on the plane x = (xs[i], ys[j]) for display: (len(ys), len(xs)), rows along y.

    Exact where the model has a closed form or a discrete z. Otherwise an approximation good enough to draw: the
    trapezoid rule on a fixed grid over the prior's box (1-D, 2-D latent), or prior sampling (higher dimensions).
    The selected point's value is always computed exactly by ``exact_log_marginal``, never read off this grid.
    """
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (ny, nx) each
    x = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1).to(model.dtype)  # (n, 2)
    with torch.no_grad():
        if getattr(model, "closed_form_log_marginal", None) is not None or model.discrete:
            out = exact_log_marginal(model, x)
        else:
            d = model.latent_dim
            if d <= 2:
                m = DISPLAY_Z_RESOLUTION[d]
                axis = torch.linspace(-DISPLAY_Z_HALF_WIDTH, DISPLAY_Z_HALF_WIDTH, m, dtype=x.dtype)
                z = axis[:, None] if d == 1 else torch.cartesian_prod(axis, axis)  # (m^d, d)
                log_cell = d * math.log(2 * DISPLAY_Z_HALF_WIDTH / (m - 1))
                log_f = lambda zc: model.log_joint(x, zc[:, None, :])  # noqa: E731  (chunk, n)
            else:
                g = torch.Generator().manual_seed(0)
                z = torch.randn(DISPLAY_PRIOR_SAMPLES, d, generator=g, dtype=x.dtype)
                log_cell = -math.log(DISPLAY_PRIOR_SAMPLES)
                log_f = lambda zc: model.log_likelihood(x, zc[:, None, :])  # noqa: E731
            step = max(1, (1 << 21) // x.shape[0])
            acc = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
            for i in range(0, z.shape[0], step):  # chunks bound memory, a running logsumexp joins them
                acc = torch.logaddexp(acc, torch.logsumexp(log_f(z[i:i + step]), 0))
            out = acc + log_cell
    return out.reshape(len(ys), len(xs))
