"""Figure builders of the mixtures page (lvm_core/plots/mixtures.py): traces, axes, aspect, colours, equations."""

import numpy as np
import pytest

from lvm_core import gmm
from lvm_core.datasets import make_dataset
from lvm_core.plots import PALETTE, click_grid, component_color
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
        clicks=click_grid(xlim, ylim, 10), point=np.array([0.0, 0.0]), xlim=xlim, ylim=ylim,
    )  # fmt: skip
    data = fig.data
    grid = data[figs.TRACE_GRID]
    # invisible, and one marker drawn of all it catches clicks at
    assert grid.name == "click grid" and grid.marker.opacity == 0 and grid.marker.maxdisplayed == 1
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

    expected = "#{:02x}{:02x}{:02x}".format(*hex_to_rgb(component_color(int(resp[sure].argmax()))))
    assert resp[sure].max() > 0.999 and data[figs.TRACE_DATA].marker.color[sure] == expected


def test_blend_colors_mixes_by_responsibility():
    from plotly.colors import hex_to_rgb

    half = np.array([[0.5, 0.5]])
    a, b = np.array(hex_to_rgb(component_color(0))), np.array(hex_to_rgb(component_color(1)))
    assert figs.blend_colors(half) == ["#{:02x}{:02x}{:02x}".format(*np.round((a + b) / 2).astype(int))]
    assert figs.blend_colors(np.eye(3)) == [component_color(k).lower() for k in range(3)]


def test_heatmap_mode_and_hidden_views(fitted):
    X, g = fitted
    xlim, ylim = figs.plot_limits(X)
    fig = figs.mixture_figure(X, None, None, None, gmm.density_grid(g, xlim, ylim, 20), "heatmap")
    types = [t.type for t in fig.data]
    assert types == ["scatter", "heatmap"]  # data, then p(x); no grid, ellipses or means
    assert fig.to_dict()["data"][1]["colorbar"]["title"] == {"text": "p(x)"}


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


# ---- browser-side animations ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trajectory():
    X = make_dataset("overlapping", n=300, seed=0)
    return X, gmm.em_run(X, 3, "full", "random", seed=0)


def test_contour_paths_trace_the_level_sets_of_a_known_function():
    xs = np.linspace(-3, 3, 121)
    z = -(xs[None, :] ** 2 + xs[:, None] ** 2)  # level -r^2: a circle of radius r
    x, y = figs.contour_paths(xs, xs, z, [-1.0, -4.0])
    assert np.isnan(x).sum() == 2  # one break after each closed line
    r = np.hypot(x, y)[np.isfinite(x)]
    assert np.all((np.abs(r - 1) < 0.01) | (np.abs(r - 2) < 0.01))
    assert np.isnan(figs.contour_paths(xs, xs, z, [5.0])[0]).all()  # no such level: an empty (NaN) path


def test_em_animation_has_one_frame_per_shown_iteration_updating_the_animated_traces(trajectory):
    X, trace = trajectory
    xlim, ylim = figs.plot_limits(X)
    iterations = gmm.frame_iterations(trace.n_iter, 60)
    frames = gmm.em_frames(trace, X, iterations, xlim, ylim, density_n=30)
    fig = figs.em_animation_figure(X, frames, trace.log_likelihoods, trace.converged_at,
                                   clicks=click_grid(xlim, ylim, 10), point=np.zeros(2), xlim=xlim, ylim=ylim,
                                   frame_ms=50)
    spec = fig.to_dict()
    data, out = spec["data"], spec["frames"]
    assert data[figs.TRACE_GRID]["name"] == "click grid" and data[figs.TRACE_DATA]["name"].startswith("data")
    assert [f["name"] for f in out] == [str(t) for t in iterations]
    animated = out[0]["traces"]
    assert figs.TRACE_DATA in animated and animated[-1] == len(data) - 1  # the curve's marker comes last
    assert all(len(f["data"]) == len(animated) for f in out)
    for f in out:  # every animated trace keeps its type, so plotly can update it without a redraw
        assert [d["type"] for d in f["data"]] == [data[i]["type"] for i in animated]
    # the figure opens on frame 0: its values are the first frame's
    assert data[figs.TRACE_DATA]["marker"]["color"] == out[0]["data"][0]["marker"]["color"]
    assert out[-1]["data"][0]["marker"]["color"] == figs.blend_colors(gmm.responsibilities(trace.mixture(), X))
    means = out[-1]["data"][animated.index(next(i for i in animated if data[i].get("name") == "means μₖ"))]
    np.testing.assert_allclose(figs_array(means["x"]), trace.mixture().means_[:, 0])
    steps = spec["layout"]["sliders"][0]["steps"]
    assert "(converged)" in steps[-1]["label"] and "(not yet converged)" in steps[0]["label"]
    assert steps[-1]["label"].startswith(f"{trace.n_iter}: mean log p(x) = ")
    assert all("layout" not in f for f in out)  # a frame that changes the layout draws far slower
    play = spec["layout"]["updatemenus"][0]["buttons"][0]["args"][1]
    assert play["frame"] == {"duration": 50, "redraw": False} and play["fromcurrent"] is True
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"  # equal aspect in x-space
    assert spec["layout"]["xaxis2"]["title"]["text"] == "EM iteration"


def figs_array(value):
    from tests.conftest import plotly_array

    return plotly_array(value)


def test_em_animation_heatmap_is_a_layout_image_per_frame_and_plays_without_redraw(trajectory):
    from plotly.colors import sample_colorscale, unlabel_rgb

    from tests.conftest import png_pixels

    X, trace = trajectory
    xlim, ylim = figs.plot_limits(X)
    frames = gmm.em_frames(trace, X, [0, trace.n_iter], xlim, ylim, density_n=20)
    fig = figs.em_animation_figure(X, frames, trace.log_likelihoods, trace.converged_at, ("density",), "heatmap")
    spec = fig.to_dict()
    assert [t["type"] for t in spec["data"]][:2] == ["scatter", "scatter"]  # the data, then the colour bar's trace
    assert spec["layout"]["updatemenus"][0]["buttons"][0]["args"][1]["frame"]["redraw"] is False
    top = max(np.exp(f.density[2]).max() for f in frames)  # one scale for every frame
    bar = spec["data"][1]["marker"]
    # the figure skips validation, so the colour bar's title must already be plotly.js's {"text": ...}
    assert bar["showscale"] is True and bar["colorbar"]["title"] == {"text": "p(x)"}
    assert bar["cmin"] == 0 and bar["cmax"] == pytest.approx(top)
    assert spec["layout"]["yaxis2"]["side"] == "right"  # the colour bar sits between the panels, clear of this axis
    xs, ys, log_p = frames[1].density
    image = spec["frames"][1]["layout"]["images"][0]
    assert spec["layout"]["images"][0]["source"] == spec["frames"][0]["layout"]["images"][0]["source"]
    assert (image["xref"], image["yref"], image["layer"]) == ("x", "y", "below")
    step = xs[1] - xs[0]
    assert image["x"] == pytest.approx(xs[0] - step / 2) and image["sizex"] == pytest.approx(20 * step)
    assert image["y"] == pytest.approx(ys[-1] + (ys[1] - ys[0]) / 2)  # the top edge: the image's first row
    pixels = png_pixels(image["source"])
    assert pixels.shape == (20, 20, 4)
    # each pixel is Viridis at p(x) / top, as plotly samples it (past the first stop, which fades to transparent)
    value = np.exp(log_p)[::-1] / top
    shown = value > 0.12
    assert shown.sum() >= 10
    want = np.array([unlabel_rgb(c) for c in sample_colorscale("Viridis", value[shown].tolist())])
    np.testing.assert_allclose(pixels[shown][:, :3], want, atol=2)
    assert (pixels[shown][:, 3] == 255).all() and (pixels[value < 1e-3][:, 3] < 5).all()


@pytest.mark.parametrize("density_mode", ["contours", "heatmap"])
def test_em_animation_of_many_points_draws_them_in_an_image_per_frame(trajectory, monkeypatch, density_mode):
    from tests.conftest import png_pixels

    monkeypatch.setattr(figs, "IMAGE_POINTS_ABOVE", 100)  # the 300 points of the trajectory count as many
    X, trace = trajectory
    xlim, ylim = figs.plot_limits(X)
    frames = gmm.em_frames(trace, X, [0, 2, trace.n_iter], xlim, ylim, density_n=20)
    spec = figs.em_animation_figure(X, frames, trace.log_likelihoods, trace.converged_at, density_mode=density_mode,
                                    clicks=click_grid(xlim, ylim, 10), xlim=xlim, ylim=ylim).to_dict()
    data, out = spec["data"], spec["frames"]
    points = data[figs.TRACE_DATA]
    # the data trace stays for hover, clicks and selections, draws one transparent marker and is not animated
    assert points["marker"]["opacity"] == 0 and points["marker"]["maxdisplayed"] == 1
    assert figs.TRACE_DATA not in out[0]["traces"] and points["marker"]["color"] == PALETTE["data"]
    legend = data[figs.TRACE_DATA + 1]  # its legend entry, in the data's colour
    assert legend["name"] == points["name"] and legend["marker"]["color"] == PALETTE["data"]
    n_images = 2 if density_mode == "heatmap" else 1  # p(x) under the points
    assert spec["layout"]["images"] == out[0]["layout"]["images"] and all(
        len(f["layout"]["images"]) == n_images for f in out)
    # the point farthest from all others, at its pixel, in each frame its blend of the components' colours
    gaps = np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(len(X)) * 1e9
    j = int(gaps.min(1).argmax())
    for f, frame in zip(out, frames, strict=True):
        image = f["layout"]["images"][-1]
        assert (image["x"], image["y"]) == (xlim[0], ylim[1])
        pixels = png_pixels(image["source"])
        rows, cols = pixels.shape[:2]
        col = round((X[j, 0] - xlim[0]) / (xlim[1] - xlim[0]) * cols)
        row = round((ylim[1] - X[j, 1]) / (ylim[1] - ylim[0]) * rows)
        np.testing.assert_allclose(pixels[row, col, :3], figs.blend_rgb(frame.responsibilities)[j], atol=8)
        assert pixels[row, col, 3] == 255
    # images drawn once for every view of a fit are taken as given
    given = [dict(image, name=f"given {i}") for i, image in enumerate(figs.em_point_images(X, frames, xlim, ylim))]
    again = figs.em_animation_figure(X, frames, trace.log_likelihoods, trace.converged_at, density_mode=density_mode,
                                     xlim=xlim, ylim=ylim, point_images=given).to_dict()
    assert [f["layout"]["images"][-1]["name"] for f in again["frames"]] == ["given 0", "given 1", "given 2"]
    assert again["frames"][1]["layout"]["images"][-1]["source"] == out[1]["layout"]["images"][-1]["source"]


def test_generative_animation_draws_one_more_sample_per_frame_and_opens_on_all(fitted):
    X, g = fitted
    x, k = gmm.sample_generative(g, 200, seed=1)
    fig = figs.generative_animation_figure(x, k, g.means_, g.weights_, None, gmm.component_ellipses(g, (1.0,)),
                                           n_animated=10)
    spec = fig.to_dict()
    names = [f["name"] for f in spec["frames"]]
    assert names == [str(j) for j in range(1, 11)] + ["all"]
    counts = [sum(len(figs_array(d["x"])) for d in f["data"][:3]) for f in spec["frames"]]
    assert counts == list(range(1, 11)) + [200]
    j = int(k[4])  # frame 5 rings the component of the 5th draw and joins its mean to the sample
    line = spec["frames"][4]["data"][4]
    np.testing.assert_allclose([line["x"][0], line["y"][0]], g.means_[j])
    np.testing.assert_allclose([line["x"][1], line["y"][1]], x[4])
    assert f"picked k = {j + 1}" in spec["layout"]["sliders"][0]["steps"][4]["label"]
    assert spec["layout"]["sliders"][0]["active"] == 10  # opens on all samples
    play = spec["layout"]["updatemenus"][0]["buttons"][0]["args"]
    assert play[0] == names and play[1]["fromcurrent"] is False  # Play always starts at the first draw


def test_with_frames_serialises_plain_dict_frames():
    import plotly.graph_objects as go
    import plotly.io as pio

    from lvm_core.plots import with_frames

    frames = [{"name": str(i), "traces": [0], "data": [{"type": "scatter", "x": np.arange(3.0) + i}]}
              for i in range(3)]
    fig = with_frames(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 2])), frames)
    out = fig.to_dict()["frames"]
    assert [f["name"] for f in out] == ["0", "1", "2"]
    np.testing.assert_allclose(figs_array(out[2]["data"][0]["x"]), [2, 3, 4])
    assert '"frames"' in pio.to_json(fig, validate=False)
