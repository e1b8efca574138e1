"""Figure builders of the ELBO page: pure (arrays in, Figure out), traces present, axes titled, palette colours."""

import numpy as np

from lvm_core.plots import PALETTE
from lvm_core.plots import elbo as figs


def _dens_1d():
    z = np.linspace(-4, 4, 101)
    return {"axes": [z], "log_posterior": -0.5 * (z - 1) ** 2 - 0.5 * np.log(2 * np.pi),
            "log_q": -0.5 * z**2 - 0.5 * np.log(2 * np.pi)}


def _dens_2d(n=31):
    z1, z2 = np.linspace(-3, 3, n), np.linspace(-2, 2, n + 2)
    g1, g2 = np.meshgrid(z1, z2)  # (n + 2, n), indexed [z2, z1]
    return {"axes": [z1, z2], "log_posterior": -0.5 * (g1**2 + g2**2), "log_q": -0.5 * ((g1 - 1) ** 2 + g2**2)}


def test_latent_figure_1d_draws_posterior_and_q_as_densities():
    fig = figs.latent_figure(_dens_1d(), path=np.array([[0.0], [0.7]]), title="t")
    assert [t.name for t in fig.data] == ["p(z | x) exact", "q(z; φ)"]
    assert fig.data[0].line.color == PALETTE["posterior"] and fig.data[1].line.color == PALETTE["proposal"]
    np.testing.assert_allclose(np.asarray(fig.data[0].y), np.exp(_dens_1d()["log_posterior"]))
    assert fig.layout.shapes[0].x0 == 0.7  # q's current mean
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("z", "density")


def test_latent_figure_2d_has_heatmap_contours_path_and_equal_aspect():
    dens = _dens_2d()
    path = np.array([[0.0, 0.0], [0.5, 0.1], [0.9, 0.0]])
    fig = figs.latent_figure(dens, path=path)
    types = [t.type for t in fig.data]
    assert types[:2] == ["heatmap", "contour"]
    assert np.asarray(fig.data[0].z).shape == (33, 31)
    names = [t.name for t in fig.data]
    assert "path of q's mean" in names and "q's mean" in names
    assert list(fig.data[names.index("q's mean")].x) == [0.9]
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.xaxis.title.text == "z₁"


def test_gap_chart_shades_the_gap_and_keeps_log_px_in_view():
    mc_steps = np.arange(3000)
    mc = -5 + 3 * (1 - np.exp(-mc_steps / 300.0))
    steps = np.array([0, 100, 1000, 2999])
    exact = -5 + 3 * (1 - np.exp(-steps / 300.0))
    fig = figs.gap_chart(mc_steps, mc, steps, exact, log_px=-1.9)
    names = [t.name for t in fig.data]
    assert names[0] == "ELBO, Monte Carlo (per step)" and len(fig.data[0].x) <= figs.MAX_TRACE_POINTS
    exact_trace = fig.data[names.index("ELBO, exact")]
    assert exact_trace.fill == "tonexty" and exact_trace.line.color == PALETTE["elbo"]
    truth = fig.data[names.index("log p(x) exact")]
    assert truth.line.color == PALETTE["truth"] and list(truth.y) == [-1.9, -1.9]
    lo, hi = fig.layout.yaxis.range
    assert lo < exact.min() and hi > -1.9
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("optimisation step", "nats")


def test_gap_chart_with_no_steps_yet_shows_log_px():
    fig = figs.gap_chart(np.array([]), np.array([]), np.array([]), np.array([]), log_px=-2.0)
    assert [t.name for t in fig.data] == ["log p(x) exact"]


def test_gradient_histograms_one_panel_per_coordinate_and_one_colour_per_estimator():
    rng = np.random.default_rng(0)
    samples = {"score function": rng.normal(0, 5, size=(200, 2)), "reparameterisation": rng.normal(0, 1, (200, 2))}
    fig = figs.gradient_histograms(samples, ["μ", "log σ"])
    hists = [t for t in fig.data if t.type == "histogram"]
    assert len(hists) == 4
    assert {t.marker.color for t in hists} == {PALETTE["naive"], PALETTE["elbo"]}
    assert sum(t.showlegend for t in hists) == 2
    assert "variance" in hists[0].name
    assert [a.text for a in fig.layout.annotations][:2] == ["∂ELBO/∂μ", "∂ELBO/∂log σ"]
    assert fig.layout.xaxis.title.text.startswith("gradient estimate")


def test_gap_distributions_share_bins_and_mark_the_means():
    fig = figs.gap_distributions(np.array([0.1, 0.2, 0.3]), np.array([0.01, 0.02, np.nan]))
    assert [t.name for t in fig.data] == ["amortisation gap (mean 0.200 nats)", "approximation gap (mean 0.015 nats)"]
    assert fig.data[0].xbins.size == fig.data[1].xbins.size
    np.testing.assert_allclose([s.x0 for s in fig.layout.shapes], [0.2, 0.015])
    assert fig.layout.xaxis.title.text == "gap per held-out point (nats)"


def test_per_point_gaps_sort_points_and_draw_three_markers_each():
    log_px = np.array([-1.0, -3.0, -2.0])
    fig = figs.per_point_gaps(log_px, log_px - 0.5, log_px - 0.1)
    names = [t.name for t in fig.data[1:]]
    assert names == ["ELBO, encoder q", "ELBO, per-point optimised q*", "log p(x), exact"]
    np.testing.assert_allclose(fig.data[3].y, [-3.0, -2.0, -1.0])  # sorted by log p(x)
    assert fig.data[3].marker.color == PALETTE["truth"]
    assert sum(v is None for v in fig.data[0].x) == 3  # one segment per point


def test_learning_figure_has_both_panels_and_the_reference():
    fig = figs.learning_figure(np.array([-3.0, -2.5, -2.2]), np.array([-3.5, -2.9]), np.zeros((10, 4)),
                               reference_log_lik=-2.0)
    names = [t.name for t in fig.data]
    assert names[:3] == ["mean log p_θ(x) exact", "minibatch ELBO after the inner loop",
                         "the data-generating model's mean log p(x)"]
    inner = [t for t in fig.data if t.name == "per-point ELBO (Monte Carlo)"]
    assert len(inner) == 4 and sum(t.showlegend for t in inner) == 1
    assert fig.layout.xaxis2.title.text == "inner step on φᵢ" and fig.layout.xaxis.title.text == "θ step"


def test_gradient_variance_path_is_a_log_line_per_estimator_with_zero_drawn_at_the_floor():
    steps = np.array([0, 20, 100, 500])
    variances = {"score function": np.array([9.0, 5.0, 4.0, 4.0]), "reparameterisation": np.array([2.0, 1, 0.5, 0.5]),
                 "sticking the landing": np.array([2.0, 0.5, 1e-3, 0.0])}
    fig = figs.gradient_variance_path(steps, variances)
    assert [t.name for t in fig.data] == list(variances)
    assert [t.line.color for t in fig.data] == [figs.ESTIMATOR_COLORS[e] for e in variances]
    assert list(fig.data[0].x) == [0, 20, 100, 500] and list(fig.data[0].y) == [9.0, 5.0, 4.0, 4.0]
    assert fig.data[2].y[-1] == figs.VARIANCE_FLOOR  # exactly 0 cannot sit on a log axis
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "optimisation step t" and "Var" in fig.layout.yaxis.title.text


def _snr_inputs(theta_entries=6):
    ks = np.array([1, 4, 16, 64])
    phi = {"IWAE": np.array([[1.0, 0.5], [0.5, 0.3], [0.25, 0.2], [0.12, 0.1]]),
           "DReG": np.array([[1.0, 0.5], [1.1, 0.6], [1.2, 0.6], [1.2, 0.7]])}
    se = {est: np.full((4, 2), 0.03) for est in phi}
    theta = np.outer(np.sqrt(ks), np.arange(1, theta_entries + 1) / 10.0)  # (4, T): entry j grows like sqrt(k)
    return ks, phi, se, theta, np.full_like(theta, 0.05)


def test_snr_figure_draws_iwae_and_dreg_per_phi_entry_and_the_largest_theta_entries_on_log_axes():
    ks, phi, se, theta, theta_se = _snr_inputs()
    labels = [f"t[{j}]" for j in range(theta.shape[1])]
    fig = figs.snr_figure(ks, phi, se, ["loc[1]", "log_scale[1]"], theta, theta_se, labels, max_theta=4)
    names = [t.name for t in fig.data]
    assert names[:4] == ["IWAE, ∂/∂loc[1]", "IWAE, ∂/∂log_scale[1]", "DReG, ∂/∂loc[1]", "DReG, ∂/∂log_scale[1]"]
    # theta: the 4 entries with the largest SNR (t[2]..t[5]), on the right panel, in their own colour
    theta_traces = [t for t in fig.data if t.legendgroup == "θ"]
    assert [t.name for t in theta_traces] == [f"IWAE, ∂/∂t[{j}]" for j in (2, 3, 4, 5)]
    assert all(t.xaxis == "x2" and t.line.color == figs.SNR_COLORS["θ"] for t in theta_traces)
    assert all(t.error_y.visible and len(t.error_y.array) == 4 for t in fig.data)
    np.testing.assert_allclose(np.asarray(fig.data[2].y), phi["DReG"][:, 0])
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text == "samples per estimate k" and "SNR" in fig.layout.yaxis.title.text


def test_snr_figure_says_so_when_the_model_has_no_theta():
    ks, phi, se, _, _ = _snr_inputs()
    fig = figs.snr_figure(ks, phi, se, ["loc[1]", "log_scale[1]"], np.zeros((4, 0)), np.zeros((4, 0)), [])
    assert not any(t.legendgroup == "θ" for t in fig.data)
    assert any("no θ" in a.text for a in fig.layout.annotations)


def test_gradient_histograms_give_sticking_the_landing_its_own_colour():
    rng = np.random.default_rng(1)
    samples = {e: rng.normal(0, s, size=(100, 1)) for e, s in zip(figs.ESTIMATOR_COLORS, (3, 1, 0.1), strict=True)}
    fig = figs.gradient_histograms(samples, ["loc[1]"])
    assert {t.marker.color for t in fig.data} == set(figs.ESTIMATOR_COLORS.values()) and len(fig.data) == 3


def test_gradient_histograms_draw_an_estimator_without_spread_as_a_line_not_a_spike():
    rng = np.random.default_rng(2)
    samples = {"reparameterisation": rng.normal(0.3, 1, size=(500, 2)),
               "sticking the landing": 0.3 + 1e-12 * rng.normal(size=(500, 2))}  # q = p(z|x): float noise only
    fig = figs.gradient_histograms(samples, ["loc[1]", "log_scale[1]"])
    assert {t.legendgroup for t in fig.data if t.type == "histogram"} == {"reparameterisation"}
    stl = [t for t in fig.data if t.legendgroup == "sticking the landing"]
    assert len(stl) == 1 and "solid line" in stl[0].name
    solid = [sh for sh in fig.layout.shapes if sh.line.dash in (None, "solid")]
    assert len(solid) == 2 and all(abs(sh.x0 - 0.3) < 1e-9 for sh in solid)


def test_path_animation_ellipses_are_at_one_and_two_mahalanobis_radii_and_1d_draws_q():
    from lvm_core.plots.elbo import path_animation_figure
    from tests.conftest import plotly_array

    z1, z2 = np.linspace(-3, 3, 31), np.linspace(-2, 2, 21)
    dens = {"axes": [z1, z2], "log_posterior": np.zeros((21, 31))}
    locs = np.array([[0.0, 0.0], [1.0, -0.5]])
    covs = np.array([np.eye(2), [[1.0, 0.6], [0.6, 0.5]]])
    fig = path_animation_figure(dens, locs, covs, np.array([0, 10]), np.array([-5.0, -3.0]))
    frames = fig.to_dict()["frames"]
    assert [f["name"] for f in frames] == ["t0", "t10"] and frames[1]["traces"] == [2, 3, 4]
    for radius, trace in ((1.0, frames[1]["data"][0]), (2.0, frames[1]["data"][1])):
        d = np.stack([plotly_array(trace["x"]), plotly_array(trace["y"])], -1) - locs[1]
        mahalanobis = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(covs[1]), d))
        assert np.allclose(mahalanobis, radius)
    assert fig.layout.sliders[0].active == 1 and "exact ELBO -3.000" in fig.layout.sliders[0].steps[1].label
    one = path_animation_figure({"axes": [z1], "log_posterior": np.zeros(31)}, locs[:, :1], covs[:, :1, :1],
                                np.array([0, 10]), np.array([-5.0, -3.0]))
    q = plotly_array(one.to_dict()["frames"][1]["data"][0]["y"])
    assert np.allclose(q, np.exp(-0.5 * (z1 - 1.0) ** 2) / np.sqrt(2 * np.pi))
