"""Figure builders for the shallow-mixtures page: arrays in, plotly Figure out (no Streamlit)."""

from __future__ import annotations

import contourpy
import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb
from plotly.subplots import make_subplots

from lvm_core.plots import (
    ANIMATION_MARGIN,
    PALETTE,
    animation_controls,
    colorbar_trace,
    component_color,
    density_colorscale,
    density_image,
    latex_number,
    points_image,
    style_figure,
    text_number,
    with_frames,
)

X_TITLE, Y_TITLE = "x₁", "x₂"
TRACE_GRID, TRACE_DATA = 0, 1  # trace order in mixture_figure and em_animation_figure with a click grid (the page
# reads them to tell a click on a data point from a click on empty space)
WEBGL_ABOVE = 5000  # more data points than this are drawn with WebGL
# an EM animation with more data points than this draws them in a layout image per frame: recolouring each marker in
# the page costs a frame ~1 ms per 40 points (2,000 points: 13 fps, as an image 33), an image the same for any number;
# fewer keep their markers, whose hover names each point's most likely component frame by frame
IMAGE_POINTS_ABOVE = 1000
CONTOUR_NATS = 9  # contour lines of log p(x) every nat, from the peak down this many nats


def _figure(traces: list[dict]) -> go.Figure:
    """A Figure from trace dicts, skipping plotly's per-element validation: for 2,000 per-point colours it costs
    ~0.2 s per figure; the builders are tested, so the dicts are known to be valid."""
    return go.Figure(data=traces, _validate=False)


def plot_limits(X: np.ndarray, pad: float = 0.15) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis ranges around X (n, 2) with a margin, never of zero width."""
    lo, hi = X.min(0), X.max(0)
    span = np.maximum(hi - lo, 1e-3)
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def blend_rgb(resp: np.ndarray) -> np.ndarray:
    """Each point's colour: the component colours mixed by its responsibilities resp (n, K) -> (n, 3) uint8 RGB."""
    K = resp.shape[1]
    rgb = np.array([hex_to_rgb(component_color(k)) for k in range(K)], dtype=float)  # (K, 3)
    return np.clip(resp @ rgb, 0, 255).round().astype(np.uint8)


def blend_colors(resp: np.ndarray) -> list[str]:
    """blend_rgb as n "#rrggbb" strings (the shortest colour plotly reads: an animation sends one per point per
    frame)."""
    hexes = blend_rgb(resp).tobytes().hex()  # 6 hex digits per point
    return ["#" + hexes[i : i + 6] for i in range(0, len(hexes), 6)]


def _marker_size(n: int) -> int:
    """the data markers' diameter in pixels: smaller for many points"""
    return 5 if n > 1500 else 6


def _click_grid(clicks: np.ndarray) -> dict:
    """Invisible click targets at clicks (m, 2): plotly reports a click on empty space as one on the nearest of them.

    Transparent markers, of which plotly draws one (maxdisplayed) while it hovers and selects on all of them: m
    drawn markers would be m invisible elements in the page that every animation frame restyles and repaints."""
    return dict(type="scatter", x=clicks[:, 0], y=clicks[:, 1], mode="markers",
                marker=dict(size=9, opacity=0.0, color=PALETTE["data"], maxdisplayed=1), hoverinfo="none",
                showlegend=False, name="click grid")


def _density_traces(grid, mode: str) -> list[dict]:
    """p(x) on a grid (xs, ys, log_p) as a faded heatmap or as contours of log p; no hover, so clicks pass through."""
    if grid is None or mode == "none":
        return []
    xs, ys, log_p = grid
    if mode == "heatmap":
        return [
            dict(
                type="heatmap",
                x=xs,
                y=ys,
                z=np.exp(log_p),
                colorscale=density_colorscale(),
                showscale=True,
                hoverinfo="skip",
                colorbar=dict(title=dict(text="p(x)"), thickness=12, len=0.6),
                name="p(x)",
                zsmooth="best",
            )
        ]
    top = float(log_p.max())
    return [
        dict(
            type="contour",
            x=xs,
            y=ys,
            z=log_p,
            contours=dict(coloring="lines", start=top - 9, end=top, size=1.0),
            colorscale=[[0, PALETTE["model"]], [1, PALETTE["model"]]],  # the model's colour: one density, one hue
            opacity=0.55,
            showscale=False,
            line=dict(width=1.2),
            hoverinfo="skip",
            name="log p(x), 1 nat apart",
            showlegend=True,
        )
    ]


def mixture_figure(
    X: np.ndarray,
    resp: np.ndarray | None,
    means: np.ndarray | None,
    ellipses: list[list[np.ndarray]] | None,
    grid=None,
    density_mode: str = "contours",
    clicks: np.ndarray | None = None,
    point: np.ndarray | None = None,
    xlim=None,
    ylim=None,
    height: int = 520,
    title: str | None = None,
    dragmode: str = "pan",
) -> go.Figure:
    """The data coloured by responsibilities resp (n, K), ellipses [k][j] at 1 and 2 std, means (K, 2), the density.

    `clicks` (m, 2): an invisible click-catching grid drawn first (trace TRACE_GRID), then the data (TRACE_DATA).
    `point` (2,): the point whose p(x) is decomposed, drawn as a star. `dragmode`: "pan", "select" (box), "lasso".
    """
    traces: list[dict] = []
    if clicks is not None:
        traces.append(_click_grid(clicks))
    colors = blend_colors(resp) if resp is not None else PALETTE["data"]
    hover = "(%{x:.2f}, %{y:.2f})<extra></extra>"
    if resp is not None:
        hover = "(%{x:.2f}, %{y:.2f})<br>most likely component: %{customdata}<extra></extra>"
    traces.append(
        dict(
            type="scatter" if len(X) <= WEBGL_ABOVE else "scattergl",  # WebGL keeps 100,000 uploaded points fluid
            x=X[:, 0],
            y=X[:, 1],
            mode="markers",
            name="data (colour: p(z | x))" if resp is not None else "data",
            marker=dict(size=_marker_size(len(X)), color=colors, line=dict(width=0.4, color="rgba(0,0,0,0.35)")),
            customdata=None if resp is None else resp.argmax(1) + 1,
            hovertemplate=hover,
        )
    )
    traces += _density_traces(grid, density_mode)
    for k, rings in enumerate(ellipses or []):
        for j, pts in enumerate(rings):
            width, dash = (2.5, "solid") if j == 0 else (1.8, "dash")
            # a white halo under each ellipse: drawn over points of its own colour, it would vanish otherwise
            for halo in (True, False):
                traces.append(
                    dict(
                        type="scatter",
                        x=pts[:, 0],
                        y=pts[:, 1],
                        mode="lines",
                        legendgroup="ellipses",
                        showlegend=not halo and k == 0 and j == 0,
                        name="ellipses: 1 std (solid), 2 std (dashed)",
                        hoverinfo="skip",
                        line=dict(
                            color="rgba(255,255,255,0.9)" if halo else component_color(k),
                            width=width + 2.5 if halo else width,
                            dash=dash,
                        ),
                    )
                )
    if means is not None:
        traces.append(
            dict(
                type="scatter",
                x=means[:, 0],
                y=means[:, 1],
                mode="markers",
                name="means μₖ",
                marker=dict(
                    symbol="x",
                    size=13,
                    color=[component_color(k) for k in range(len(means))],
                    line=dict(width=2, color="white"),
                ),
                hovertemplate="μ%{text}: (%{x:.2f}, %{y:.2f})<extra></extra>",
                text=[str(k + 1) for k in range(len(means))],
            )
        )
    if point is not None:
        traces.append(
            dict(
                type="scatter",
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                name="chosen x",
                marker=dict(symbol="star", size=18, color=PALETTE["truth"], line=dict(width=1.5, color="black")),
                hovertemplate="chosen x = (%{x:.2f}, %{y:.2f})<extra></extra>",
            )
        )
    fig = _figure(traces)
    if xlim is None or ylim is None:
        xlim, ylim = plot_limits(X)
    fig.update_xaxes(range=list(xlim), constrain="domain")
    fig.update_yaxes(range=list(ylim), constrain="domain")
    fig.update_layout(dragmode=dragmode, uirevision="mixture")
    style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height, title=title)
    fig.update_layout(legend=dict(font=dict(size=11), itemwidth=30), margin=dict(t=70))
    return fig


def contour_paths(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, levels) -> tuple[np.ndarray, np.ndarray]:
    """The contour lines of z (ny, nx) on the grid xs (nx,), ys (ny,) at the given levels, as one polyline with NaN
    breaks -> (x (m,), y (m,)): a scatter trace plotly can animate without a redraw (a contour trace needs one)."""
    lines = contourpy.contour_generator(xs, ys, z, line_type=contourpy.LineType.Separate)
    parts = [part for level in levels for line in lines.lines(level) for part in (line, [[np.nan, np.nan]])]
    if not parts:
        return np.array([np.nan]), np.array([np.nan])
    xy = np.concatenate(parts)
    return xy[:, 0], xy[:, 1]


def _f32(a) -> np.ndarray:
    """float32 for the browser: half the bytes per frame, and far finer than a pixel"""
    return np.asarray(a, dtype=np.float32)


def _em_traces(frame, X, views: set, density_mode: str, K: int) -> list[dict]:
    """The traces one EM frame changes, in a fixed order (em_animation_figure's frames update them by index)."""
    traces = []
    if "responsibilities" in views and len(X) <= IMAGE_POINTS_ABOVE:  # more: in the frame's image instead
        traces.append(dict(type="scatter" if len(X) <= WEBGL_ABOVE else "scattergl",
                           marker=dict(color=blend_colors(frame.responsibilities)),
                           customdata=frame.responsibilities.argmax(1) + 1))
    if "density" in views and frame.density is not None:
        xs, ys, log_p = frame.density
        if density_mode != "heatmap":  # a heatmap is a layout image per frame (em_animation_figure)
            top = float(log_p.max())
            x, y = contour_paths(xs, ys, log_p, np.arange(top - CONTOUR_NATS, top, 1.0))
            traces.append(dict(type="scatter", x=_f32(x), y=_f32(y)))
    if "ellipses" in views:
        for j in range(2):  # halos: all components' j-th rings in one white trace
            pts = np.concatenate([np.vstack([rings[j], [[np.nan, np.nan]]]) for rings in frame.ellipses])
            traces.append(dict(type="scatter", x=_f32(pts[:, 0]), y=_f32(pts[:, 1])))
        for j in range(2):
            for k in range(K):
                traces.append(dict(type="scatter", x=_f32(frame.ellipses[k][j][:, 0]),
                                   y=_f32(frame.ellipses[k][j][:, 1])))
    if "means" in views:
        traces.append(dict(type="scatter", x=frame.means[:, 0], y=frame.means[:, 1]))
    traces.append(dict(type="scatter", x=[frame.iteration], y=[frame.log_likelihood]))  # the curve's marker
    return traces


def em_point_images(X: np.ndarray, frames: list, xlim, ylim) -> list[dict]:
    """Per EM frame, the data coloured by its responsibilities as a layout image (points_image) over xlim x ylim."""
    radius = _marker_size(len(X)) / 2 / 600  # a marker's radius in a ~600-pixel plot, as a fraction of its width
    return [points_image(X, blend_rgb(f.responsibilities), xlim, ylim, radius=radius) for f in frames]


def _label(frame, converged_at: int | None) -> str:
    status = "converged" if converged_at is not None and frame.iteration >= converged_at else "not yet converged"
    return f"{frame.iteration}: mean log p(x) = {text_number(frame.log_likelihood, 6)} nats ({status})"


def em_animation_figure(
    X: np.ndarray,
    frames: list,
    log_likelihoods: np.ndarray,
    converged_at: int | None,
    views=("responsibilities", "ellipses", "means", "density"),
    density_mode: str = "contours",
    clicks: np.ndarray | None = None,
    point: np.ndarray | None = None,
    xlim=None,
    ylim=None,
    frame_ms: float = 200.0,
    height: int = 600,
    dragmode: str = "pan",
    point_images: list[dict] | None = None,
) -> go.Figure:
    """EM's trajectory as a browser-side animation: left, the data coloured by responsibilities, the components'
    ellipses (1 and 2 std), the means and the density; right, the mean log-likelihood per iteration with the shown
    iteration marked. Plotly's Play button and slider step through `frames` (gmm.EMFrame, e.g. from gmm.em_frames)
    without a server round trip.

    X: (n, 2); log_likelihoods: (n_iter + 1,) the whole curve; clicks: (m, 2) an invisible click-catching grid
    (trace TRACE_GRID, then the data at TRACE_DATA); point: (2,) the point decomposed below, a star. More than
    IMAGE_POINTS_ABOVE data points are drawn in an image per frame: point_images, em_point_images(X, frames, xlim,
    ylim) computed once for every view of a fit, or None to compute them here.
    """
    views = set(views)
    first = frames[0]
    K = first.means.shape[0]
    if xlim is None or ylim is None:
        xlim, ylim = plot_limits(X)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.13)
    start = iter(_em_traces(first, X, views, density_mode, K))  # the first frame's values, in the frames' order
    traces: list[dict] = []
    animated: list[int] = []  # indices of the traces the frames update
    if clicks is not None:
        traces.append(_click_grid(clicks))
    colored = "responsibilities" in views
    marker = dict(size=_marker_size(len(X)), color=PALETTE["data"])  # no outline: half the drawing per frame
    data = dict(type="scatter" if len(X) <= WEBGL_ABOVE else "scattergl", x=X[:, 0], y=X[:, 1], mode="markers",
                name="data (colour: p(z | x))" if colored else "data", marker=marker,
                hovertemplate="(%{x:.2f}, %{y:.2f})" + ("<br>most likely component: %{customdata}" if colored else "")
                + "<extra></extra>")
    images: list[list[dict]] = [[] for _ in frames]  # per frame, layout images: swapped without a redraw
    as_image = colored and len(X) > IMAGE_POINTS_ABOVE
    if as_image:
        # the points are drawn in each frame's image; the trace stays for hover, clicks and selections, drawing one
        # transparent marker of them all (its hover cannot follow the frames: no component named there)
        marker.update(opacity=0.0, maxdisplayed=1)
        data.update(showlegend=False, hovertemplate="(%{x:.2f}, %{y:.2f})<extra></extra>")
        for image, points in zip(images, point_images or em_point_images(X, frames, xlim, ylim), strict=True):
            image.append(points)
    elif colored:
        values = next(start)
        marker["color"] = values["marker"]["color"]
        data["customdata"] = values["customdata"]
        animated.append(len(traces))
    traces.append(data)
    if as_image:  # the legend's entry for the points
        traces.append(dict(type="scatter", x=[None], y=[None], mode="markers", name=data["name"], hoverinfo="skip",
                           marker=dict(size=marker["size"], color=PALETTE["data"])))

    def add(values: dict, **style) -> None:
        animated.append(len(traces))
        traces.append({**values, **style})

    if "density" in views and first.density is not None:
        if density_mode == "heatmap":  # p(x) as a layout image per frame, under the points' image
            top = max(float(np.exp(f.density[2].max())) for f in frames)  # one scale for every iteration
            for image, f in zip(images, frames, strict=True):
                image.insert(0, density_image(*f.density[:2], np.exp(f.density[2]), top))
            traces.append(colorbar_trace(top, "p(x)", thickness=12, len=0.6, x=0.6))
        else:
            add(next(start), mode="lines", line=dict(color=PALETTE["model"], width=1.2), opacity=0.55,
                hoverinfo="skip", name="log p(x), 1 nat apart")
    if "ellipses" in views:
        # a white halo under each ring: drawn over points of its own colour, a ring would vanish otherwise
        for j in range(2):
            add(next(start), mode="lines", hoverinfo="skip", showlegend=False, name="halo",
                line=dict(color="rgba(255,255,255,0.9)", width=(2.5 if j == 0 else 1.8) + 2.5))
        for j in range(2):
            for k in range(K):
                add(next(start), mode="lines", hoverinfo="skip", legendgroup="ellipses",
                    showlegend=j == 0 and k == 0, name="ellipses: 1 std (solid), 2 std (dashed)",
                    line=dict(color=component_color(k), width=2.5 if j == 0 else 1.8,
                              dash="solid" if j == 0 else "dash"))
    if "means" in views:
        add(next(start), mode="markers", name="means μₖ", text=[str(k + 1) for k in range(K)],
            marker=dict(symbol="x", size=13, color=[component_color(k) for k in range(K)],
                        line=dict(width=2, color="white")),
            hovertemplate="μ%{text}: (%{x:.2f}, %{y:.2f})<extra></extra>")
    if point is not None:
        traces.append(dict(type="scatter", x=[point[0]], y=[point[1]], mode="markers", name="chosen x",
                           marker=dict(symbol="star", size=18, color=PALETTE["truth"],
                                       line=dict(width=1.5, color="black")),
                           hovertemplate="chosen x = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    ll = np.asarray(log_likelihoods, dtype=float)
    right = dict(xaxis="x2", yaxis="y2", hovertemplate="iteration %{x}: %{y:.4f} nats<extra></extra>")
    traces.append(dict(type="scatter", x=np.arange(len(ll)), y=ll, mode="lines", line=dict(color=PALETTE["model"]),
                       showlegend=False, name="mean log p(x)", **right))
    if converged_at is not None:
        traces.append(dict(type="scatter", x=[converged_at], y=[ll[converged_at]], mode="markers",
                           name=f"converged (iteration {converged_at})",
                           marker=dict(symbol="star", size=16, color=PALETTE["truth"]), **right))
    add(next(start), mode="markers", name="shown iteration", showlegend=False,
        marker=dict(size=13, color=PALETTE["model"], line=dict(width=2, color="white")), **right)
    names = [str(f.iteration) for f in frames]
    fig.update_layout(animation_controls(names, [_label(f, converged_at) for f in frames], frame_ms=frame_ms,
                                         prefix="EM iteration "))
    fig.update_xaxes(range=list(xlim), constrain="domain", title_text=X_TITLE, row=1, col=1)
    fig.update_yaxes(range=list(ylim), constrain="domain", title_text=Y_TITLE, scaleanchor="x", scaleratio=1,
                     row=1, col=1)
    fig.update_xaxes(title_text="EM iteration", rangemode="tozero", tick0=0, dtick=max(1, int(np.ceil(len(ll) / 8))),
                     row=1, col=2)
    # the curve's axis on its right: the gap between the panels holds the density's colour bar
    fig.update_yaxes(title_text="mean log p(x), nats", side="right", row=1, col=2)
    if len(ll) >= 2:
        rest = ll[1:]
        lo, hi = float(rest.min()), float(rest.max())
        pad = max((hi - lo) * 0.15, 0.02)
        if ll[0] < lo - max(20 * (hi - lo), 1.0):  # a one-point start, millions of nats lower: keep EM readable
            fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=2)
            fig.add_annotation(x=0, y=lo - pad, xref="x2", yref="y2", text=f"iteration 0: {text_number(ll[0], 4)}",
                               showarrow=True, arrowhead=2, ax=40, ay=-30, xanchor="left", font=dict(size=11))
    fig.update_layout(
        height=height, dragmode=dragmode, uirevision="mixture", hovermode="closest",
        margin=dict(l=60, r=75, t=50, b=ANIMATION_MARGIN),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0.0, font=dict(size=11)),
    )
    frames = [dict(name=name, traces=animated, data=_em_traces(f, X, views, density_mode, K))
              for name, f in zip(names, frames, strict=True)]
    if images[0]:
        fig.update_layout(images=images[0])
        for frame, image in zip(frames, images, strict=True):
            frame["layout"] = dict(images=image)
    return with_frames(go.Figure(data=traces, layout=fig.layout, _validate=False), frames)


def log_likelihood_figure(
    log_likelihoods: np.ndarray, current: int, converged_at: int | None, height: int = 300
) -> go.Figure:
    """Mean log-likelihood per EM iteration (iteration 0: the initialisation), the current step and convergence."""
    ll = np.asarray(log_likelihoods)
    its = np.arange(len(ll))
    fig = go.Figure(
        go.Scatter(
            x=its,
            y=ll,
            mode="lines+markers",
            name="mean log p(x)",
            line=dict(color=PALETTE["model"]),
            marker=dict(size=5),
            hovertemplate="iteration %{x}: %{y:.4f} nats<extra></extra>",
        )
    )
    if 0 <= current < len(ll):
        fig.add_trace(
            go.Scatter(
                x=[current],
                y=[ll[current]],
                mode="markers",
                name=f"now: iteration {current}",
                marker=dict(size=13, color=PALETTE["model"], line=dict(width=2, color="white")),
                hovertemplate="iteration %{x}: %{y:.4f} nats<extra></extra>",
            )
        )
    if converged_at is not None and converged_at < len(ll):
        fig.add_trace(
            go.Scatter(
                x=[converged_at],
                y=[ll[converged_at]],
                mode="markers",
                name=f"converged (iteration {converged_at})",
                marker=dict(symbol="star", size=16, color=PALETTE["truth"]),
                hovertemplate="converged at iteration %{x}<extra></extra>",
            )
        )
    fig.update_xaxes(rangemode="tozero")
    if len(ll) >= 2:
        # initialisations from single data points (tiny covariances) can start millions of nats lower: keep the
        # EM iterations readable and say where the start is
        rest = ll[1:]
        lo, hi = float(rest.min()), float(rest.max())
        pad = max((hi - lo) * 0.15, 0.02)
        if ll[0] < lo - max(20 * (hi - lo), 1.0):
            fig.update_yaxes(range=[lo - pad, hi + pad])
            fig.add_annotation(
                x=0,
                y=lo - pad,
                text=f"iteration 0: {text_number(ll[0], 4)} (off scale)",
                showarrow=True,
                arrowhead=2,
                ax=40,
                ay=-30,
                xanchor="left",
                font=dict(size=11),
            )
    return style_figure(fig, x_title="EM iteration", y_title="mean log p(x) (nats per point)", height=height)


def decomposition_figure(terms_log: np.ndarray, height: int = 300) -> go.Figure:
    """The K terms pi_k N(x; mu_k, Sigma_k) of p(x) at one x as bars, each labelled with its share of p(x)."""
    terms_log = np.asarray(terms_log)
    shift = terms_log.max()
    share = np.exp(terms_log - shift) / np.exp(terms_log - shift).sum()  # responsibilities p(z = k | x)
    values = np.exp(terms_log)  # raw densities only here, for display
    K = len(terms_log)
    fig = go.Figure(
        go.Bar(
            x=[f"k = {k + 1}" for k in range(K)],
            y=values,
            marker_color=[component_color(k) for k in range(K)],
            text=[f"{s:.1%}" for s in share],
            textposition="outside",
            name="πₖ N(x; μₖ, Σₖ)",
            customdata=np.column_stack([terms_log, share]),
            hovertemplate="%{x}: %{y:.3g} (log %{customdata[0]:.2f}), %{customdata[1]:.1%} of p(x)<extra></extra>",
        )
    )
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(showlegend=False)
    return style_figure(fig, x_title="component", y_title="πₖ N(x; μₖ, Σₖ) (density)", height=height)


def generative_figure(
    x: np.ndarray,
    k: np.ndarray,
    means: np.ndarray,
    grid=None,
    ellipses: list[list[np.ndarray]] | None = None,
    highlight_last: bool = False,
    xlim=None,
    ylim=None,
    height: int = 480,
) -> go.Figure:
    """Samples x (n, 2) coloured by their component k (n,), over the fitted density heatmap.

    With highlight_last, the newest sample is ringed and joined to the mean of the component it was drawn from.
    """
    traces = _density_traces(grid, "heatmap")
    K = len(means)
    for j in range(K):
        sel = k == j
        traces.append(
            dict(
                type="scatter",
                x=x[sel, 0],
                y=x[sel, 1],
                mode="markers",
                name=f"k = {j + 1}",
                legendgroup=f"c{j}",
                marker=dict(size=6, color=component_color(j), line=dict(width=0.5, color="white")),
                hovertemplate=f"drawn from component {j + 1}: " + "(%{x:.2f}, %{y:.2f})<extra></extra>",
            )
        )
    if highlight_last and len(x):
        j = int(k[-1])
        if ellipses is not None:
            pts = ellipses[j][0]
            traces.append(
                dict(
                    type="scatter",
                    x=pts[:, 0],
                    y=pts[:, 1],
                    mode="lines",
                    line=dict(color=component_color(j), width=3),
                    name=f"chosen component k = {j + 1}",
                    hoverinfo="skip",
                )
            )
        traces.append(
            dict(
                type="scatter",
                x=[means[j, 0], x[-1, 0]],
                y=[means[j, 1], x[-1, 1]],
                mode="lines+markers",
                showlegend=False,
                line=dict(color=PALETTE["truth"], width=2, dash="dot"),
                marker=dict(size=[8, 16], symbol=["x", "circle-open"], color=PALETTE["truth"], line=dict(width=3)),
                hoverinfo="skip",
            )
        )
    fig = _figure(traces)
    if xlim is not None and ylim is not None:
        fig.update_xaxes(range=list(xlim), constrain="domain")
        fig.update_yaxes(range=list(ylim), constrain="domain")
    return style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height)


def generative_animation_figure(
    x: np.ndarray,
    k: np.ndarray,
    means: np.ndarray,
    weights: np.ndarray,
    grid=None,
    ellipses: list[list[np.ndarray]] | None = None,
    n_animated: int = 30,
    frame_ms: float = 600.0,
    xlim=None,
    ylim=None,
    height: int = 480,
) -> go.Figure:
    """Samples x (n, 2) coloured by their component k (n,) over the fitted density heatmap, as an animation: frame j
    (1 ... n_animated) shows the first j draws, the newest ringed and joined to the mean of the component it came from
    (pick k ~ Categorical(pi), then draw x ~ N(mu_k, Sigma_k)); the last frame, shown first, has all n samples.
    Plotly's Play and slider run in the browser. means: (K, 2); weights: (K,); ellipses [k][0]: 1-std rings."""
    K = len(means)
    n_animated = int(min(n_animated, len(x)))
    traces = _density_traces(grid, "heatmap")
    first = len(traces)
    for j in range(K):
        traces.append(dict(type="scatter", mode="markers", name=f"k = {j + 1}", legendgroup=f"c{j}",
                           marker=dict(size=6, color=component_color(j), line=dict(width=0.5, color="white")),
                           hovertemplate=f"drawn from component {j + 1}: " + "(%{x:.2f}, %{y:.2f})<extra></extra>"))
    traces.append(dict(type="scatter", mode="lines", name="chosen component", line=dict(color=PALETTE["truth"],
                                                                                        width=3), hoverinfo="skip"))
    traces.append(dict(type="scatter", mode="lines+markers", showlegend=False, hoverinfo="skip",
                       line=dict(color=PALETTE["truth"], width=2, dash="dot"),
                       marker=dict(size=[8, 16], symbol=["x", "circle-open"], color=PALETTE["truth"],
                                   line=dict(width=3))))
    animated = list(range(first, len(traces)))

    def frame_data(shown: int, highlight: bool) -> list[dict]:
        data = [dict(type="scatter", x=_f32(x[:shown][k[:shown] == j, 0]), y=_f32(x[:shown][k[:shown] == j, 1]))
                for j in range(K)]
        if highlight:
            j = int(k[shown - 1])
            ring = ellipses[j][0] if ellipses is not None else np.full((1, 2), np.nan)
            data.append(dict(type="scatter", x=_f32(ring[:, 0]), y=_f32(ring[:, 1])))
            data.append(dict(type="scatter", x=[means[j, 0], x[shown - 1, 0]], y=[means[j, 1], x[shown - 1, 1]]))
        else:
            data += [dict(type="scatter", x=[], y=[]), dict(type="scatter", x=[], y=[])]
        return data

    def caption(shown: int) -> str:
        j = int(k[shown - 1])
        return (f"draw {shown}: picked k = {j + 1} (probability π = {weights[j]:.2f}), then drew x = "
                f"({x[shown - 1, 0]:.2f}, {x[shown - 1, 1]:.2f}) from N(μ{j + 1}, Σ{j + 1})")

    names = [str(j) for j in range(1, n_animated + 1)] + ["all"]
    frames = [dict(name=str(j), traces=animated, data=frame_data(j, True)) for j in range(1, n_animated + 1)]
    everything = f"all {len(x):,} samples, coloured by the component each was drawn from"
    frames.append(dict(name="all", traces=animated, data=frame_data(len(x), False)))
    for i, values in zip(animated, frames[-1]["data"], strict=True):  # the figure opens on the last frame
        traces[i] = {**traces[i], **values}
    fig = go.Figure(data=traces, _validate=False)
    if xlim is not None and ylim is not None:
        fig.update_xaxes(range=list(xlim), constrain="domain")
        fig.update_yaxes(range=list(ylim), constrain="domain")
    style_figure(fig, x_title=X_TITLE, y_title=Y_TITLE, equal_aspect=True, height=height)
    labels = [caption(j) for j in range(1, n_animated + 1)] + [everything]
    fig.update_layout(animation_controls(names, labels, frame_ms=frame_ms, prefix="", active=len(names) - 1,
                                         from_start=True))
    fig.update_layout(margin=dict(t=50, b=ANIMATION_MARGIN))
    return with_frames(fig, frames)


def restarts_histogram(log_likelihoods: np.ndarray, height: int = 300) -> go.Figure:
    """Histogram of the final mean log-likelihoods of R restarts; the best one marked."""
    ll = np.asarray(log_likelihoods)
    fig = go.Figure(
        go.Histogram(
            x=ll,
            nbinsx=min(40, max(5, len(ll))),
            marker_color=PALETTE["model"],
            name="restarts",
            hovertemplate="%{x}: %{y} restarts<extra></extra>",
        )
    )
    fig.add_vline(x=float(ll.max()), line=dict(color=PALETTE["truth"], width=2, dash="dash"))
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            line=dict(color=PALETTE["truth"], dash="dash"),
            name=f"best: {ll.max():.4f}",
        )
    )
    return style_figure(fig, x_title="final mean log p(x) (nats per point)", y_title="restarts", height=height)


def optima_small_multiples(
    X: np.ndarray,
    optima: list[dict],
    ncols: int = 3,
    height_per_row: int = 260,
    max_points: int = 600,
) -> go.Figure:
    """One panel per distinct local optimum: the data (grey) and its components' 1-std ellipses.

    optima: dicts with "ellipses" ([k][j] arrays), "means" (K, 2), "log_likelihood", "count"; best first.
    """
    n = len(optima)
    nrows = max(1, int(np.ceil(n / ncols)))
    titles = [
        f"{'★ best: ' if i == 0 else ''}{o['log_likelihood']:.4f} nats, ×{o['count']}" for i, o in enumerate(optima)
    ]
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.1)
    xlim, ylim = plot_limits(X, pad=0.05)
    X = X[:: max(1, len(X) // max_points)]  # thumbnails: every m-th point is enough, and keeps reruns light
    for i, opt in enumerate(optima):
        r, c = i // ncols + 1, i % ncols + 1
        fig.add_trace(
            go.Scattergl(
                x=X[:, 0],
                y=X[:, 1],
                mode="markers",
                marker=dict(size=3, color=PALETTE["data"]),
                showlegend=False,
                hoverinfo="skip",
            ),
            row=r,
            col=c,
        )
        for k, rings in enumerate(opt["ellipses"]):
            fig.add_trace(
                go.Scatter(
                    x=rings[0][:, 0],
                    y=rings[0][:, 1],
                    mode="lines",
                    showlegend=False,
                    hoverinfo="skip",
                    line=dict(color=component_color(k), width=2),
                ),
                row=r,
                col=c,
            )
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(range=list(xlim), showticklabels=False, row=r, col=c)
        fig.update_yaxes(range=list(ylim), showticklabels=False, scaleanchor=f"x{axis}", scaleratio=1, row=r, col=c)
    if optima:
        # the best optimum's title in the highlight colour (a frame would cross the title of an equal-aspect panel)
        fig.layout.annotations[0].font = dict(color=PALETTE["truth"], size=15)
    fig.update_layout(height=height_per_row * nrows + 40, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def model_selection_figure(
    ks: np.ndarray,
    bic: np.ndarray,
    aic: np.ndarray,
    train_ll: np.ndarray,
    heldout_ll: np.ndarray,
    current_k: int | None = None,
    height: int = 340,
) -> go.Figure:
    """Left: BIC and AIC against K (lower is better), minima starred. Right: train and held-out mean log p(x)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("information criteria (lower is better)", "log-likelihood per point"),
        horizontal_spacing=0.12,
    )
    series = [
        (bic, "BIC", PALETTE["model"], 1, np.nanargmin),
        (aic, "AIC", PALETTE["kl"], 1, np.nanargmin),
        (train_ll, "train", PALETTE["data"], 2, None),
        (heldout_ll, "held-out", PALETTE["estimate"], 2, np.nanargmax),
    ]
    for values, name, color, col, best in series:
        values = np.asarray(values, dtype=float)
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=values,
                mode="lines+markers",
                name=name,
                line=dict(color=color),
                hovertemplate=f"{name}, K = %{{x}}: %{{y:.4g}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        if best is not None and np.isfinite(values).any():
            i = int(best(values))
            fig.add_trace(
                go.Scatter(
                    x=[ks[i]],
                    y=[values[i]],
                    mode="markers",
                    name=f"best {name}: K = {ks[i]}",
                    marker=dict(symbol="star", size=15, color=color, line=dict(width=1, color="white")),
                ),
                row=1,
                col=col,
            )
    if current_k is not None:
        for col in (1, 2):
            fig.add_vline(x=current_k, line=dict(color=PALETTE["data"], dash="dot", width=1), row=1, col=col)
    fig.update_xaxes(title_text="number of components K", dtick=1)
    fig.update_yaxes(title_text="criterion", row=1, col=1)
    fig.update_yaxes(title_text="mean log p(x) (nats)", row=1, col=2)
    fig.update_layout(
        height=height,
        margin=dict(l=60, r=20, t=60, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.12, xanchor="left", x=0.0),
    )
    return fig


# ---- equations with live numbers (LaTeX strings for st.latex) ---------------------------------------------------




def _vec(v) -> str:
    return r"\begin{pmatrix}" + r"\\".join(f"{c:.2f}" for c in v) + r"\end{pmatrix}"


def mixture_latex(weights: np.ndarray, means: np.ndarray, per_line: int = 3) -> str:
    """p(x) = sum_k pi_k N(x; mu_k, Sigma_k) with the fitted pi_k and mu_k written in, per_line terms per line."""
    terms = [
        rf"{w:.2f}\,\mathcal{{N}}\!\left(x;\,{_vec(m)},\,\Sigma_{{{k + 1}}}\right)"
        for k, (w, m) in enumerate(zip(weights, means, strict=True))
    ]
    lines = [" + ".join(terms[i : i + per_line]) for i in range(0, len(terms), per_line)]
    body = r"\\ &\quad + ".join(lines)
    return (
        r"\begin{aligned} p(x) &= \sum_{k=1}^{"
        + str(len(weights))
        + r"} \pi_k\,\mathcal{N}(x;\mu_k,\Sigma_k)"
        + (r"\\ &= " + body + r"\end{aligned}")
    )


def decomposition_latex(x: np.ndarray, terms_log: np.ndarray, log_weights: np.ndarray, per_line: int = 4) -> str:
    """p(x) at one x as pi_k times N(x; mu_k, Sigma_k) per k, their sum, and log p(x) in nats."""
    terms_log = np.asarray(terms_log)
    log_normal = terms_log - np.asarray(log_weights)  # log N(x; mu_k, Sigma_k)
    parts = [rf"{np.exp(lw):.2f}\cdot {latex_number(np.exp(ln))}"
             for lw, ln in zip(log_weights, log_normal, strict=True)]
    lines = [" + ".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line)]
    shift = terms_log.max()
    log_p = float(shift + np.log(np.exp(terms_log - shift).sum()))
    log_text = f"{log_p:.3f}" if abs(log_p) < 1e6 else latex_number(log_p)  # far from the data: -5.16 x 10^30
    return (
        rf"\begin{{aligned}} p\!\left({_vec(x)}\right) &= \sum_k \pi_k\,\mathcal{{N}}(x;\mu_k,\Sigma_k) \\ &= "
        + r"\\ &\quad + ".join(lines)
        + rf"\\ &= {latex_number(np.exp(log_p))} \\ \log p(x) &= {log_text}\ \text{{nats}} \end{{aligned}}"
    )
