"""Figure builders for the "Estimating p(x)" page (and the point picker the ELBO page shares): arrays in, Figure out."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from lvm_core.plots import PALETTE, density_colorscale, latex_int, latex_number, style_figure, text_number

TRACE_CLICKS = 1  # trace index of the invisible click-catching grid in data_space_figure


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
    # constrain="domain": equal aspect shrinks the plot area instead of widening a range past the click grid
    fig.update_xaxes(range=[xs[0], xs[-1]], constrain="domain")
    fig.update_yaxes(range=[ys[0], ys[-1]], constrain="domain")
    fig.update_layout(clickmode="event+select", dragmode=False)
    return style_figure(fig, x_title="x₁", y_title="x₂", equal_aspect=True, height=height)


# ------------------------------------------------------------------------------------------------ estimator views

# prior sampling takes the generic "estimate" colour: the palette's "prior" orange is too close to "truth"
ESTIMATOR_COLORS = {"naive": PALETTE["naive"], "prior": PALETTE["estimate"], "importance": PALETTE["importance"]}


_WEIGHT_HOVER_1D = "z = %{x:.3f}<br>weight %{customdata:.3g}<extra></extra>"


def _color(name: str) -> str:
    return ESTIMATOR_COLORS.get(name, PALETTE["estimate"])


def _marker_sizes(w: np.ndarray, smallest: float = 3.0, largest: float = 22.0) -> np.ndarray:
    # area proportional to the normalised weight, relative to the largest one
    rel = np.sqrt(np.clip(w / max(float(np.max(w)), 1e-300), 0.0, 1.0)) if len(w) else w
    return smallest + (largest - smallest) * rel


def latent_figure(picture: dict, samples: dict[str, tuple[np.ndarray, np.ndarray]], labels: dict[str, str],
                  height: int = 420, q_label: str = "q(z)") -> go.Figure:
    """The latent space: exact p(z|x) (curve in 1-D, heatmap in 2-D), q(z) (curve / contours) and the samples of
    each estimator sized by their normalised weight. picture: from experiments.latent_picture; samples: name ->
    (z (m, latent_dim), w (m,))."""
    fig = go.Figure()
    zs = picture["zs"]
    suffix = " (marginal on z₁, z₂)" if picture["marginal"] else ""
    if picture["axes"] == 1:
        z = zs[0]
        top = 0.0
        if picture["log_post"] is not None:
            post = np.exp(picture["log_post"])
            top = float(post.max())
            fig.add_trace(go.Scatter(x=z, y=post, mode="lines", name="p(z | x), exact",
                                     line=dict(color=PALETTE["posterior"], width=3)))
        q = np.exp(picture["log_q"])
        top = max(top, float(q.max()))
        fig.add_trace(go.Scatter(x=z, y=q, mode="lines", name=q_label, line=dict(color=PALETTE["proposal"], dash="dash",
                                                                                 width=2)))
        for i, (name, (zz, w)) in enumerate(samples.items()):
            y = np.full(len(zz), -0.04 * (i + 1) * max(top, 1e-12))  # one rug row per estimator, below the curves
            fig.add_trace(go.Scatter(x=zz[:, 0], y=y, mode="markers", name=f"{labels[name]} samples",
                                     marker=dict(size=_marker_sizes(w), color=_color(name), opacity=0.5),
                                     customdata=w, hovertemplate=_WEIGHT_HOVER_1D))
        fig.update_xaxes(range=[z[0], z[-1]])
        return style_figure(fig, x_title="z", y_title="density", height=height)
    if picture["log_post"] is not None:
        lp = picture["log_post"]
        fig.add_trace(go.Heatmap(x=zs[0], y=zs[1], z=np.exp(lp - lp.max()), colorscale=density_colorscale(),
                                 showscale=False, hoverinfo="skip", name="p(z | x)" + suffix, showlegend=True,
                                 zsmooth="best"))
    lq = picture["log_q"]
    finite = np.isfinite(lq)
    if finite.any():
        # q's contours at 1, 2 and 3 standard deviations of a Gaussian: log q drops by 0.5, 2, 4.5 from its peak
        peak = float(lq[finite].max())
        fig.add_trace(go.Contour(x=zs[0], y=zs[1], z=np.where(finite, lq - peak, -50.0), showscale=False,
                                 contours=dict(coloring="none", start=-4.5, end=-0.5, size=2.0),
                                 line=dict(color=PALETTE["proposal"], width=2, dash="dash"), hoverinfo="skip",
                                 name=q_label + suffix, showlegend=True))
    for name, (zz, w) in samples.items():
        if zz.shape[1] < 2:
            continue
        inside = ((zz[:, 0] >= zs[0][0]) & (zz[:, 0] <= zs[0][-1]) & (zz[:, 1] >= zs[1][0]) & (zz[:, 1] <= zs[1][-1]))
        fig.add_trace(go.Scatter(x=zz[inside, 0], y=zz[inside, 1], mode="markers", name=f"{labels[name]} samples",
                                 marker=dict(size=_marker_sizes(w, 2.0, 14.0)[inside], color=_color(name), opacity=0.35,
                                             line=dict(width=0)), customdata=w[inside],
                                 hovertemplate="z = (%{x:.3f}, %{y:.3f})<br>weight %{customdata:.3g}<extra></extra>"))
    fig.update_xaxes(range=[zs[0][0], zs[0][-1]])
    fig.update_yaxes(range=[zs[1][0], zs[1][-1]])
    return style_figure(fig, x_title="z₁", y_title="z₂", equal_aspect=True, height=height)


def discrete_latent_figure(picture: dict, height: int = 380, q_label: str = "q(z)") -> go.Figure:
    """A discrete z: p(z = k | x), q(z = k) and each component's share of the normalised weight, as grouped bars."""
    k = [f"k = {i + 1}" for i in range(len(picture["posterior"]))]
    fig = go.Figure([
        go.Bar(x=k, y=picture["posterior"], name="p(z | x), exact", marker_color=PALETTE["posterior"]),
        go.Bar(x=k, y=picture["q"], name=q_label, marker_color=PALETTE["proposal"]),
        go.Bar(x=k, y=picture["weight"], name="share of the weight (trial 1)", marker_color=PALETTE["data"]),
    ])
    fig.update_layout(barmode="group")
    return style_figure(fig, x_title="component z", y_title="probability", height=height)


def estimates_figure(log_estimates: dict[str, np.ndarray], log_px: float | None, labels: dict[str, str],
                     height: int = 380) -> go.Figure:
    """Histograms of the R trial estimates of every estimator: p-hat (left) and log p-hat in nats (right), the
    exact value as a vertical line. log_estimates: name -> (trials,)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for name, est in log_estimates.items():
        est = np.asarray(est)
        finite = est[np.isfinite(est)]
        for col, values in ((1, np.exp(finite)), (2, finite)):
            fig.add_trace(go.Histogram(x=values, name=labels[name], legendgroup=name, showlegend=col == 1,
                                       marker_color=_color(name), opacity=0.6, nbinsx=40), row=1, col=col)
    if log_px is not None and np.isfinite(log_px):
        # the exact value on each panel: shapes and labels set in one layout update (add_vline per subplot is slow)
        marks = ((np.exp(log_px), "x", f"p(x) = {text_number(np.exp(log_px), 4)}"),
                 (log_px, "x2", f"log p(x) = {log_px:.3f}"))
        fig.update_layout(
            shapes=[dict(type="line", x0=v, x1=v, y0=0, y1=1, xref=ax, yref="paper",
                         line=dict(color=PALETTE["truth"], width=3)) for v, ax, _ in marks],
            # inside the top of each panel, right of the line: above the panel it would collide with the legend
            annotations=[dict(x=v, y=1.0, xref=ax, yref="paper", text=t, showarrow=False, yanchor="top",
                              xanchor="left", xshift=4, font=dict(color=PALETTE["truth"])) for v, ax, t in marks],
        )
    fig.update_layout(barmode="overlay")
    style_figure(fig, x_title="", y_title="trials", height=height)
    fig.update_xaxes(title_text="p̂(x)", exponentformat="power", row=1, col=1)
    fig.update_xaxes(title_text="log p̂(x)  (nats)", row=1, col=2)
    return fig


def convergence_figure(stats: dict[str, dict], labels: dict[str, str], cost: str = "k",
                       height: int = 380, draws_needed: dict[str, float] | None = None) -> go.Figure:
    """Relative RMSE of p-hat against k (or wall time) on log-log axes, one line per estimator, with the 1/sqrt(k)
    reference slope through the importance estimator's first point. stats: name -> experiments.sweep_statistics.
    draws_needed: name -> exp(KL(p(z|x) || q)), drawn as a dashed vertical line in the estimator's colour (k axis
    only; values beyond 100 times the largest k would squash the curves and are left to the caption)."""
    fig = go.Figure()
    key = "k" if cost == "k" else "seconds"
    for name, s in stats.items():
        y = np.maximum(np.exp(s["log_rel_rmse"]), 1e-16)  # an exact q's zero error, drawn at rounding level
        fig.add_trace(go.Scatter(x=s[key], y=y, mode="lines+markers", name=labels[name],
                                 line=dict(color=_color(name), width=2)))
    ref = stats.get("importance") or next(iter(stats.values()), None)
    if ref is not None and len(ref[key]):
        x0, y0 = float(ref[key][0]), float(max(np.exp(ref["log_rel_rmse"][0]), 1e-16))
        xs = np.array([x0, float(ref[key][-1])])
        fig.add_trace(go.Scatter(x=xs, y=y0 * np.sqrt(x0 / xs), mode="lines", name="∝ 1/√k reference",
                                 line=dict(color=PALETTE["data"], dash="dot", width=2)))
    k_max = max((float(np.max(s["k"])) for s in stats.values() if len(s["k"])), default=1.0)
    for name, k_needed in (draws_needed or {}).items():
        if cost == "k" and name in stats and np.isfinite(k_needed) and 1.0 <= k_needed <= 100 * k_max:
            # a line trace, not a shape, so it has a legend entry and a hover
            fig.add_trace(go.Scatter(x=[k_needed, k_needed], y=[1e-16, 1e16], mode="lines", legendgroup=name,
                                     name=f"{labels[name]}: draws needed e^KL ≈ {text_number(k_needed, 2)}",
                                     line=dict(color=_color(name), dash="dash", width=2),
                                     hovertemplate="exp(KL(p(z|x) ‖ q)) = %{x:.3g}<extra></extra>"))
    finite = [np.exp(s["log_rel_rmse"]) for s in stats.values()]
    finite = np.concatenate(finite) if finite else np.array([1.0])
    finite = np.maximum(finite[np.isfinite(finite)], 1e-16)
    if len(finite):  # the needed-draws lines span the axis; the range stays the curves'
        lo, hi = np.log10(finite.min()), np.log10(finite.max())
        fig.update_yaxes(range=[lo - 0.3, hi + 0.3])
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log", exponentformat="power")
    x_title = "samples per estimate k (model evaluations)" if cost == "k" else "wall time per estimate (s)"
    return style_figure(fig, x_title=x_title, y_title="relative RMSE of p̂(x)", height=height)


def jensen_figure(stats: dict[str, dict], log_px: float | None, labels: dict[str, str],
                  height: int = 380) -> go.Figure:
    """E[log p-hat_k] (mean over trials, band +-2 standard errors) against k, rising toward log p(x): for importance
    sampling this curve is the IWAE bound L_k."""
    fig = go.Figure()
    for name, s in stats.items():
        k, m, se = s["k"], s["mean_log"], s["se_log"]
        color = _color(name)
        fig.add_trace(go.Scatter(x=np.concatenate([k, k[::-1]]), y=np.concatenate([m + 2 * se, (m - 2 * se)[::-1]]),
                                 fill="toself", fillcolor=color, opacity=0.18, line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, legendgroup=name))
        label = labels[name] + (": L_k (IWAE bound)" if name == "importance" else "")
        fig.add_trace(go.Scatter(x=k, y=m, mode="lines+markers", name=label, line=dict(color=color, width=2),
                                 legendgroup=name))
    if log_px is not None and np.isfinite(log_px):
        fig.add_hline(y=log_px, line=dict(color=PALETTE["truth"], width=3), annotation_text="log p(x)",
                      annotation_position="bottom right")
    fig.update_xaxes(type="log")
    return style_figure(fig, x_title="samples per estimate k", y_title="E[log p̂ₖ(x)]  (nats)", height=height)


def dimension_figure(sweep: dict[str, np.ndarray], labels: dict[str, str], k: int, height: int = 380) -> go.Figure:
    """Relative RMSE of p-hat at a fixed k against the latent dimension (linear-Gaussian model), log y axis."""
    fig = go.Figure()
    floor = 1e-4  # an exact q's error (1e-15, rounding) would squash the other lines: drawn here, marked as exact
    for name in labels:
        if "log_" + name in sweep:
            y = np.exp(sweep["log_" + name])
            exact = y < floor
            fig.add_trace(go.Scatter(
                x=sweep["dims"], y=np.maximum(y, floor), mode="lines+markers", name=labels[name],
                line=dict(color=_color(name), width=2),
                marker=dict(symbol=np.where(exact, "triangle-down", "circle").tolist(), size=np.where(exact, 12, 7)),
                customdata=y, hovertemplate="d = %{x}<br>relative RMSE %{customdata:.3g}<extra></extra>"))
            if exact.any():
                fig.add_annotation(x=float(sweep["dims"][exact][0]), y=np.log10(floor), text="exact (q = p(z|x))",
                                   showarrow=False, yshift=-16, font=dict(color=_color(name)))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_xaxes(dtick=1)
    return style_figure(fig, x_title="latent dimension d", y_title=f"relative RMSE of p̂(x) at k = {k:,}",
                        height=height)


# --------------------------------------------------------------------------------------------- live equations




def naive_latex(lo: float, hi: float, d: int, k: int, log_estimate: float, log_px: float | None,
                discrete: bool = False) -> str:
    """naive MC with the numbers of the first trial: p(x) ~= |Z| / k sum_j p(x, z_j)"""
    volume = rf"{latex_number(hi - lo, 4)}^{{{d}}}" if d > 1 else latex_number(hi - lo, 4)
    box = rf"\{{1, \dots, {d}\}}" if discrete else rf"[{latex_number(lo, 4)}, {latex_number(hi, 4)}]^{{{d}}}"
    where = rf"z_j \sim \mathcal U({box})"
    truth = "" if log_px is None else rf"\quad\text{{exact: }} {latex_number(np.exp(log_px), 4)}"
    kk = latex_int(k)
    return (rf"\hat p(x) = \frac{{|Z|}}{{k}} \sum_{{j=1}}^{{k}} p(x, z_j) = \frac{{{volume if not discrete else d}}}"
            rf"{{{kk}}} \sum_{{j=1}}^{{{kk}}} p(x, z_j) = {latex_number(np.exp(log_estimate), 4)},\;\; {where}{truth}")


def importance_latex(k: int, log_estimate: float, log_px: float | None, name: str = "q") -> str:
    """importance sampling with the numbers of the first trial: p(x) ~= 1/k sum_j p(x, z_j) / q(z_j)"""
    truth = "" if log_px is None else rf"\quad\text{{exact: }} {latex_number(np.exp(log_px), 4)}"
    kk = latex_int(k)
    return (rf"\hat p(x) = \frac{{1}}{{{kk}}} \sum_{{j=1}}^{{{kk}}} \frac{{p(x, z_j)}}{{{name}(z_j)}} = "
            rf"{latex_number(np.exp(log_estimate), 4)},\;\; z_j \sim {name}(z){truth}")


def jensen_latex(k: int, mean_log: float, log_px: float | None) -> str:
    """E[log p-hat_k] <= log E[p-hat_k] = log p(x), with the mean over trials substituted"""
    right = r"\log p(x)" if log_px is None else rf"\log p(x) = {latex_number(log_px, 4)}"
    kk = latex_int(k)
    return (rf"\mathcal L_{{{kk}}} = \mathbb E\big[\log \hat p_{{{kk}}}(x)\big] \approx {latex_number(mean_log, 4)}"
            rf" \;\le\; \log \mathbb E\big[\hat p_{{{kk}}}(x)\big] = {right}\ \text{{nats}}")


# ----------------------------------------------------------------------------------------------- images and k-hat
IMAGE_SIDE = 8  # the digits are 8 x 8 images, stored row-major as 64 values
GALLERY_COLUMNS = 10  # tiles per row of the gallery
_GREYS = [[0.0, "#FFFFFF"], [1.0, "#212529"]]  # ink on paper: 1 is a dark pixel


def digit_figure(image: np.ndarray, title: str, height: int = 220) -> go.Figure:
    """one image (64,) of pixel values in [0, 1] as an 8 x 8 picture, row 0 at the top"""
    fig = go.Figure(go.Heatmap(z=np.asarray(image, dtype=float).reshape(IMAGE_SIDE, IMAGE_SIDE), colorscale=_GREYS,
                               zmin=0.0, zmax=1.0, showscale=False, hovertemplate="pixel (%{y}, %{x}): %{z}"
                                                                                  "<extra></extra>"))
    fig.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig = style_figure(fig, x_title="", y_title="", equal_aspect=True, height=height, title=title)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    return fig


def digit_gallery_figure(images: np.ndarray, digits: np.ndarray, indices: np.ndarray, selected: int,
                         per_row: int | None = None, height: int = 440) -> go.Figure:
    """Images (m, 64) tiled into one picture (a one-pixel gap between tiles), the selected one framed, and an
    invisible marker on every tile (customdata: its index into the held-out set) so a click picks that image."""
    m = len(images)
    per_row = per_row or min(m, GALLERY_COLUMNS)
    rows = -(-m // per_row)
    side = IMAGE_SIDE + 1
    canvas = np.full((rows * side - 1, per_row * side - 1), np.nan)
    centres = np.zeros((m, 2))
    for i, image in enumerate(np.asarray(images, dtype=float)):
        r, c = divmod(i, per_row)
        canvas[r * side: r * side + IMAGE_SIDE, c * side: c * side + IMAGE_SIDE] = image.reshape(IMAGE_SIDE,
                                                                                                 IMAGE_SIDE)
        centres[i] = c * side + (IMAGE_SIDE - 1) / 2, r * side + (IMAGE_SIDE - 1) / 2
    fig = go.Figure(go.Heatmap(z=canvas, colorscale=_GREYS, zmin=0.0, zmax=1.0, showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=centres[:, 0], y=centres[:, 1], mode="markers", showlegend=False, name="pick",
                             customdata=np.asarray(indices), marker=dict(size=28, symbol="square", opacity=0.0),
                             text=[f"image {int(j)}: a {int(d)}" for j, d in zip(indices, digits, strict=True)],
                             hovertemplate="%{text} (click to use it)<extra></extra>"))
    hit = np.flatnonzero(np.asarray(indices) == selected)
    if len(hit):
        cx, cy = centres[hit[0]]
        half = IMAGE_SIDE / 2
        fig.add_shape(type="rect", x0=cx - half, x1=cx + half, y0=cy - half, y1=cy + half,
                      line=dict(color=PALETTE["truth"], width=3))
    # the plot area is exactly the canvas (constrain="domain"), so a tile's place on screen follows from its index
    fig.update_yaxes(range=[canvas.shape[0] - 0.5, -0.5], constrain="domain", showticklabels=False, showgrid=False,
                     zeroline=False)
    fig.update_xaxes(range=[-0.5, canvas.shape[1] - 0.5], constrain="domain", showticklabels=False, showgrid=False,
                     zeroline=False)
    fig.update_layout(clickmode="event+select", dragmode=False)
    fig = style_figure(fig, x_title="", y_title="", equal_aspect=True, height=height,
                       title=f"{m} held-out images: click one to use it as x")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    return fig


def khat_figure(sweep: dict[str, tuple[np.ndarray, np.ndarray]], labels: dict[str, str], threshold: np.ndarray,
                ks: np.ndarray, height: int = 340) -> go.Figure:
    """Pareto k-hat of the importance weights against k: sweep maps an estimator to (k (n,), median k-hat (n,)),
    with the reliability threshold min(1 - 1/log10 k, 0.7) (threshold: (len(ks),) at ks) and k-hat = 1, above which
    the weights' mean does not exist."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=threshold, mode="lines", name="threshold min(1 − 1/log₁₀ k, 0.7)",
                             line=dict(color=PALETTE["data"], dash="dash", width=2)))
    fig.add_hline(y=1.0, line=dict(color=PALETTE["gap"], dash="dot", width=2), annotation_text="k̂ = 1: no mean",
                  annotation_position="top left")
    lowest = 0.0
    for name, (k, khat) in sweep.items():
        shown = ~np.isnan(khat)  # -inf (bounded weights) is a result, drawn at the floor; NaN is none
        if not shown.any():
            continue
        y = np.maximum(khat[shown], -0.5)  # bounded weights give k-hat -> -inf: drawn at the floor
        lowest = min(lowest, float(y.min()))
        fig.add_trace(go.Scatter(x=k[shown], y=y, mode="lines+markers", name=labels[name],
                                 line=dict(color=_color(name), width=2)))
    fig.update_xaxes(type="log")
    highest = max((float(np.nanmax(np.r_[khat, -1.0])) for _, khat in sweep.values()), default=1.0)
    fig.update_yaxes(range=[lowest - 0.05, max(1.3, highest + 0.1)])
    return style_figure(fig, x_title="samples per estimate k", y_title="Pareto k̂ (median over trials)",
                        height=height)


def sweep_animation_figure(sweeps: dict[str, np.ndarray], ks: np.ndarray, log_px: float | None,
                           labels: dict[str, str], bins: int = 40, frame_ms: float = 400.0,
                           height: int = 380) -> go.Figure:
    """The estimates' histograms as k grows, animated in the browser by plotly's own Play button and slider.

    sweeps: name -> (n, trials) log p-hat at each of ks (n,), from the first k draws of the same trials (common
    random numbers). Frame i shows every estimator's histogram at ks[i] on bins shared by that frame (drawn as bars,
    counts computed here), the exact log p(x) as a vertical line, and x and y ranges that follow the estimates. The
    figure opens on the last frame (the chosen k)."""
    from lvm_core.plots import ANIMATION_MARGIN, animation_controls, with_frames

    names = list(sweeps)
    frames = []
    for i, k in enumerate(np.asarray(ks)):
        values = [np.asarray(sweeps[n][i], dtype=float) for n in names]
        finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.array([log_px])
                                                                      if log_px is not None else np.empty(0)])
        lo, hi = (float(np.min(finite)), float(np.max(finite))) if len(finite) else (-1.0, 1.0)
        lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)
        edges = np.linspace(lo, hi, bins + 1)
        centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
        counts = [np.histogram(v[np.isfinite(v)], edges)[0] for v in values]
        data = [dict(type="bar", x=centres, y=c, width=width) for c in counts]
        # both ranges set by the frame: bars transition without a redraw, which would leave an autoranged axis as is
        top = 1.08 * max(1, *(int(c.max()) for c in counts))
        axes = dict(xaxis=dict(range=[lo - width, hi + width]), yaxis=dict(range=[0, top]))
        frames.append(dict(name=f"k{int(k)}", data=data, traces=list(range(len(names))), layout=axes))
    last = frames[-1]
    fig = go.Figure()
    for name, trace in zip(names, last["data"], strict=True):
        fig.add_trace(go.Bar(x=trace["x"], y=trace["y"], width=trace["width"], name=labels[name],
                             marker_color=_color(name), opacity=0.6))
    if log_px is not None and np.isfinite(log_px):
        fig.add_vline(x=log_px, line=dict(color=PALETTE["truth"], width=3), annotation_text=f"log p(x) = {log_px:.3f}",
                      annotation_position="top right", annotation_font_color=PALETTE["truth"])
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_layout(last["layout"])
    frame_names = [f["name"] for f in frames]
    fig.update_layout(animation_controls(frame_names, [f"{int(k):,}" for k in ks], frame_ms=frame_ms,
                                         prefix="k = ", active=len(frames) - 1, from_start=True))
    with_frames(fig, frames)
    style_figure(fig, x_title="log p̂ₖ(x)  (nats)", y_title="trials", height=height + ANIMATION_MARGIN)
    fig.update_layout(margin=dict(l=60, r=20, t=30, b=ANIMATION_MARGIN))
    return fig
