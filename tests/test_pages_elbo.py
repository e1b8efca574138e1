"""AppTest of the "ELBO and variational inference" page: Step advances and the gap chart updates, Reset, Play, the
URL mirrors the controls, extreme settings stay finite and explained."""

import io
import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import chart, plotly_array
from ui import state

PAGE = "views/elbo.py"
LINEAR = "Linear-Gaussian (closed form)"  # select boxes bind their displayed label to the URL


@pytest.fixture
def page(app_test):
    at = app_test(PAGE)
    return at


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def metric_number(at, label_start: str) -> float:
    """a metric's value as a float; small numbers are shown as 6.9 × 10⁻⁹"""
    text = metric(at, label_start)
    if "×" not in text:
        return float(text)
    mantissa, power = text.split(" × 10")
    return float(mantissa) * 10.0 ** int(power.translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))


def exact_elbo_trace(at) -> np.ndarray:
    fig = chart(at, "elbo_gap_chart")
    return plotly_array(next(t["y"] for t in fig["data"] if t.get("name") == "ELBO, exact"))


def test_page_shows_identity_with_live_numbers_and_charts(page):
    at = page
    live = [x.value for x in at.latex if "underbrace{-" in x.value]
    assert live, "the identity with the current numbers substituted"
    assert metric(at, "step t") == "0"
    residual = metric_number(at, "|log p(x)")
    assert abs(residual) < 1e-4
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert any("elbo_latent_chart" in k for k in keys) and any("elbo_grad_chart" in k for k in keys)


def test_step_advances_and_the_gap_chart_updates(page):
    at = page
    before = exact_elbo_trace(at)
    kl0 = float(metric(at, "gap"))
    at.button(key="elbo_step").click().run()
    assert metric(at, "step t") == "5"  # "steps per frame" defaults to 5
    after = exact_elbo_trace(at)
    assert len(after) > len(before) and after[-1] > after[0]  # new exact points, the last above the first
    assert float(metric(at, "gap")) < kl0  # q starts far from p(z|x): 5 Adam steps shrink the gap
    assert abs(metric_number(at, "|log p(x)")) < 1e-4
    at.button(key="elbo_reset").click().run()
    assert metric(at, "step t") == "0"


def test_run_to_convergence_names_the_gap(page):
    at = page
    at.button(key="elbo_run").click().run()
    assert metric(at, "step t") == "500"
    # the notes' seed model (noise 1): the posterior is nearly Gaussian, the gap closes
    assert float(metric(at, "gap")) < 0.01
    assert any("gap has nearly closed" in s.value and "approximation gap" in s.value for s in at.success)


def test_mean_field_on_correlated_linear_posterior_reports_approximation_gap(app_test):
    at = app_test(PAGE, query_params={"elbo_model": LINEAR, "elbo_lin_d": "2", "elbo_family": "mean-field"})
    at.button(key="elbo_run").click().run()
    assert any("approximation gap" in w.value for w in at.warning)
    gap_mf = float(metric(at, "gap"))
    at.selectbox(key="elbo_family").set_value("full covariance").run()
    at.button(key="elbo_run").click().run()
    assert float(metric(at, "gap")) < 0.01 < gap_mf
    assert any("gap has closed" in s.value for s in at.success)


def test_play_toggles_and_animates(page):
    at = page
    at.button(key="elbo_play").click().run()
    assert at.session_state["elbo_playing"] is True
    assert int(metric(at, "step t")) >= 5  # the fragment advances on each run while playing
    at.button(key="elbo_play").click().run()
    assert at.session_state["elbo_playing"] is False


def test_url_sets_the_controls_and_controls_write_the_url(app_test):
    query = {"elbo_family": "full covariance", "elbo_opt": "SGD", "elbo_lr": "0.1", "elbo_k": "16", "elbo_loc1": "-1.5",
             "elbo_speed": "3", "elbo_grad": "sticking the landing", "elbo_snr": "true"}
    at = app_test(PAGE, query_params=query)
    assert at.selectbox(key="elbo_family").value == "full covariance"
    assert at.selectbox(key="elbo_opt").value == "SGD"
    assert at.select_slider(key="elbo_lr").value == 0.1
    assert at.select_slider(key="elbo_k").value == 16
    assert at.slider(key="elbo_loc1").value == -1.5
    assert at.segmented_control(key="elbo_grad").value == "sticking the landing"
    assert at.toggle(key="elbo_snr").value is True and chart(at, "elbo_snr_chart")["data"]
    assert [t["name"] for t in chart(at, "elbo_grad_path_chart")["data"]] == ["sticking the landing"]
    at.button(key="elbo_step").click().run()
    assert metric(at, "step t") == "3"


@pytest.mark.parametrize("query", [
    {"elbo_loc1": "5", "elbo_ls1": "-4", "elbo_opt": "SGD", "elbo_lr": "1.0", "elbo_k": "1"},
    {"elbo_loc1": "-5", "elbo_ls1": "2", "elbo_lr": "1.0"},
    {"elbo_noise": "0.1", "elbo_seed_d": "2", "elbo_family": "full covariance", "elbo_lr": "1.0"},
    {"elbo_model": LINEAR, "elbo_lin_d": "10", "elbo_loc1": "5", "elbo_opt": "SGD", "elbo_lr": "1.0"},
    {"elbo_lr": "inf", "elbo_k": "nan", "elbo_loc1": "1e400"},
])  # fmt: skip
def test_extreme_settings_stay_finite_and_explained(app_test, query):
    at = app_test(PAGE, query_params=query)
    at.button(key="elbo_run").click().run()
    gap = float(metric(at, "gap"))
    explained = any("wandered" in w.value for w in at.warning)
    assert math.isfinite(gap) or explained
    assert isinstance(at.session_state[state.ELBO_PHI_STATE], dict)


def test_amortization_section_splits_the_encoders_gap(downloads, page):
    from lvm_core.models import MLPLVM
    from lvm_core.training import Encoder

    at = page
    assert any("needs a VAE" in i.value for i in at.info)  # without a trained model: an explanation and a link
    model, encoder = MLPLVM(2, 2, hidden=16, seed=0), Encoder(2, 2, hidden=16, seed=0)
    x_test, _ = model.sample(12, generator=0)
    zeros, ones = np.zeros(2), np.ones(2)
    at.session_state[state.TRAINED_LVM] = state.TrainedLVM(
        model=model, encoder=encoder, config={},
        data=state.TrainedData(train=x_test.numpy(), test=x_test.numpy(), mean=zeros, std=ones))
    at.run()
    at.slider(key="elbo_amort_n").set_value(10).run()
    at.select_slider(key="elbo_amort_steps").set_value(100).run()
    at.button(key="elbo_amort_go").click().run()
    amortization = float(metric(at, "mean amortisation gap").split()[0])
    approximation = float(metric(at, "mean approximation gap").split()[0])
    assert amortization > -0.01 and approximation > -0.01  # both are gaps: non-negative up to optimiser noise
    assert any("elbo_gap_dist" in c.proto.id for c in at.get("plotly_chart"))
    # per point: the three numbers on the chart and in the CSV, whose gaps add up to log p(x) - encoder ELBO
    names = {t.get("name") for t in chart(at, "elbo_gap_points")["data"]}
    assert {"ELBO, encoder q", "ELBO, per-point optimised q*", "log p(x), exact"} <= names
    rows = pd.read_csv(io.BytesIO(downloads(next(b for b in at.get("download_button") if b.key == "elbo_amort_csv"))))
    assert len(rows) == 10
    np.testing.assert_allclose(rows.amortization_gap + rows.approximation_gap, rows.log_px - rows.elbo_encoder,
                               atol=1e-9)
    assert rows.amortization_gap.mean() == pytest.approx(amortization, abs=1e-3)


def test_gradient_toggle_shows_one_or_all_three_estimators_and_score_function_is_noisier(page):
    at = page
    every = chart(at, "elbo_grad_chart")["data"]
    groups = {t.get("legendgroup") for t in every}
    assert groups == {"score function", "reparameterisation", "sticking the landing"}
    variance = {g: float(np.var(plotly_array(next(t for t in every if t.get("legendgroup") == g)["x"])))
                for g in groups}
    assert variance["score function"] > variance["reparameterisation"]  # the page's point, at the default phi
    for view in ("reparameterisation", "score function", "sticking the landing"):
        at.segmented_control(key="elbo_grad").set_value(view).run()
        assert {t.get("legendgroup") for t in chart(at, "elbo_grad_chart")["data"]} == {view}
        assert [t["name"] for t in chart(at, "elbo_grad_path_chart")["data"]] == [view]


def path_variance(at) -> dict[str, np.ndarray]:
    return {t["name"]: plotly_array(t["y"]) for t in chart(at, "elbo_grad_path_chart")["data"]}


def test_stl_variance_falls_to_zero_along_the_fit_when_the_posterior_is_in_the_family(app_test):
    # a 1-D linear-Gaussian posterior is a Gaussian: mean-field q can reach it exactly
    at = app_test(PAGE, query_params={"elbo_model": LINEAR, "elbo_lin_d": "1"})
    assert all(len(v) == 1 for v in path_variance(at).values())  # only the initial phi so far
    at.button(key="elbo_run").click().run()
    var = path_variance(at)
    steps = plotly_array(chart(at, "elbo_grad_path_chart")["data"][0]["x"])
    assert steps[0] == 0 and steps[-1] == 500 and len(steps) > 5
    stl, rp = var["sticking the landing"], var["reparameterisation"]
    assert stl[-1] < 1e-3 * stl[0] and stl[-1] < 1e-3 * rp[-1]  # STL lands; reparameterisation keeps its noise
    assert chart(at, "elbo_grad_path_chart")["layout"]["yaxis"]["type"] == "log"


def test_fit_check_names_both_kls_and_flags_a_too_narrow_q(app_test):
    at = app_test(PAGE, query_params={"elbo_model": LINEAR, "elbo_lin_d": "1", "elbo_ls1": "-3"})
    labels = [m.label for m in at.metric]
    for name in ("Pareto k̂", "ESS (Kish), of 2,000", "KL(q ‖ p(z|x)) (nats)", "KL(p(z|x) ‖ q) (nats)", "draws needed"):
        assert name in labels
    # the initial q (scale e^-3, a fraction of the posterior's, and off its mean) is a poor importance sampler
    assert float(metric(at, "KL(p(z|x)")) > 0.5 and float(metric(at, "Pareto k̂")) > 0.7
    assert any("k̂ =" in w.value for w in at.warning)
    at.button(key="elbo_run").click().run()  # the posterior lies in the family: q reaches it
    assert float(metric(at, "KL(q ‖")) < 0.01 and float(metric(at, "KL(p(z|x)")) < 0.01
    assert float(metric(at, "Pareto k̂")) < 0.5 and not any("k̂ =" in w.value for w in at.warning)
    assert float(metric_number(at, "draws needed")) < 1.05
    # the family's ceiling: the best Gaussian reaches log p(x) here
    assert any("approximation gap" in x.value and "max_{q" in x.value for x in at.latex)


def test_fit_check_reverse_kl_matches_the_live_gap(page):
    at = page
    assert float(metric(at, "KL(q ‖")) == pytest.approx(float(metric(at, "gap")), abs=2e-3)


def test_snr_sweep_runs_behind_its_toggle_theta_gains_with_k_and_dreg_keeps_phis_snr(page):
    at = page
    assert not any("elbo_snr_chart" in c.proto.id for c in at.get("plotly_chart"))  # costs seconds: off by default
    at.button(key="elbo_run").click().run()  # near the ELBO's optimum, where Rainforth et al. measure
    at.toggle(key="elbo_snr").set_value(True).run()
    data = chart(at, "elbo_snr_chart")["data"]
    snr = {t["name"]: plotly_array(t["y"]) for t in data}
    se = {t["name"]: plotly_array(t["error_y"]["array"]) for t in data}
    theta = [t["name"] for t in data if t.get("legendgroup") == "θ"]
    assert {"IWAE, ∂/∂log_scale[1]", "DReG, ∂/∂log_scale[1]"} <= set(snr) and 0 < len(theta) <= 4
    ks = plotly_array(data[0]["x"])
    assert ks[0] == 1 and ks[-1] >= 64
    # theta's SNR grows like sqrt(k): at the largest k well above k = 1, beyond the error bars
    best = max(theta, key=lambda name: snr[name][-1])
    assert snr[best][-1] - snr[best][0] > 4 * np.hypot(se[best][-1], se[best][0])
    assert snr[best][-1] > 0.5 * np.sqrt(ks[-1]) * snr[best][0]
    # phi's IWAE gradient stays in its noise, DReG's does not
    iwae, dreg = "IWAE, ∂/∂log_scale[1]", "DReG, ∂/∂log_scale[1]"
    assert snr[dreg][-1] - snr[iwae][-1] > 4 * np.hypot(se[dreg][-1], se[iwae][-1])


def test_checks_and_sweep_stay_clean_on_a_10_d_latent_with_full_covariance(app_test):
    at = app_test(PAGE, query_params={"elbo_model": LINEAR, "elbo_lin_d": "10", "elbo_family": "full covariance",
                                      "elbo_snr": "true"})
    at.button(key="elbo_step").click().run()
    assert math.isfinite(float(metric(at, "KL(p(z|x)"))) and math.isfinite(float(metric(at, "Pareto k̂")))
    assert any("needs a 1- or 2-D latent" in c.value for c in at.caption)  # no ceiling beyond 2-D
    names = [t["name"] for t in chart(at, "elbo_snr_chart")["data"]]
    assert "DReG, ∂/∂log_scale[2]" in names and not any("[3]" in n and "DReG" in n for n in names)
    assert len(plotly_array(chart(at, "elbo_grad_path_chart")["data"][0]["x"])) == 2


def test_snr_sweep_on_a_trained_deep_lvm_draws_its_largest_theta_entries(app_test):
    from lvm_core.models import MLPLVM

    model = MLPLVM(2, 2, hidden=8, seed=0)
    x_train, _ = model.sample(20, generator=0)
    at = app_test(PAGE)
    at.session_state[state.TRAINED_LVM] = state.TrainedLVM(
        model=model, encoder=None, config={},
        data=state.TrainedData(train=x_train.numpy(), test=x_train.numpy()[:5], mean=np.zeros(2), std=np.ones(2)))
    at.run()
    at.selectbox(key="elbo_model").set_value("deep").run()
    at.toggle(key="elbo_snr").set_value(True).run()
    theta = [t for t in chart(at, "elbo_snr_chart")["data"] if t.get("legendgroup") == "θ"]
    assert len(theta) == 4 and all(np.isfinite(plotly_array(t["y"])).all() for t in theta)
    assert any("the 4 with the largest SNR" in c.value for c in at.caption)


def _offered(kind: str) -> bool:
    from ui.selection import MODEL_LABELS

    return kind in MODEL_LABELS


@pytest.mark.skipif(not _offered("bimodal"), reason="the picker does not offer the hard posteriors yet")
def test_on_hard_posteriors_the_check_flags_what_the_elbo_hides(app_test):
    at = app_test(PAGE)
    at.selectbox(key="elbo_model").set_value("bimodal").run()
    at.button(key="elbo_run").click().run()
    # q settles on one of two equal modes: the gap is about log 2, k-hat says the weights have no mean, and the ESS
    # (the draws never reach the other mode) looks fine
    assert float(metric(at, "KL(q ‖")) < 1.0 and float(metric(at, "Pareto k̂")) > 1.0
    assert float(metric(at, "ESS (Kish)").replace(",", "")) > 1000
    assert any("k̂ =" in w.value for w in at.warning)
    at.selectbox(key="elbo_model").set_value("banana").run()
    at.button(key="elbo_run").click().run()
    assert float(metric(at, "KL(p(z|x)")) > math.log(2000)  # more draws needed than the check made
    assert any("k̂" in w.value and "draws are needed" in w.value for w in at.warning) or any(
        "k̂ =" in w.value for w in at.warning)


def test_the_recorded_path_replays_in_the_browser_one_frame_per_recorded_step(app_test):
    at = app_test(PAGE, {"elbo_model": "banana"})
    assert not any(c.proto.id and "elbo_replay_chart" in c.proto.id for c in at.get("plotly_chart"))  # one step
    at.button(key="elbo_run").click().run()
    run = at.session_state[state.ELBO_PHI_STATE]
    fig = chart(at, "elbo_replay_chart")
    frames = fig["frames"]
    assert [f["name"] for f in frames] == [f"t{t}" for t in run["steps"]]  # step 0 and the 25 recorded on the way
    assert len(frames) == 26
    # the last frame's path ends at q's mean now, and its 1-sigma ellipse is centred there
    loc = run["opt"].q().mean[0].detach().numpy()
    path = frames[-1]["data"][2]
    assert np.allclose([plotly_array(path["x"])[-1], plotly_array(path["y"])[-1]], loc)
    inner = frames[-1]["data"][0]
    assert np.allclose([plotly_array(inner["x"]).mean(), plotly_array(inner["y"]).mean()], loc, atol=0.05)
    assert fig["layout"]["sliders"][0]["steps"][-1]["label"].startswith("500 · exact ELBO")


def test_reset_to_defaults_brings_back_the_default_model_and_a_fresh_fit(app_test):
    at = app_test(PAGE, {"elbo_model": "linear"})
    at.button(key="elbo_run").click().run()
    assert metric(at, "step t") == "500"
    at.button(key="elbo_reset_defaults").click().run()
    assert at.selectbox(key="elbo_model").value == "seed" and metric(at, "step t") == "0"


def test_digits_at_a_far_q_say_how_far_the_quadrature_elbo_can_be_trusted(app_test):
    at = app_test(PAGE, {"elbo_model": "digits", "elbo_digit": "3"})
    run = at.session_state[state.ELBO_PHI_STATE]
    residual = abs(run["residual"][-1])
    assert residual < 0.01  # refined once: 0.08 nats at the live resolution
    assert any("grids under q disagree" in i.value for i in at.info) == (residual > 1e-3)
