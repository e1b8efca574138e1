"""Figure builders of the "Estimating p(x)" page: pure, labelled, the exact value drawn, palette colours."""

import numpy as np
import torch

from lvm_core import experiments as ex
from lvm_core.models import SeedLVM
from lvm_core.plots import PALETTE
from lvm_core.plots import estimating as figs
from lvm_core.proposals import ProposalSpec

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
