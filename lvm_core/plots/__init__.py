"""Shared palette and figure conventions; one module per topic holds that topic's pure figure builders.

Colours are mid-tone so they read on both Streamlit's light and dark themes; each role keeps one colour on every page.
Figures set no template or background: st.plotly_chart's Streamlit theme follows the viewer's light or dark mode.
"""

import math

import plotly.graph_objects as go

PALETTE = {
    "data": "#868E96",  # observed points and histograms of samples
    "model": "#4263EB",  # the model's density p_theta(x)
    "truth": "#F76707",  # exact ground truth: log p(x), exact densities (our signature colour)
    "estimate": "#1098AD",  # a generic Monte Carlo estimate
    "naive": "#D6336C",  # naive Monte Carlo (z from a uniform box)
    "importance": "#37B24D",  # importance sampling
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
