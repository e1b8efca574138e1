"""The home page's picture: a 1-D Gaussian mixture, samples drawn from it, and its exact density."""

import numpy as np
import plotly.graph_objects as go
from scipy.special import logsumexp

from lvm_core.gmm import mixture_1d_log_terms
from lvm_core.plots import PALETTE, component_color, style_figure

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")  # subscript digits for legend labels


def mixture_1d_figure(weights, means, stds, samples=None, x_range=(-5.0, 5.0), height: int = 320) -> go.Figure:
    """weighted components pi_k N(x; mu_k, sigma_k^2) (dashed), their sum p(x) exactly (truth colour),
    and a normalised histogram of samples (data colour) when given"""
    grid = np.linspace(*x_range, 400)  # (n,)
    log_parts = mixture_1d_log_terms(grid, weights, means, stds)  # (K, n)
    log_density = logsumexp(log_parts, axis=0)  # (n,): the sum over k in log space

    fig = go.Figure()
    if samples is not None:
        fig.add_trace(
            go.Histogram(
                x=samples,
                histnorm="probability density",
                name=f"{len(samples)} samples",
                marker_color=PALETTE["data"],
                opacity=0.55,
                xbins=dict(start=x_range[0], end=x_range[1], size=(x_range[1] - x_range[0]) / 50),
            )
        )
    for k in range(len(log_parts)):
        i = str(k + 1).translate(_SUB)
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=np.exp(log_parts[k]),
                mode="lines",
                line=dict(color=component_color(k), dash="dash", width=2),
                name=f"π{i} N(x; μ{i}, σ{i}²)",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=grid, y=np.exp(log_density), mode="lines", line=dict(color=PALETTE["truth"], width=3), name="p(x) exact"
        )
    )
    fig.update_xaxes(range=list(x_range))
    return style_figure(fig, x_title="x", y_title="density p(x)", height=height)
