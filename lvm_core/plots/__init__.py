"""Shared palette and figure conventions; one module per topic holds that topic's pure figure builders.

Colours are mid-tone so they read on both Streamlit's light and dark themes (contrast >= 2.5 against white and
against Streamlit's dark background); each role keeps one colour on every page. Data, model, truth, estimate and the
two estimators stay distinct for viewers with deuteranopia or protanopia (tests/test_palette.py).
Figures set no template or background: st.plotly_chart's Streamlit theme follows the viewer's light or dark mode.
"""

import base64
import io
import math
import re

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.colors import hex_to_rgb

PALETTE = {
    "data": "#868E96",  # observed points and histograms of samples
    "model": "#4263EB",  # the model's density p_theta(x)
    "truth": "#F76707",  # exact ground truth: log p(x), exact densities (our signature colour)
    "estimate": "#12B886",  # a generic Monte Carlo estimate
    "naive": "#C2255C",  # naive Monte Carlo (z from a uniform box)
    "importance": "#339AF0",  # importance sampling
    "prior": "#F59F00",  # p(z)
    "posterior": "#AE3EC9",  # p(z | x)
    "proposal": "#0CA678",  # q(z; phi)
    "elbo": "#1C7ED6",  # the evidence lower bound
    "gap": "#F03E3E",  # log p(x) - ELBO
    "kl": "#845EF7",  # KL(q || p(z | x))
}

# mixture components, clusters: plotly's qualitative set (10 colours, readable on light and dark)
COMPONENTS = [
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A",
    "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
]  # fmt: skip

DENSITY_COLORSCALE = "Viridis"  # sequential, perceptually uniform, readable on both themes


def density_colorscale(fade_low: bool = True) -> list[list]:
    """the density colourscale as plotly stops; with fade_low the lowest density is transparent, so near-zero
    regions show the page background (light or dark) instead of a dark purple slab"""
    from plotly.colors import get_colorscale

    stops = [list(s) for s in get_colorscale(DENSITY_COLORSCALE)]
    if fade_low:
        stops[0][1] = "rgba(68, 1, 84, 0)"  # viridis' first colour, fully transparent
    return stops


def density_image(xs: np.ndarray, ys: np.ndarray, density: np.ndarray, top: float, levels: int = 256) -> dict:
    """A density on a grid as a plotly layout image under the traces: a PNG in a data URI, coloured by
    density_colorscale() from 0 to top (values above top take its last colour).

    xs (nx,), ys (ny,): evenly spaced cell centres; density (ny, nx), rows going up in y as a heatmap's z. An
    animation frame can swap a layout image without redrawing the figure, which a heatmap trace cannot: the browser
    scales the image smoothly, as a heatmap's zsmooth="best" does. Pair it with colorbar_trace(top) for the scale.
    """
    stops = density_colorscale()
    positions = np.array([float(pos) for pos, _ in stops])
    rgba = np.array([[*hex_to_rgb(c), 1.0] if c.startswith("#") else
                     [*map(float, re.findall(r"[\d.]+", c)), 1.0][:4] for _, c in stops])  # (stops, 4)
    rgba[:, 3] *= 255
    lut = np.stack([np.interp(np.linspace(0, 1, levels), positions, channel) for channel in rgba.T], -1)
    scale = (levels - 1) / top if top > 0 else 0.0  # nothing to show: every pixel takes the transparent first colour
    index = np.clip(np.nan_to_num(np.asarray(density, dtype=float) * scale), 0, levels - 1).round().astype(int)
    pixels = lut.round().astype(np.uint8)[index[::-1]]  # (ny, nx, 4): an image's first row is its top
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    return _layout_image(Image.fromarray(pixels, "RGBA"), (xs[0] - dx / 2, xs[-1] + dx / 2),
                         (ys[0] - dy / 2, ys[-1] + dy / 2))


SMOOTH_POINTS_UP_TO = 20_000  # more points overlap anyway: drawn without supersampling, a quarter of the work


def points_image(X: np.ndarray, rgb: np.ndarray, xlim, ylim, radius: float = 0.005, width: int = 800) -> dict:
    """Points as discs in their own colours, as a plotly layout image over xlim x ylim under the traces: an animation
    frame swaps one image where recolouring markers restyles each point in the page.

    X (n, 2) in data units; rgb (n, 3) uint8; radius: a fraction of the image's width (0.005: the 6-pixel markers of a
    ~600-pixel plot). The image is ``width`` pixels wide, as tall as the ranges' aspect asks (an equal-aspect plot
    keeps the discs round), drawn at twice that and halved for smooth edges; later points cover earlier ones, as
    markers do (points whose disc crosses the image's edge are drawn first).
    """
    (x0, x1), (y0, y1) = xlim, ylim
    n = len(X)
    s = 2 if n <= SMOOTH_POINTS_UP_TO else 1  # supersampling: smooth edges, at 4x the pixels to fill per disc
    w = width * s
    h = max(1, round(w * (y1 - y0) / (x1 - x0)))
    r = radius * w
    reach = int(np.ceil(r))
    dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    inside = dx**2 + dy**2 <= r**2
    offsets = (dy[inside] * w + dx[inside]).astype(np.int32)  # (m,) a disc's pixels, as flat offsets
    col = np.round((np.asarray(X[:, 0], dtype=float) - x0) / (x1 - x0) * w).astype(np.int32)
    row = np.round((y1 - np.asarray(X[:, 1], dtype=float)) / (y1 - y0) * h).astype(np.int32)
    canvas = np.zeros((h * w, 4), dtype=np.uint8)
    colour = np.concatenate([np.asarray(rgb, dtype=np.uint8), np.full((n, 1), 255, np.uint8)], 1)  # (n, 4)
    clear = (row >= reach) & (row < h - reach) & (col >= reach) & (col < w - reach)  # whole disc on the canvas
    # numpy assigns repeated indices in order, so a later point's pixels win (the points near an edge come first)
    edge = np.flatnonzero(~clear)
    if len(edge):
        rows, cols = row[edge, None] + dy[inside], col[edge, None] + dx[inside]
        ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        canvas[(rows * w + cols)[ok]] = np.broadcast_to(colour[edge, None], (*ok.shape, 4))[ok]
    mid = np.flatnonzero(clear)
    canvas[((row[mid] * w + col[mid])[:, None] + offsets).ravel()] = np.repeat(colour[mid], len(offsets), 0)
    canvas = canvas.reshape(h, w, 4)
    # halved through premultiplied alpha, so edges fade to transparent rather than to black; then 256 colours, a third
    # of the bytes per frame
    image = Image.fromarray(canvas, "RGBA").convert("RGBa").resize((width, max(1, h // s)), Image.BOX).convert("RGBA")
    return _layout_image(image.quantize(256, method=Image.Quantize.FASTOCTREE), (x0, x1), (y0, y1))


def _layout_image(image: Image.Image, xlim, ylim) -> dict:
    """A PIL image as a plotly layout image stretched over xlim x ylim (data units), under the traces."""
    png = io.BytesIO()
    image.save(png, format="PNG")
    return dict(source="data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii"), xref="x",
                yref="y", x=float(xlim[0]), y=float(ylim[1]), sizex=float(xlim[1] - xlim[0]),
                sizey=float(ylim[1] - ylim[0]), sizing="stretch", xanchor="left", yanchor="top", layer="below")


def colorbar_trace(top: float, title: str, **colorbar) -> dict:
    """A trace that draws nothing but the density colour bar from 0 to top: the scale of a density_image."""
    return dict(type="scatter", x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, name=title,
                marker=dict(color=[0.0], cmin=0.0, cmax=top, colorscale=density_colorscale(), showscale=True,
                            colorbar=dict(title=dict(text=title), **colorbar)))


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _mantissa_exponent(v: float, digits: int) -> tuple[str, int] | None:
    """v as (mantissa, power of ten) when %g would write it with an exponent, else None"""
    text = f"{v:.{digits}g}"
    if "e" not in text:
        return None
    mantissa, exponent = text.split("e")
    return mantissa, int(exponent)


def latex_number(v: float, digits: int = 3) -> str:
    """a number for LaTeX: `digits` significant digits, powers of ten written out (6.9 \\times 10^{-9}, not 6.9e-09)"""
    if not math.isfinite(v):
        return r"-\infty" if v < 0 else r"\infty"
    split = _mantissa_exponent(v, digits)
    return f"{v:.{digits}g}" if split is None else rf"{split[0]} \times 10^{{{split[1]}}}"


def latex_int(n: int) -> str:
    """an integer for LaTeX, thousands grouped as 1{,}000 (a bare comma in maths is punctuation: a space follows)"""
    return f"{int(n):,}".replace(",", "{,}")


def text_number(v: float, digits: int = 3) -> str:
    """a number for plain text (chart labels, captions): 2.02 × 10⁻⁶ rather than 2.02e-06"""
    if not math.isfinite(v):
        return "-∞" if v < 0 else "∞"
    split = _mantissa_exponent(v, digits)
    return f"{v:.{digits}g}" if split is None else f"{split[0]} × 10{str(split[1]).translate(_SUPERSCRIPT)}"


def component_color(k: int) -> str:
    """colour of mixture component k (cycles after 10)"""
    return COMPONENTS[k % len(COMPONENTS)]


def style_figure(
    fig: go.Figure,
    *,
    x_title: str,
    y_title: str,
    equal_aspect: bool = False,
    height: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """apply LVM Lab's conventions in place and return fig: axis titles, tight margins, legend above the plot,
    equal aspect (one unit of x is one unit of y) for 2-D spaces such as x-space and z-space"""
    fig.update_layout(
        title=dict(text=title) if title else None,
        margin=dict(l=60, r=20, t=60 if title else 30, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0.0),
        hovermode="closest",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    if equal_aspect:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    if height is not None:
        fig.update_layout(height=height)
    return fig


ANIMATION_MARGIN = 150  # pixels under the plot for the Play button and the slider with its current value


def animation_controls(frame_names: list[str], labels: list[str] | None = None, frame_ms: float = 200.0,
                       prefix: str = "", active: int = 0, from_start: bool = False) -> dict:
    """Plotly's own Play/Pause buttons and a frame slider for a figure with frames (pass to fig.update_layout).

    The browser animates without a server round trip. frame_ms: milliseconds per frame while playing (at least one
    display frame, ~16.7 ms). Frames never redraw the whole figure (a redraw costs 100-200 ms in software rendering):
    they may change traces plotly can transition (scatter, lines, bars; a frame that changes their counts sets the
    axis ranges itself) and layout images (density_image, a heatmap's stand-in), not heatmap or contour traces.
    Play continues from the frame shown, or with from_start plays every frame from the first (for a figure that
    opens on its last frame)."""
    labels = labels or frame_names
    still = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    play = {"frame": {"duration": frame_ms, "redraw": False}, "mode": "immediate", "fromcurrent": not from_start,
            "transition": {"duration": 0}}
    buttons = [dict(label="▶ Play", method="animate", args=[list(frame_names) if from_start else None, play]),
               dict(label="❚❚ Pause", method="animate", args=[[None], still])]
    return dict(
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0.0, xanchor="left", y=0.0,
                          yanchor="top", pad=dict(t=72, r=10), buttons=buttons)],
        # the step labels say what a frame shows (e.g. its numbers); only the current one is written out, above the
        # rail: one per tick would overlap, and a frame that changes the layout (a title) is far slower to draw
        # below the x-axis titles: a figure using these controls leaves a bottom margin of BOTTOM_MARGIN
        sliders=[dict(active=active, x=0.25, len=0.75, xanchor="left", y=0.0, yanchor="top", pad=dict(t=64, b=0),
                      currentvalue=dict(prefix=prefix, visible=True, xanchor="left",
                                        font=dict(size=13, color=PALETTE["data"])),  # grey: light and dark themes
                      ticklen=3, font=dict(size=1, color="rgba(0,0,0,0)"), transition=dict(duration=0),
                      steps=[dict(method="animate", label=label, args=[[name], still])
                             for name, label in zip(frame_names, labels, strict=True)])],
    )


def with_frames(fig: go.Figure, frames: list[dict]) -> go.Figure:
    """fig with animation frames given as plain dicts ({"name", "data", "traces", "layout"}), returned in place.

    Plotly builds and validates a graph object for every trace of every frame: seconds for a few dozen frames of
    a dozen traces. Frames built by our own tested builders are valid by construction, so they are attached as the
    dicts they are and serialised as such (fig.to_dict()["frames"]; reading fig.frames[i].data is not supported).
    Internal API (Frame._props): pinned by tests/test_plots_mixtures.py, which fails if plotly changes it."""
    objs = []
    for frame in frames:
        obj = go.Frame(name=frame.get("name"))
        obj._props.update(frame)
        objs.append(obj)
    fig._frame_objs = tuple(objs)
    return fig


def click_grid(xlim, ylim, n: int = 45) -> np.ndarray:
    """An n x n grid of points covering the plot (n*n, 2): invisible markers that catch clicks on empty space."""
    gx, gy = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    return np.column_stack([gx.ravel(), gy.ravel()])
