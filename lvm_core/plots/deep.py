"""Figure builders for the deep-LVM page: arrays in, plotly Figure out (no Streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from lvm_core.plots import COMPONENTS, PALETTE, density_colorscale, style_figure

X_TITLE, Y_TITLE = "x₁", "x₂"
Z_COLORSCALE = "Plasma"  # the value of z along the infinite mixture (Viridis is taken by densities)
Z_BINS = 12  # ellipses are drawn in this many colour groups (one trace each), not one trace per component
PIXEL_COLORSCALE = "Greys"  # ink on paper: 0 white, 1 black, in both themes (an image is not a density)


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
                           smooth: int = 25, eval_label: str = "exact held-out log p(x)") -> go.Figure:
    """Training curves of one or more runs: the minibatch bound per step (a line, smoothed) and the held-out
    log-likelihood (markers, named eval_label), in nats per point. Each run: {"label", "bound": (steps,),
    "eval_steps", "eval_log_lik"}. references: horizontal lines, e.g. {"single Gaussian": -2.7, "GMM (10)": -1.2}."""
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
                                     name=f"{run['label']}: {eval_label}", legendgroup=str(i)))
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


# ------------------------------------------------------------------------------------------------------ images
def tile_images(images, n_cols: int, gap: int = 1) -> np.ndarray:
    """Lay images (n, h, w) out on a grid, row by row from the top, n_cols per row, `gap` pixels of NaN (drawn as
    the background) between them. Returns (rows * (h + gap) - gap, n_cols * (w + gap) - gap), row 0 at the top."""
    images = _np(images).astype(float)
    n, h, w = images.shape
    rows = -(-n // n_cols)
    out = np.full((rows * (h + gap) - gap, n_cols * (w + gap) - gap), np.nan)
    for i in range(n):
        r, c = divmod(i, n_cols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = images[i]
    return out


def _image_heatmap(tiled: np.ndarray, name: str, colorbar_title: str | None, x=None, y=None) -> go.Heatmap:
    colorbar = dict(title=colorbar_title, thickness=12, len=0.7) if colorbar_title else None
    return go.Heatmap(z=tiled, x=x, y=y, colorscale=PIXEL_COLORSCALE, zmin=0.0, zmax=1.0, name=name,
                      showscale=colorbar is not None, colorbar=colorbar, hoverongaps=False,
                      hovertemplate="%{z:.2f}<extra></extra>")


def manifold_figure(means, axis, height: int = 560, title: str | None = None) -> go.Figure:
    """The learned manifold: the decoder's mean image E[x | z] at every z of a square grid, tiled with z₁ along x
    and z₂ up, on axes in z units.

    means: (m, m, h, w) with means[i, j] decoded at z = (axis[j], axis[i]); axis: (m,) evenly spaced, increasing.
    """
    means, axis = _np(means).astype(float), _np(axis).astype(float)
    m, _, h, w = means.shape
    step = float(axis[1] - axis[0]) if m > 1 else 1.0
    # the top tile row is the largest z₂; within a tile, image row 0 is its top
    tiled = tile_images(means[::-1].reshape(m * m, h, w), m)  # (rows, cols), row 0 at the top
    pitch = step / (w + 1)  # one pixel's width in z units (a tile and its gap span one grid step)
    x = axis[0] + (np.arange(tiled.shape[1]) - (w - 1) / 2) * pitch
    y = axis[-1] - (np.arange(tiled.shape[0]) - (h - 1) / 2) * pitch
    fig = go.Figure(_image_heatmap(tiled, "E[x | z]", "p(pixel on)", x=x, y=y))
    fig.update_xaxes(range=[x[0] - pitch, x[-1] + pitch], showgrid=False, zeroline=False)
    fig.update_yaxes(range=[y[-1] - pitch, y[0] + pitch], showgrid=False, zeroline=False)
    return style_figure(fig, x_title="z₁", y_title="z₂", equal_aspect=True, height=height, title=title)


def image_tiles_figure(images, n_cols: int = 10, height: int = 300, title: str | None = None,
                       colorbar_title: str | None = None) -> go.Figure:
    """Images (n, h, w) with values in [0, 1] as one tiled picture (no axes: pixels have no units)."""
    tiled = tile_images(images, n_cols)
    fig = go.Figure(_image_heatmap(tiled[::-1], title or "images", colorbar_title))  # heatmap rows go up
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=dict(text=title) if title else None)
    return fig


def latent_labels_figure(codes, labels, source: str = "encoder mean", height: int = 480) -> go.Figure:
    """Where the images sit in z-space, one colour (and legend entry) per class. codes: (n, 2), labels: (n,) ints."""
    codes, labels = _np(codes), _np(labels).astype(int)
    fig = go.Figure()
    for c in np.unique(labels):
        idx = labels == c
        fig.add_trace(go.Scattergl(x=codes[idx, 0], y=codes[idx, 1], mode="markers", name=str(c),
                                   marker=dict(color=COMPONENTS[c % len(COMPONENTS)], size=6, opacity=0.8)))
    fig = style_figure(fig, x_title=f"z₁ ({source})", y_title="z₂", equal_aspect=True, height=height)
    fig.update_layout(legend=dict(title=dict(text="digit"), orientation="v", y=1.0, yanchor="top", x=1.02,
                                  xanchor="left"))
    return fig


# ------------------------------------------------------------------------------ the infinite and a finite mixture
def density_pair_figure(xs, ys, log_p_left, log_p_right, titles: tuple[str, str], X=None,
                        height: int = 440) -> go.Figure:
    """Two densities on the same grid side by side, on one colour scale (the larger maximum of the two), with the
    same data X: (n, 2) or None over both. xs: (nx,), ys: (ny,), log_p_*: (ny, nx)."""
    xs, ys = _np(xs), _np(ys)
    p_left, p_right = np.exp(_np(log_p_left)), np.exp(_np(log_p_right))
    top = float(max(p_left.max(), p_right.max()))
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(titles), horizontal_spacing=0.08,
                        shared_yaxes=True)
    for col, p in ((1, p_left), (2, p_right)):
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=p, zmin=0.0, zmax=top, colorscale=density_colorscale(),
                                 zsmooth="best", name="p(x)", hoverinfo="skip", showscale=col == 2,
                                 colorbar=dict(title="p(x)", thickness=12, len=0.8)), 1, col)
        if X is not None:
            X = _np(X)
            fig.add_trace(go.Scattergl(x=X[:, 0], y=X[:, 1], mode="markers", name="held-out data",
                                       showlegend=col == 1, legendgroup="data",
                                       marker=dict(color=PALETTE["data"], size=3, opacity=0.5)), 1, col)
        fig.update_xaxes(title_text=X_TITLE, range=[float(xs[0]), float(xs[-1])], row=1, col=col)
        fig.update_yaxes(range=[float(ys[0]), float(ys[-1])], row=1, col=col,
                         scaleanchor="x" if col == 1 else "x2", scaleratio=1)
    fig.update_yaxes(title_text=Y_TITLE, row=1, col=1)
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=60, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, xanchor="left", x=0.0))
    return fig


def comparison_sentence(name_a: str, value_a: float, name_b: str, value_b: float,
                        unit: str = "nats per held-out point", digits: int = 2) -> str:
    """One sentence saying which of two held-out log-likelihoods (higher is better) wins and by how much; names as
    they read mid-sentence ("the deep LVM"), the sentence's first letter capitalised."""
    diff = value_a - value_b
    if round(abs(diff), digits) == 0:
        text = f"{name_a} and {name_b} tie: {value_a:.{digits}f} against {value_b:.{digits}f} {unit}."
    else:
        (win, w), (lose, l_) = ((name_a, value_a), (name_b, value_b)) if diff > 0 else ((name_b, value_b),
                                                                                         (name_a, value_a))
        text = (f"{win} wins by {abs(diff):.{digits}f} {unit} ({w:.{digits}f} against {l_:.{digits}f} for {lose}): "
                f"its held-out points are e^{abs(diff):.{digits}f} = {np.exp(abs(diff)):.3g} times as likely on "
                "average (geometric mean).")
    return text[:1].upper() + text[1:]
