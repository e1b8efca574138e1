"""Figure builders of the mixtures page (lvm_core/plots/mixtures.py): traces, axes, aspect, colours, equations."""

import numpy as np
import pytest

from lvm_core import gmm
from lvm_core.datasets import make_dataset
from lvm_core.plots import PALETTE, component_color
from lvm_core.plots import mixtures as figs


@pytest.fixture(scope="module")
def fitted():
    X = make_dataset("overlapping", n=300, seed=0)
    return X, gmm.fit_mixture(X, 3, "full", seed=0)


def test_mixture_figure_layers_click_grid_data_density_ellipses_means_point(fitted):
    X, g = fitted
    xlim, ylim = figs.plot_limits(X)
    resp = gmm.responsibilities(g, X)
    fig = figs.mixture_figure(
        X, resp, g.means_, gmm.component_ellipses(g), gmm.density_grid(g, xlim, ylim, 30), "contours",
        clicks=figs.click_grid(xlim, ylim, 10), point=np.array([0.0, 0.0]), xlim=xlim, ylim=ylim,
    )  # fmt: skip
    data = fig.data
    assert data[figs.TRACE_GRID].name == "click grid" and data[figs.TRACE_GRID].marker.opacity == 0
    assert len(data[figs.TRACE_GRID].x) == 100
    assert len(data[figs.TRACE_DATA].x) == len(X)
    assert [t.type for t in data].count("contour") == 1
    # K components x (1 std, 2 std) x (white halo, coloured line)
    assert sum(getattr(t, "mode", None) == "lines" for t in data) == 3 * 2 * 2
    assert fig.layout.yaxis.scaleanchor == "x"  # equal aspect in x-space
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    # a point sure of its component takes that component's colour
    sure = int(np.argmax(resp.max(1)))
    from plotly.colors import hex_to_rgb

    expected = "rgb({},{},{})".format(*hex_to_rgb(component_color(int(resp[sure].argmax()))))
    assert resp[sure].max() > 0.999 and data[figs.TRACE_DATA].marker.color[sure] == expected


def test_blend_colors_mixes_by_responsibility():
    from plotly.colors import hex_to_rgb

    half = np.array([[0.5, 0.5]])
    a, b = np.array(hex_to_rgb(component_color(0))), np.array(hex_to_rgb(component_color(1)))
    assert figs.blend_colors(half) == ["rgb({},{},{})".format(*np.round((a + b) / 2).astype(int))]


def test_heatmap_mode_and_hidden_views(fitted):
    X, g = fitted
    xlim, ylim = figs.plot_limits(X)
    fig = figs.mixture_figure(X, None, None, None, gmm.density_grid(g, xlim, ylim, 20), "heatmap")
    types = [t.type for t in fig.data]
    assert types == ["scatter", "heatmap"]  # data, then p(x); no grid, ellipses or means


def test_log_likelihood_figure_marks_now_and_convergence_and_clips_a_far_start():
    ll = np.array([-1e6, -3.0, -2.5, -2.4, -2.39])
    fig = figs.log_likelihood_figure(ll, current=2, converged_at=4)
    names = [t.name for t in fig.data]
    assert "now: iteration 2" in names and "converged (iteration 4)" in names
    lo, hi = fig.layout.yaxis.range
    assert lo > -10 and hi < -2  # the -1e6 start is off scale, and said so
    assert "off scale" in fig.layout.annotations[0].text
    assert fig.layout.xaxis.title.text == "EM iteration"


def test_decomposition_bars_are_the_terms_and_shares_sum_to_one(fitted):
    _, g = fitted
    terms = gmm.decompose_density(g, np.array([0.5, 0.5]))
    fig = figs.decomposition_figure(terms)
    np.testing.assert_allclose(fig.data[0].y, np.exp(terms))
    shares = [float(t.rstrip("%")) for t in fig.data[0].text]
    assert abs(sum(shares) - 100) < 0.2


def test_generative_figure_one_trace_per_component_and_highlight(fitted):
    _, g = fitted
    x, k = gmm.sample_generative(g, 40, seed=0)
    fig = figs.generative_figure(x, k, g.means_, None, gmm.component_ellipses(g, (1.0,)), highlight_last=True)
    per_k = [t for t in fig.data if t.name and t.name.startswith("k = ")]
    assert len(per_k) == 3 and sum(len(t.x) for t in per_k) == 40
    assert any(t.name == f"chosen component k = {k[-1] + 1}" for t in fig.data)


def test_restarts_and_model_selection_figures():
    fig = figs.restarts_histogram(np.array([-3.1, -3.0, -3.0, -2.9]))
    assert fig.data[0].type == "histogram" and "best: -2.9000" in fig.data[1].name
    X = make_dataset("well_separated", n=100, seed=0)
    g = gmm.fit_mixture(X, 3, seed=0)
    opt = {"ellipses": gmm.component_ellipses(g, (1.0,)), "means": g.means_, "log_likelihood": -3.0, "count": 2}
    panels = figs.optima_small_multiples(X, [opt, opt])
    assert panels.layout.annotations[0].text.startswith("★ best")
    ks = np.arange(1, 5)
    sel = figs.model_selection_figure(ks, np.array([4.0, 2, 3, 5]), np.array([4.0, 3, 2, 5]),
                                      np.array([-3.0, -2, -1.9, -1.8]), np.array([-3.0, -2, -2.1, -2.5]))  # fmt: skip
    names = [t.name for t in sel.data]
    assert "best BIC: K = 2" in names and "best AIC: K = 3" in names and "best held-out: K = 2" in names
    assert sel.data[0].line.color == PALETTE["model"]


def test_equations_carry_the_numbers():
    tex = figs.mixture_latex(np.array([0.25, 0.75]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert "0.25" in tex and "0.75" in tex and "3.00" in tex
    terms = np.log([0.25, 0.75]) + np.log([0.1, 0.2])
    tex = figs.decomposition_latex(np.array([0.0, 1.0]), terms, np.log([0.25, 0.75]))
    assert r"0.25\cdot 0.1" in tex and r"0.75\cdot 0.2" in tex and "0.175" in tex
    assert f"{np.log(0.175):.3f}" in tex
