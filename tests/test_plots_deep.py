"""Figure builders of the deep-LVM page: pure (arrays in, Figure out), traces present, axes titled, palette colours."""

import numpy as np
import torch

from lvm_core.plots import COMPONENTS, PALETTE
from lvm_core.plots import deep as figs


def _grid(n=21):
    xs = np.linspace(-3, 3, n)
    ys = np.linspace(-2, 2, n + 4)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, -0.5 * (gx**2 + gy**2) - np.log(2 * np.pi)  # (ny, nx)


def test_ellipse_is_closed_and_has_the_given_axes():
    pts = figs.ellipse([1.0, -1.0], [2.0, 0.5], n_std=2.0, n_points=101)
    assert pts.shape == (101, 2)
    np.testing.assert_allclose(pts[0], pts[-1])
    np.testing.assert_allclose(pts[:, 0].max() - pts[:, 0].min(), 8.0, rtol=1e-3)  # 2 std * 2 * sigma_1
    np.testing.assert_allclose(pts[:, 1].max() - pts[:, 1].min(), 2.0, rtol=1e-3)


def test_infinite_mixture_has_the_density_heatmap_binned_ellipses_and_the_highlighted_component():
    xs, ys, log_p = _grid()
    m = 40
    z = torch.linspace(-2, 2, m)[:, None]  # (m, 1)
    mu, sigma = torch.cat([z, z**2], 1), torch.full((m, 2), 0.3)
    highlight = {"z": np.array([0.5]), "mu": np.array([0.5, 0.25]), "sigma": np.array([0.3, 0.3]),
                 "log_pz": float(np.log(0.35))}
    fig = figs.infinite_mixture_figure(xs, ys, log_p, mu, sigma, z, highlight=highlight,
                                       X=np.zeros((10, 2)), height=500)
    assert fig.data[0].type == "heatmap"
    np.testing.assert_allclose(np.asarray(fig.data[0].z), np.exp(log_p))  # the density, not its log
    assert fig.data[0].z.shape == (len(ys), len(xs))
    assert fig.data[1].name == "data" and fig.data[1].marker.color == PALETTE["data"]
    ellipses = [t for t in fig.data if (t.name or "").startswith("p(x|z)")]
    assert 1 <= len(ellipses) <= figs.Z_BINS  # one trace per colour bin, not one per component
    assert sum(np.isnan(np.asarray(t.x, float)).sum() for t in ellipses) == m  # every component drawn once
    bold = [t for t in fig.data if (t.name or "").startswith("p(x | z = (0.50))")]
    assert len(bold) == 1 and bold[0].line.color == PALETTE["model"] and "0.350" in bold[0].name
    assert fig.layout.xaxis.title.text == "x₁" and fig.layout.yaxis.title.text == "x₂"
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.height == 500
    assert list(fig.layout.xaxis.range) == [xs[0], xs[-1]]


def test_prior_figure_is_a_curve_in_1d_and_a_heatmap_in_2d_with_the_selected_z():
    z = np.linspace(-4, 4, 81)[:, None]
    log_pz = -0.5 * z[:, 0] ** 2 - 0.5 * np.log(2 * np.pi)
    fig = figs.prior_figure(z, log_pz, selected=np.array([1.0]))
    assert [t.name for t in fig.data] == ["p(z)", "selected z"]
    assert fig.data[0].line.color == PALETTE["prior"]
    np.testing.assert_allclose(fig.data[1].y[1], np.exp(-0.5) / np.sqrt(2 * np.pi))  # up to p(z = 1)
    assert fig.layout.xaxis.title.text == "z" and fig.layout.yaxis.title.text == "p(z)"

    axis = np.linspace(-3, 3, 15)
    g1, g2 = np.meshgrid(axis, axis)
    z2 = np.column_stack([g1.ravel(), g2.ravel()])  # (225, 2), z1 fastest: the latent_grid order
    fig2 = figs.prior_figure(z2, -0.5 * (z2**2).sum(1), selected=np.array([0.0, 1.0]))
    assert fig2.data[0].type == "heatmap" and np.asarray(fig2.data[0].z).shape == (15, 15)
    assert fig2.data[1].name == "selected z" and fig2.layout.yaxis.scaleanchor == "x"
    assert (fig2.layout.xaxis.title.text, fig2.layout.yaxis.title.text) == ("z₁", "z₂")


def test_density_samples_and_latent_space_figures_label_their_axes_and_traces():
    xs, ys, log_p = _grid()
    X = np.random.default_rng(0).normal(size=(50, 2))
    fig = figs.density_vs_data_figure(xs, ys, log_p, X, title="p(x)")
    assert [t.type for t in fig.data] == ["heatmap", "scattergl"] and fig.data[1].name == "held-out data"
    assert fig.layout.title.text == "p(x)"
    fig = figs.samples_figure(X, X[:20] + 1)
    assert [t.name for t in fig.data] == ["data", "samples from the model"]
    assert [t.marker.color for t in fig.data] == [PALETTE["data"], PALETTE["model"]]
    assert len(fig.data[1].x) == 20
    fig = figs.latent_space_figure(X, X[:, 0], "x₁", source="encoder mean")
    assert fig.layout.xaxis.title.text == "z₁ (encoder mean)" and fig.layout.yaxis.scaleanchor == "x"
    np.testing.assert_allclose(np.asarray(fig.data[0].marker.color), X[:, 0])
    fig = figs.latent_space_figure(X[:, :1], X[:, 1], "x₂")
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("z (encoder mean)", "x₂")


def test_training_curves_draw_each_runs_bound_and_held_out_points_and_the_references():
    runs = [{"label": "ELBO", "bound": -np.linspace(3, 1, 100), "eval_steps": [50, 100], "eval_log_lik": [-2.0, -1.5]},
            {"label": "IWAE-8", "bound": -np.linspace(3, 0.8, 60), "eval_steps": [], "eval_log_lik": []}]
    fig = figs.training_curves_figure(runs, references={"single Gaussian": -2.7}, smooth=5)
    names = [t.name for t in fig.data]
    assert names == ["ELBO: bound", "ELBO: exact held-out log p(x)", "IWAE-8: bound"]
    assert fig.data[0].line.color == COMPONENTS[0] and fig.data[2].line.color == COMPONENTS[1]
    assert len(fig.data[0].y) == 100 and len(fig.data[2].y) == 60
    assert fig.layout.shapes[0].y0 == -2.7 and "single Gaussian" in fig.layout.annotations[0].text
    assert fig.layout.yaxis.title.text == "nats per point"
    one = figs.training_curves_figure(runs[:1])
    assert one.data[0].line.color == PALETTE["elbo"] and one.data[1].marker.color == PALETTE["truth"]


def test_smoothing_is_a_trailing_mean_of_the_same_length():
    values = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(figs._smooth(values, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(figs._smooth(values, 1), values)


def test_inner_loop_draws_one_line_per_visit():
    fig = figs.inner_loop_figure([[-3, -2, -1.5], [-2.5, -1.8]])
    assert len(fig.data) == 2 and [len(t.y) for t in fig.data] == [3, 2]
    assert fig.layout.xaxis.title.text.startswith("inner step")


# ------------------------------------------------------------------------------------------------------ images
def test_tile_images_places_each_image_in_reading_order_with_nan_gaps():
    images = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)  # 5 images of 2 x 3
    tiled = figs.tile_images(images, n_cols=2)
    assert tiled.shape == (3 * 3 - 1, 2 * 4 - 1)  # 3 rows of tiles, 2 columns, 1-pixel gaps
    np.testing.assert_array_equal(tiled[0:2, 0:3], images[0])
    np.testing.assert_array_equal(tiled[0:2, 4:7], images[1])
    np.testing.assert_array_equal(tiled[6:8, 0:3], images[4])
    assert np.isnan(tiled[2]).all() and np.isnan(tiled[:, 3]).all()  # the gaps
    assert np.isnan(tiled[6:8, 4:7]).all()  # the empty last cell


def test_manifold_puts_each_decoded_image_at_its_z_with_z2_upwards():
    axis = np.linspace(-1.0, 1.0, 3)
    means = np.zeros((3, 3, 8, 8))
    means[2, 0] = 1.0  # z = (axis[0], axis[2]): left, top
    means[0, 2, 0, :] = 0.5  # z = (axis[2], axis[0]): right, bottom; its image's top row only
    fig = figs.manifold_figure(means, axis, height=400)
    hm = fig.data[0]
    z, x, y = np.asarray(hm.z, float), np.asarray(hm.x), np.asarray(hm.y)
    on = np.argwhere(z == 1.0)
    np.testing.assert_allclose([x[on[:, 1]].mean(), y[on[:, 0]].mean()], [axis[0], axis[2]], atol=1e-9)
    half = np.argwhere(z == 0.5)
    np.testing.assert_allclose(x[half[:, 1]].mean(), axis[2], atol=1e-9)
    assert y[half[:, 0]].min() > axis[0]  # the image's top row lies above its tile's centre
    assert (hm.zmin, hm.zmax, hm.colorscale is not None) == (0.0, 1.0, True)
    assert hm.colorbar.title.text == "p(pixel on)"
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("z₁", "z₂")
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.height == 400


def test_image_tiles_show_the_first_image_at_the_top_left():
    images = np.zeros((4, 8, 8))
    images[0, 0, 0] = 1.0  # the first image's top-left pixel
    fig = figs.image_tiles_figure(images, n_cols=2, title="samples")
    z = np.asarray(fig.data[0].z, float)
    assert z[-1, 0] == 1.0 and np.nansum(z) == 1.0  # heatmap rows go up: the last row is drawn at the top
    assert fig.layout.title.text == "samples" and fig.layout.xaxis.visible is False


def test_latent_labels_has_one_legend_entry_per_class_in_its_colour():
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(60, 2)), np.repeat(np.arange(3), 20)
    fig = figs.latent_labels_figure(codes, labels, source="encoder mean")
    assert [t.name for t in fig.data] == ["0", "1", "2"]
    assert [t.marker.color for t in fig.data] == COMPONENTS[:3]
    np.testing.assert_array_equal(np.asarray(fig.data[1].x), codes[20:40, 0])
    assert fig.layout.xaxis.title.text == "z₁ (encoder mean)" and fig.layout.legend.title.text == "digit"


# ------------------------------------------------------------------------------ the infinite and a finite mixture
def test_density_pair_shares_one_colour_scale_and_titles_both_panels():
    xs, ys, log_p = _grid()
    fig = figs.density_pair_figure(xs, ys, log_p, log_p - 1.0, ("deep LVM: -1.00", "GMM (10): -2.00"),
                                   X=np.zeros((5, 2)))
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and {h.zmax for h in heatmaps} == {float(np.exp(log_p).max())}
    np.testing.assert_allclose(np.asarray(heatmaps[1].z), np.exp(log_p - 1.0))
    assert [h.showscale for h in heatmaps] == [False, True] and heatmaps[1].colorbar.title.text == "p(x)"
    assert [a.text for a in fig.layout.annotations] == ["deep LVM: -1.00", "GMM (10): -2.00"]
    assert fig.layout.xaxis.title.text == fig.layout.xaxis2.title.text == "x₁" and fig.layout.yaxis.title.text == "x₂"
    assert sum(t.showlegend is not False for t in fig.data if t.type == "scattergl") == 1


def test_comparison_sentence_names_the_winner_and_the_margin_either_way():
    s = figs.comparison_sentence("the deep LVM", -1.20, "the GMM", -1.50)
    assert s.startswith("The deep LVM wins by 0.30 nats per held-out point") and "-1.50 for the GMM" in s
    assert "1.35 times" in s  # e^0.3
    s = figs.comparison_sentence("the deep LVM", -2.0, "the GMM", -1.5)
    assert s.startswith("The GMM wins by 0.50") and "-2.00 for the deep LVM" in s
    assert "tie" in figs.comparison_sentence("a", -1.001, "b", -1.002)
