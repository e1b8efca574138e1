"""The home page's picture: a 1-D Gaussian mixture, samples drawn from it, and its exact density."""

import numpy as np
import plotly.graph_objects as go
from scipy.special import logsumexp
from scipy.stats import norm

from lvm_core.plots import PALETTE, component_color, style_figure

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")  # subscript digits for legend labels


def sample_mixture_1d(weights, means, stds, n: int, seed: int) -> np.ndarray:
    """n draws x ~ sum_k pi_k N(mu_k, sigma_k^2): first z ~ Categorical(pi), then x | z; returns (n,)"""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(weights), size=n, p=np.asarray(weights) / np.sum(weights))  # (n,)
    return rng.normal(np.asarray(means)[z], np.asarray(stds)[z])


def mixture_1d_figure(weights, means, stds, samples=None, x_range=(-5.0, 5.0), height: int = 320) -> go.Figure:
    """weighted components pi_k N(x; mu_k, sigma_k^2) (dashed), their sum p(x) exactly (truth colour),
    and a normalised histogram of samples (data colour) when given"""
    weights = np.asarray(weights, dtype=float) / np.sum(weights)  # (K,)
    grid = np.linspace(*x_range, 400)  # (n,)
    # log pi_k + log N(x; mu_k, sigma_k): (K, n); sum over k in log space
    means, stds = np.asarray(means, dtype=float)[:, None], np.asarray(stds, dtype=float)[:, None]  # (K, 1)
    log_parts = np.log(weights)[:, None] + norm.logpdf(grid[None, :], means, stds)
    log_density = logsumexp(log_parts, axis=0)  # (n,)

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
    for k in range(len(weights)):
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
