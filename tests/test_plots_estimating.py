"""Figure builders of the "Estimating p(x)" page: pure, labelled, the exact value drawn, palette colours."""

import numpy as np
import torch

from lvm_core import experiments as ex
from lvm_core.models import SeedLVM
from lvm_core.plots import PALETTE
from lvm_core.plots import estimating as figs
from lvm_core.proposals import ProposalSpec
from tests.conftest import plotly_array

LABELS = ex.ESTIMATOR_LABELS


def _runs():
    model = SeedLVM(latent_dim=2)
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    q = ProposalSpec("gaussian", (0.0, 0.0), (1.0, 1.0))
    return model, x, q, {n: ex.run_estimator(model, x, p, 100, 20, 0) for n, p in ex.default_proposals(
        model, (-4, 4), q).items()}


def test_estimates_figure_draws_every_estimator_and_the_exact_value_on_both_panels():
    _, _, _, runs = _runs()
    fig = figs.estimates_figure({n: r.log_estimates for n, r in runs.items()}, -1.5, LABELS)
    assert {t.name for t in fig.data} == set(LABELS.values())
    assert [s.line.color for s in fig.layout.shapes] == [PALETTE["truth"]] * 2
    assert fig.layout.xaxis2.title.text == "log p̂(x)  (nats)"


def test_latent_figure_2d_has_posterior_heatmap_q_contours_and_weighted_samples():
    model, x, q, runs = _runs()
    mean, std, _ = ex.posterior_moments(model, x)
    picture = ex.latent_picture(model, x, -1.0, q, ex.latent_view(mean, std, q, 2))
    fig = figs.latent_figure(picture, {"importance": (runs["importance"].shown_z, runs["importance"].shown_w)},
                             LABELS)
    types = [t.type for t in fig.data]
    assert types[:2] == ["heatmap", "contour"] and "scatter" in types
    sizes = np.asarray(fig.data[2].marker.size)
    assert sizes.max() > sizes.min()  # sized by normalised weight
    assert fig.layout.yaxis.scaleanchor == "x"  # equal aspect in z-space


def test_convergence_figure_is_log_log_with_a_reference_slope_and_a_cost_axis():
    _, _, _, runs = _runs()
    stats = {n: ex.sweep_statistics(r, -1.0) for n, r in runs.items()}
    fig = figs.convergence_figure(stats, LABELS)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    ref = next(t for t in fig.data if "reference" in t.name)
    slope = np.diff(np.log(ref.y)) / np.diff(np.log(ref.x))
    assert np.allclose(slope, -0.5)
    assert "wall time" in figs.convergence_figure(stats, LABELS, cost="seconds").layout.xaxis.title.text


def test_dimension_figure_marks_an_exact_proposal_instead_of_plotting_rounding_error():
    sweep = {"dims": np.arange(1, 4), "log_naive": np.log([0.1, 0.3, 1.0]),
             "log_importance": np.log([1e-15, 0.03, 0.04])}
    fig = figs.dimension_figure(sweep, LABELS, 1000)
    importance = next(t for t in fig.data if t.name == LABELS["importance"])
    assert min(importance.y) >= 1e-4 and importance.marker.symbol[0] == "triangle-down"
    assert fig.layout.annotations[0].text.startswith("exact")


def test_equations_substitute_the_numbers():
    text = figs.naive_latex(-4, 4, 2, 1000, np.log(0.25), np.log(0.3))
    assert "8^{2}" in text and "0.25" in text and "0.3" in text
    assert "0.5" in figs.importance_latex(10, np.log(0.5), None)
    assert r"\mathcal L_{1{,}000}" in figs.jensen_latex(1000, -2.0, -1.9)  # a bare comma would add a space
    assert r"2.5 \times 10^{-7}" in figs.importance_latex(10, np.log(2.5e-7), None)


def test_convergence_figure_draws_the_draws_needed_only_where_it_fits():
    _, _, _, runs = _runs()
    stats = {n: ex.sweep_statistics(r, -1.0) for n, r in runs.items()}
    fig = figs.convergence_figure(stats, LABELS, draws_needed={"importance": 30.0, "prior": 1e9})
    lines = [t for t in fig.data if "draws needed" in t.name]
    assert len(lines) == 1 and list(lines[0].x) == [30.0, 30.0]  # 1e9 is beyond 100 x the largest k (100)
    assert lines[0].line.color == figs.ESTIMATOR_COLORS["importance"]
    assert figs.convergence_figure(stats, LABELS, cost="seconds", draws_needed={"importance": 30.0}).data == \
        figs.convergence_figure(stats, LABELS, cost="seconds").data  # a count of draws has no place on a time axis


def test_khat_figure_has_the_threshold_the_no_mean_line_and_floors_minus_infinity():
    ks = np.array([25, 100, 1000])
    threshold = np.array([min(1 - 1 / np.log10(k), 0.7) for k in ks])
    sweep = {"importance": (ks, np.array([0.2, 0.4, 0.9])), "prior": (ks, np.array([-np.inf, np.nan, 0.1]))}
    fig = figs.khat_figure(sweep, LABELS, threshold, ks)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text.startswith("Pareto k̂")
    assert np.allclose(fig.data[0].y, threshold) and fig.data[0].name.startswith("threshold")
    assert any(s.y0 == 1.0 for s in fig.layout.shapes)  # k-hat = 1: the weights' mean does not exist
    prior = next(t for t in fig.data if t.name == LABELS["prior"])
    assert list(prior.x) == [25, 1000] and prior.y[0] == -0.5  # NaN left out, -inf drawn at the floor


def test_digit_figures_show_the_pixels_and_the_gallery_carries_indices_for_clicks():
    rng = np.random.default_rng(0)
    images = (rng.random((12, 64)) > 0.5).astype(float)
    one = figs.digit_figure(images[3], "image 3")
    assert np.array_equal(np.asarray(one.data[0].z), images[3].reshape(8, 8))
    assert one.layout.yaxis.autorange == "reversed"  # row 0 at the top, as images are read
    indices = np.arange(100, 112)
    gallery = figs.digit_gallery_figure(images, np.arange(12) % 10, indices, selected=105, per_row=5)
    canvas = np.asarray(gallery.data[0].z, dtype=float)
    assert canvas.shape == (3 * 9 - 1, 5 * 9 - 1)
    assert np.array_equal(canvas[9:17, 9:17], images[6].reshape(8, 8))  # row 1, column 1
    picks = gallery.data[1]
    assert list(picks.customdata) == list(indices) and picks.marker.opacity == 0.0
    frame = gallery.layout.shapes[0]  # the selected image (index 105: the sixth, row 1, column 0) is framed
    assert (frame.x0 + frame.x1) / 2 == picks.x[5] and (frame.y0 + frame.y1) / 2 == picks.y[5]


def test_sweep_animation_has_a_frame_per_k_with_the_histograms_of_that_k():
    _, _, _, runs = _runs()
    sweeps = {n: r.sweep for n, r in runs.items()}
    ks = runs["importance"].sweep_k
    fig = figs.sweep_animation_figure(sweeps, ks, -1.5, LABELS, bins=20)
    frames = fig.to_dict()["frames"]
    assert [f["name"] for f in frames] == [f"k{k}" for k in ks]
    for i, frame in enumerate(frames):
        for trace, name in zip(frame["data"], sweeps, strict=True):
            assert plotly_array(trace["y"]).sum() == np.isfinite(sweeps[name][i]).sum()  # each finite one counted
    first = frames[0]["data"][2]  # importance sampling at k = 1: its own histogram, on that frame's bins
    x = plotly_array(first["x"])
    edges = np.r_[x - first["width"] / 2, x[-1] + first["width"] / 2]
    assert np.array_equal(plotly_array(first["y"]), np.histogram(sweeps["importance"][0], edges)[0])
    assert fig.layout.sliders[0].active == len(ks) - 1  # opens at the chosen k
    assert list(fig.data[2].y) == list(plotly_array(frames[-1]["data"][2]["y"]))
    assert any(s.x0 == -1.5 for s in fig.layout.shapes)  # the exact value
    # frames do not redraw (bars transition), so each sets both axes: the tallest bar fits, every estimate shows
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["redraw"] is False
    for i, frame in enumerate(frames):
        tallest = max(plotly_array(t["y"]).max() for t in frame["data"])
        assert tallest < frame["layout"]["yaxis"]["range"][1] <= 1.1 * tallest + 1
        lo, hi = frame["layout"]["xaxis"]["range"]
        finite = np.concatenate([v[i][np.isfinite(v[i])] for v in sweeps.values()])
        assert lo < finite.min() and finite.max() < hi
    assert list(fig.layout.yaxis.range) == frames[-1]["layout"]["yaxis"]["range"]
