"""Figure builders for the deep-LVM page: arrays in, plotly Figure out (no Streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from lvm_core.plots import COMPONENTS, PALETTE, density_colorscale, style_figure

X_TITLE, Y_TITLE = "x₁", "x₂"
Z_COLORSCALE = "Plasma"  # the value of z along the infinite mixture (Viridis is taken by densities)
Z_BINS = 12  # ellipses are drawn in this many colour groups (one trace each), not one trace per component


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def ellipse(mean, sigma, n_std: float = 1.0, n_points: int = 49) -> np.ndarray:
    """An axis-aligned ellipse of N(mean, diag(sigma)^2) at n_std standard deviations: (n_points, 2)."""
    t = np.linspace(0.0, 2.0 * np.pi, n_points)
    return np.asarray(mean)[None, :] + n_std * np.asarray(sigma)[None, :] * np.stack([np.cos(t), np.sin(t)], 1)


def _density_heatmap(xs, ys, log_p, name: str = "p(x)") -> go.Heatmap:
    return go.Heatmap(x=_np(xs), y=_np(ys), z=np.exp(_np(log_p)), colorscale=density_colorscale(), zsmooth="best",
                      colorbar=dict(title=name, thickness=12, len=0.6, x=1.02), name=name, hoverinfo="skip")


def z_color_values(z) -> np.ndarray:
    """The scalar that colours each z: z itself for a 1-D latent, z₁ for a 2-D latent. z: (m, d) -> (m,)."""
    return _np(z)[:, 0]


def infinite_mixture_figure(xs, ys, log_p, mu, sigma, z, highlight: dict | None = None, X=None,
                            height: int = 480) -> go.Figure:
    """The infinite mixture: p(x) as a heatmap, and the Gaussians p(x|z) for a grid of z as 1-sigma ellipses
    coloured by z; one chosen component drawn bold, its weight p(z) in the legend.

    xs: (nx,), ys: (ny,), log_p: (ny, nx); mu, sigma: (m, 2); z: (m, latent_dim); X: (n, 2) or None;
    highlight: {"z": (d,), "mu": (2,), "sigma": (2,), "log_pz": float} or None.
    """
    mu, sigma, z = _np(mu), _np(sigma), _np(z)
    fig = go.Figure([_density_heatmap(xs, ys, log_p, "p(x)")])
    if X is not None:
        X = _np(X)
        fig.add_trace(go.Scattergl(x=X[:, 0], y=X[:, 1], mode="markers", name="data",
                                   marker=dict(color=PALETTE["data"], size=3, opacity=0.35)))
    value = z_color_values(z)
    lo, hi = float(value.min()), float(value.max())
    frac = (value - lo) / (hi - lo) if hi > lo else np.zeros_like(value)
    bins = np.minimum((frac * Z_BINS).astype(int), Z_BINS - 1)
    colors = sample_colorscale(Z_COLORSCALE, [(b + 0.5) / Z_BINS for b in range(Z_BINS)])
    z_name = "z" if z.shape[1] == 1 else "z₁"
    for b in range(Z_BINS):
        idx = np.flatnonzero(bins == b)
        if len(idx) == 0:
            continue
        xy = np.concatenate([np.vstack([ellipse(mu[i], sigma[i]), [np.nan, np.nan]]) for i in idx])
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", line=dict(color=colors[b], width=1),
                                 opacity=0.7, hoverinfo="skip", showlegend=False, name=f"p(x|z), {z_name} bin {b}"))
    # an invisible trace carries the colour bar of z
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(colorscale=Z_COLORSCALE, cmin=lo, cmax=hi, color=[lo], showscale=True,
                                         colorbar=dict(title=z_name, thickness=12, len=0.6, x=1.16))))
    if highlight is not None:
        h_mu, h_sigma = _np(highlight["mu"]), _np(highlight["sigma"])
        xy = ellipse(h_mu, h_sigma)
        zs = ", ".join(f"{v:.2f}" for v in _np(highlight["z"]))
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", line=dict(color=PALETTE["model"], width=4),
                                 name=f"p(x | z = ({zs})), weight p(z) = {np.exp(float(highlight['log_pz'])):.3f}"))
        fig.add_trace(go.Scatter(x=[h_mu[0]], y=[h_mu[1]], mode="markers", showlegend=False,
                                 marker=dict(color=PALETTE["model"], size=9, symbol="x"), name="μ(z)"))
    fig.update_xaxes(range=[float(_np(xs)[0]), float(_np(xs)[-1])])
    fig.update_yaxes(range=[float(_np(ys)[0]), float(_np(ys)[-1])])
    return style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height)


def prior_figure(z, log_pz, selected=None, height: int = 260) -> go.Figure:
    """The mixing weights p(z): a curve for a 1-D latent, a heatmap of the z grid for a 2-D one; the selected z marked.

    z: (m, d) grid as from latent_grid, log_pz: (m,), selected: (d,) or None.
    """
    z, pz = _np(z), np.exp(_np(log_pz))
    if z.shape[1] == 1:
        fig = go.Figure(go.Scatter(x=z[:, 0], y=pz, mode="lines", line=dict(color=PALETTE["prior"]), name="p(z)"))
        if selected is not None:
            s = float(_np(selected)[0])
            fig.add_trace(go.Scatter(x=[s, s], y=[0, np.exp(-0.5 * s * s) / np.sqrt(2 * np.pi)], mode="lines+markers",
                                     line=dict(color=PALETTE["model"], width=3), name="selected z"))
        return style_figure(fig, x_title="z", y_title="p(z)", height=height)
    per_axis = int(round(np.sqrt(len(z))))
    axis = z[:per_axis, 0]
    fig = go.Figure(go.Heatmap(x=axis, y=axis, z=pz.reshape(per_axis, per_axis), colorscale=density_colorscale(False),
                               colorbar=dict(title="p(z)", thickness=10, len=0.8), name="p(z)"))
    if selected is not None:
        s = _np(selected)
        fig.add_trace(go.Scatter(x=[s[0]], y=[s[1]], mode="markers", name="selected z",
                                 marker=dict(color=PALETTE["model"], size=12, symbol="x")))
    return style_figure(fig, x_title="z₁", y_title="z₂", equal_aspect=True, height=height)


def density_vs_data_figure(xs, ys, log_p, X, height: int = 420, title: str | None = None) -> go.Figure:
    """The learned p(x) (heatmap) under the data points X: (n, 2)."""
    X = _np(X)
    fig = go.Figure([_density_heatmap(xs, ys, log_p, "p(x)"),
                     go.Scattergl(x=X[:, 0], y=X[:, 1], mode="markers", name="held-out data",
                                  marker=dict(color=PALETTE["data"], size=3, opacity=0.5))])
    fig.update_xaxes(range=[float(_np(xs)[0]), float(_np(xs)[-1])])
    fig.update_yaxes(range=[float(_np(ys)[0]), float(_np(ys)[-1])])
    return style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height, title=title)


def samples_figure(X, samples, height: int = 420, title: str | None = None) -> go.Figure:
    """Data X: (n, 2) against model samples x ~ p(x): (m, 2)."""
    X, samples = _np(X), _np(samples)
    fig = go.Figure([
        go.Scattergl(x=X[:, 0], y=X[:, 1], mode="markers", name="data",
                     marker=dict(color=PALETTE["data"], size=3, opacity=0.5)),
        go.Scattergl(x=samples[:, 0], y=samples[:, 1], mode="markers", name="samples from the model",
                     marker=dict(color=PALETTE["model"], size=3, opacity=0.6)),
    ])
    return style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height, title=title)


def latent_space_figure(codes, feature, feature_name: str = "x₁", source: str = "encoder mean",
                        height: int = 420) -> go.Figure:
    """Where the data sit in z-space: codes (n, d) coloured by a data feature (n,). A 1-D latent is drawn against the
    feature itself."""
    codes, feature = _np(codes), _np(feature)
    marker = dict(color=feature, colorscale="Cividis", size=4, opacity=0.7,
                  colorbar=dict(title=feature_name, thickness=12, len=0.6))
    if codes.shape[1] == 1:
        fig = go.Figure(go.Scattergl(x=codes[:, 0], y=feature, mode="markers", marker=marker, name=source))
        return style_figure(fig, x_title=f"z ({source})", y_title=feature_name, height=height)
    fig = go.Figure(go.Scattergl(x=codes[:, 0], y=codes[:, 1], mode="markers", marker=marker, name=source))
    return style_figure(fig, x_title=f"z₁ ({source})", y_title="z₂", equal_aspect=True, height=height)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (the minibatch bound is noisy), same length as values."""
    if len(values) == 0 or window <= 1:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def training_curves_figure(runs: list[dict], references: dict[str, float] | None = None, height: int = 380,
                           smooth: int = 25) -> go.Figure:
    """Training curves of one or more runs: the minibatch bound per step (a line, smoothed) and the exact held-out
    log-likelihood (markers), in nats per point. Each run: {"label", "bound": (steps,), "eval_steps", "eval_log_lik"}.
    references: horizontal lines, e.g. {"single Gaussian": -2.7, "GMM (10)": -1.2}."""
    fig = go.Figure()
    for i, run in enumerate(runs):
        color = COMPONENTS[i % len(COMPONENTS)] if len(runs) > 1 else PALETTE["elbo"]
        bound = np.asarray(run["bound"], dtype=float)
        fig.add_trace(go.Scatter(x=np.arange(1, len(bound) + 1), y=_smooth(bound, smooth), mode="lines",
                                 line=dict(color=color, width=2), name=f"{run['label']}: bound",
                                 legendgroup=str(i)))
        if len(run.get("eval_steps", [])):
            held_color = PALETTE["truth"] if len(runs) == 1 else color
            fig.add_trace(go.Scatter(x=list(run["eval_steps"]), y=list(run["eval_log_lik"]), mode="markers+lines",
                                     line=dict(color=held_color, width=1, dash="dot"),
                                     marker=dict(color=held_color, size=8, symbol="diamond"),
                                     name=f"{run['label']}: exact held-out log p(x)", legendgroup=str(i)))
    for j, (name, value) in enumerate((references or {}).items()):
        fig.add_hline(y=value, line=dict(color=PALETTE["data"], dash="dash" if j else "dot", width=1.5),
                      annotation_text=f"{name}: {value:.2f}", annotation_position="bottom right")
    fig = style_figure(fig, x_title="training step", y_title="nats per point", height=height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0.0),
                      margin=dict(b=40))
    return fig


def inner_loop_figure(traces: list[list[float]], height: int = 300) -> go.Figure:
    """The notes' inner loop: the minibatch-mean ELBO along each phi optimisation (one line per theta step shown)."""
    fig = go.Figure()
    colors = sample_colorscale(Z_COLORSCALE, np.linspace(0.0, 0.85, max(len(traces), 2)).tolist())
    for i, trace in enumerate(traces):
        fig.add_trace(go.Scatter(y=trace, mode="lines", line=dict(color=colors[i], width=1.5), name=f"visit {i + 1}",
                                 showlegend=False))
    return style_figure(fig, x_title="inner step (phi only, theta frozen)", y_title="ELBO (nats per point)",
                        height=height)
