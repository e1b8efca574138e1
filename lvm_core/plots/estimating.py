"""Figure builders for the "Estimating p(x)" page (and the point picker the ELBO page shares): arrays in, Figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lvm_core.plots import PALETTE, density_colorscale, style_figure

TRACE_CLICKS = 1  # trace index of the invisible click-catching grid in data_space_figure


def click_grid(xlim, ylim, n: int = 45) -> np.ndarray:
    """An n x n grid covering the plot (n*n, 2): invisible markers that catch clicks on empty space."""
    gx, gy = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return np.column_stack([gx.ravel(), gy.ravel()])


def data_space_figure(xs: np.ndarray, ys: np.ndarray, log_p: np.ndarray, data: np.ndarray | None,
                      point: np.ndarray, clicks: np.ndarray, height: int = 420,
                      data_label: str = "data") -> go.Figure:
    """The model's density p(x) (heatmap from log_p: (len(ys), len(xs))), data points (n, 2), the chosen x (2,) and
    an invisible click grid (m, 2) so a click anywhere picks a new x."""
    p = np.exp(log_p - np.max(log_p))  # relative density: the colours only need its shape
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, colorscale=density_colorscale(), showscale=False, hoverinfo="skip",
                             zsmooth="best", name="p(x)"))
    fig.add_trace(go.Scatter(x=clicks[:, 0], y=clicks[:, 1], mode="markers", showlegend=False, name="click",
                             marker=dict(size=10, opacity=0.0, color=PALETTE["data"]),
                             hovertemplate="pick x = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    if data is not None and len(data):
        fig.add_trace(go.Scatter(x=data[:, 0], y=data[:, 1], mode="markers", name=data_label, hoverinfo="skip",
                                 marker=dict(size=4, color=PALETTE["data"], opacity=0.55)))
    fig.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers", name="chosen x", hoverinfo="skip",
                             marker=dict(size=15, symbol="x", color=PALETTE["truth"], line=dict(width=1.5))))
    fig.update_xaxes(range=[xs[0], xs[-1]])
    fig.update_yaxes(range=[ys[0], ys[-1]])
    fig.update_layout(clickmode="event+select", dragmode=False)
    return style_figure(fig, x_title="x₁", y_title="x₂", equal_aspect=True, height=height)
