"""AppTest of the "Estimating p(x)" page: controls change what they should, presets, CSV, URL restore, extremes."""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lvm_core import estimators as est
from lvm_core import experiments as ex
from lvm_core.estimators import exact_log_marginal
from lvm_core.models import SeedLVM
from tests.conftest import chart, plotly_array
from ui import state
from ui.selection import ALWAYS_AVAILABLE, MODEL_LABELS

PAGE = "views/estimating.py"
ESTIMATORS = ["naive MC (uniform box)", "prior sampling", "importance sampling"]


@pytest.fixture
def page(app_test):
    at = app_test(PAGE)
    return at


def table(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe).set_index("estimator")


def exact(at) -> float:
    return float(next(m.value for m in at.metric if m.label == "exact log p(x)").split()[0])


def changed(a: pd.DataFrame, b: pd.DataFrame) -> set[str]:
    """the estimators whose row differs between two tables"""
    return {name for name in a.index if not np.allclose(a.loc[name].to_numpy(float), b.loc[name].to_numpy(float),
                                                        rtol=1e-12, atol=0, equal_nan=True)}


def test_page_renders_exact_value_table_equations_and_charts(page):
    at = page
    reference = exact_log_marginal(SeedLVM(1, seed=0), torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    assert exact(at) == pytest.approx(float(reference[0]), abs=1e-4)  # the seed model at x = (0.5, 0.5)
    t = table(at)
    assert list(t.index) == ESTIMATORS
    assert (t["relative RMSE"] < 0.1).all() and (t["Kish ESS (mean)"] <= 1000).all()
    assert len(at.get("plotly_chart")) >= 5 and len(at.latex) >= 4
    assert any("Common random numbers" in c.value for c in at.caption)
    assert isinstance(at.session_state[state.SELECTED_X], torch.Tensor)


def test_each_control_changes_what_it_should(page):
    at = page
    t0 = table(at)
    at.slider(key="est_qloc_0").set_value(1.5).run()  # q moves: only importance sampling changes (CRN + caches)
    t1 = table(at)
    assert changed(t0, t1) == {"importance sampling"}
    at.slider(key="est_box").set_value(8.0).run()  # the box: only naive MC
    t2 = table(at)
    assert changed(t1, t2) == {"naive MC (uniform box)"}
    at.segmented_control(key="est_qfamily").set_value("student_t").run()
    t3 = table(at)
    assert changed(t2, t3) == {"importance sampling"}
    assert at.slider(key="est_qdf").value == 3
    at.select_slider(key="est_k").set_value(100).run()  # k: every estimator, and the ESS is out of 100
    t4 = table(at)
    assert changed(t3, t4) == set(ESTIMATORS) and (t4["Kish ESS (mean)"] <= 100 + 1e-9).all()
    at.slider(key="est_R").set_value(50).run()
    assert any(s.value == "50 estimates of each estimator" for s in at.subheader)
    at.session_state["seed"] = 3  # the sidebar's global seed: new draws for every estimator
    at.run()
    assert changed(t4, table(at)) == set(ESTIMATORS)
    before = exact(at)
    at.number_input(key="est_x1").set_value(1.2).run()  # the point: the exact value changes
    assert exact(at) != before
    at.slider(key="est_noise").set_value(0.3).run()  # the model: the exact value changes again
    assert exact(at) != pytest.approx(before)
    at.segmented_control(key="est_cost").set_value("seconds").run()
    assert "wall time" in chart(at, "est_conv")["layout"]["xaxis"]["title"]["text"]
    at.selectbox(key="est_model").set_value("linear").run()
    at.slider(key="est_lin_d").set_value(5).run()
    assert sum(1 for s in at.slider if s.key and s.key.startswith("est_qloc_")) == 5
    assert any("axes 1 and 2 only" in c.value for c in at.caption)  # the latent picture of a 5-D latent


def test_presets_load_their_location_and_scale(page):
    from ui.selection import seed_model

    at = page
    mean, std, _ = ex.posterior_moments(seed_model(1, 1.0), at.session_state[state.SELECTED_X])
    for preset in ex.PRESETS:
        at.button(key=f"est_preset_{preset.replace(' ', '_')}").click().run()
        loc, scale = ex.preset_proposal(preset, mean, std)
        assert at.slider(key="est_qloc_0").value == pytest.approx(round(loc[0], 3), abs=1e-9), preset
        assert at.slider(key="est_qlsc_0").value == pytest.approx(round(math.log10(scale[0]), 2), abs=1e-9), preset


def test_csv_download_holds_r_rows_per_estimator(app_test, downloads):
    at = app_test(PAGE, {"est_R": "30", "est_k": "200"})
    df = pd.read_csv(io.BytesIO(downloads(at.get("download_button")[0])))
    assert df.groupby("estimator").size().to_dict() == {"naive": 30, "prior": 30, "importance": 30}
    assert (df["k"] == 200).all()
    t = table(at)
    for name, label in zip(["naive", "prior", "importance"], ESTIMATORS, strict=True):
        assert df[df.estimator == name]["ess"].mean() == pytest.approx(t.loc[label, "Kish ESS (mean)"], rel=1e-9)


def test_url_query_params_restore_the_same_numbers(app_test):
    # session a sets the controls by hand; session b opens the URL those controls write (in a browser the frontend
    # writes it; AppTest does not, so the test spells it out) and must show the same numbers
    a = app_test(PAGE)
    values = {"est_k": 500, "est_R": 40, "est_qloc_0": 0.8, "est_qlsc_0": -0.3, "est_box": 6.0, "est_x1": 0.9}
    a.select_slider(key="est_k").set_value(500).run()
    for key in ("est_R", "est_qloc_0", "est_qlsc_0", "est_box"):
        a.slider(key=key).set_value(values[key]).run()
    a.number_input(key="est_x1").set_value(0.9).run()
    b = app_test(PAGE, {key: str(v) for key, v in values.items()})
    assert not b.exception
    assert b.select_slider(key="est_k").value == 500 and b.number_input(key="est_x1").value == 0.9
    for key in ("est_R", "est_qloc_0", "est_qlsc_0", "est_box"):
        assert b.slider(key=key).value == a.slider(key=key).value == values[key]
    assert exact(b) == exact(a)
    pd.testing.assert_frame_equal(table(a), table(b))
    c = app_test(PAGE)  # and the defaults differ, so the comparison above could fail
    assert not table(c).equals(table(b))


def test_extreme_settings_stay_finite_and_are_explained(app_test):
    # x far outside the data, k = 1, and q a hundred thousand times too narrow
    at = app_test(PAGE, {"est_x1": "40", "est_x2": "-30", "est_k": "1", "est_qlsc_0": "-5"})
    assert math.isfinite(exact(at))
    assert np.isfinite(table(at)["bias of log p̂ (nats)"]).all()
    assert any("ESS is 1 by definition" in c.value for c in at.caption)
    # a q a hundred times too wide with few samples: the weights degenerate and the page says so
    at.select_slider(key="est_k").set_value(10).run()
    at.slider(key="est_qloc_0").set_value(0.0).run()
    at.slider(key="est_qlsc_0").set_value(2.0).run()
    assert any("degenerated" in w.value for w in at.warning)
    # and a thousand times too wide (the posterior's sd is ~1): finite numbers, still explained
    at.slider(key="est_qlsc_0").set_value(3.0).run()
    t = table(at)
    assert t["Pareto k̂ (median)"].isna().all()  # k = 10 draws are too few to fit a tail: left blank, not invented
    assert np.isfinite(t.drop(columns="Pareto k̂ (median)").to_numpy(float)).all()
    assert any("degenerated" in w.value for w in at.warning)


def test_models_from_the_other_pages_are_offered_once_they_exist(app_test):
    from lvm_core.models import MLPLVM, GaussianMixtureLVM

    at = app_test(PAGE)
    always = [MODEL_LABELS[k] for k in ALWAYS_AVAILABLE]
    assert at.selectbox(key="est_model").options == always
    at.session_state[state.FITTED_MIXTURE] = GaussianMixtureLVM(
        [0.3, 0.7], [[0.0, 0.0], [2.0, 1.0]], np.stack([np.eye(2) * 0.5, np.eye(2) * 0.3]))
    rng = np.random.default_rng(0)
    at.session_state[state.TRAINED_LVM] = state.TrainedLVM(
        model=MLPLVM(latent_dim=2, hidden=16, seed=0), encoder=None, config={},
        data=state.TrainedData(train=rng.normal(size=(50, 2)), test=rng.normal(size=(9, 2)), mean=np.zeros(2),
                               std=np.ones(2)))
    at.run()
    assert at.selectbox(key="est_model").options == always + [MODEL_LABELS["deep"], MODEL_LABELS["mixture"]]
    at.selectbox(key="est_model").set_value("mixture").run()
    t = table(at)
    assert t.loc["importance sampling", "Kish ESS (mean)"] > 0
    at.button(key="est_preset_fitted").click().run()  # q = the exact posterior over the components: zero variance
    assert at.slider(key="est_qmix").value == 0.0
    assert table(at).loc["importance sampling", "SD of log p̂ (nats)"] < 1e-9
    at.selectbox(key="est_model").set_value("deep").run()
    assert math.isfinite(exact(at)) and len(table(at)) == 3


def test_dimension_sweep_follows_k_and_naive_error_grows_with_d(app_test):
    at = app_test(PAGE, {"est_k": "200", "est_R": "20", "est_model": "Linear-Gaussian (closed form)"})
    assert not any(c.proto.id and "est_dims" in c.proto.id for c in at.get("plotly_chart"))  # off by default
    at.toggle(key="est_dims_on").set_value(True).run()
    fig = chart(at, "est_dims")
    naive = next(t for t in fig["data"] if t["name"].startswith("naive"))
    rmse = plotly_array(naive["customdata"])  # relative RMSE per d = 1 ... 10
    assert list(plotly_array(naive["x"])) == list(range(1, 11))
    assert rmse[-1] > 3 * rmse[0]  # the curse: a box of volume 8^d misses the posterior ever more (seeded: 5.4x)
    assert "k = 200" in fig["layout"]["yaxis"]["title"]["text"]
    # k moves inside the estimates' fragment: the sweep below follows it (no stale k)
    at.select_slider(key="est_k").set_value(500).run()
    assert "k = 500" in chart(at, "est_dims")["layout"]["yaxis"]["title"]["text"]


# ------------------------------------------------------------------------------------ diagnostics, hard posteriors


def badges(at) -> dict[str, str]:
    """the k-hat line of each importance sampler: {estimator label: its markdown}"""
    return {label: m.value for m in at.markdown for label in ("importance sampling", "prior sampling")
            if m.value.startswith(f"**{label}**")}


def test_khat_badges_kls_and_draws_needed_follow_q(app_test):
    at = app_test(PAGE, {"est_k": "1000", "est_R": "50"})
    line = badges(at)["importance sampling"]
    assert ":green-badge[Pareto k̂" in line and "reliable" in line  # q at the posterior's moments
    assert "KL(p(z|x) ‖ q)" in line and "draws needed e^KL ≈" in line and "KL(q ‖ p(z|x))" in line
    assert table(at)["Pareto k̂ (median)"].notna().all()
    # q ten times too narrow: the weights' tail is heavy, the badge says so and the draws needed explode
    at.button(key="est_preset_too_narrow").click().run()
    line = badges(at)["importance sampling"]
    assert ":red-badge[" in line or ":orange-badge[" in line
    khat = table(at).loc["importance sampling", "Pareto k̂ (median)"]
    assert khat > est.khat_threshold(1000)
    # ten times too wide: light tails, k-hat low again (it is the ESS that suffers)
    at.button(key="est_preset_too_wide").click().run()
    assert table(at).loc["importance sampling", "Pareto k̂ (median)"] < est.khat_threshold(1000)
    fig = chart(at, "est_khat")
    assert fig["layout"]["yaxis"]["title"]["text"].startswith("Pareto k̂")
    assert any(t["name"].startswith("threshold") for t in fig["data"])
    conv = chart(at, "est_conv")
    assert any("draws needed" in t["name"] for t in conv["data"])


def test_draws_needed_matches_the_closed_form_kl(app_test):
    # linear-Gaussian: the posterior is Gaussian, so KL(p(z|x) || q) for the page's q has a closed form
    at = app_test(PAGE, {"est_model": "linear", "est_qloc_0": "0.3", "est_qlsc_0": "-0.2"})
    sel_x = at.session_state[state.SELECTED_X]
    from ui.selection import linear_model

    model = linear_model(2, 0.5)
    posterior = model.closed_form_posterior(sel_x)
    loc = [at.slider(key=f"est_qloc_{i}").value for i in range(2)]
    scale = [10 ** at.slider(key=f"est_qlsc_{i}").value for i in range(2)]
    q = torch.distributions.MultivariateNormal(torch.tensor([loc], dtype=torch.float64),
                                               torch.diag_embed(torch.tensor([scale], dtype=torch.float64) ** 2))
    forward = float(torch.distributions.kl_divergence(posterior, q)[0].detach())
    line = badges(at)["importance sampling"]
    shown = float(line.split("KL(p(z|x) ‖ q) = ")[1].split(" nats")[0])
    assert shown == pytest.approx(forward, rel=2e-3)  # shown to 3 significant digits


@pytest.mark.parametrize("name", ["banana", "funnel", "bimodal"])
def test_hard_posteriors_open_from_the_url_at_their_hard_point(app_test, name):
    from lvm_core.models import HARD_POSTERIORS, hard_posterior

    at = app_test(PAGE, {"est_model": name, "est_k": "500", "est_R": "30"})
    assert at.selectbox(key="est_model").value == name
    assert (at.number_input(key="est_x1").value, at.number_input(key="est_x2").value) == HARD_POSTERIORS[name].x
    model, x = hard_posterior(name)
    assert exact(at) == pytest.approx(float(exact_log_marginal(model, x)[0]), abs=1e-4)
    # the fitted families: a mixture bends around the banana / covers both modes, so it needs fewer draws
    gaussian = badges(at)["importance sampling"]
    at.segmented_control(key="est_qfamily").set_value("mixture").run()
    mixture = badges(at)["importance sampling"]
    needed = lambda line: float(line.split("e^KL ≈ **")[1].split("**")[0])  # noqa: E731
    assert needed(mixture) < needed(gaussian)
    assert at.slider(key="est_qcomp").value == 2
    at.segmented_control(key="est_qfamily").set_value("full").run()
    assert "draws needed" in badges(at)["importance sampling"]


def test_switching_to_a_hard_posterior_moves_x_to_its_hard_point(app_test):
    at = app_test(PAGE)
    at.selectbox(key="est_model").set_value("bimodal").run()
    assert (at.number_input(key="est_x1").value, at.number_input(key="est_x2").value) == (2.0, 0.0)
    at.number_input(key="est_x1").set_value(1.0).run()
    at.button(key="est_hard_x").click().run()
    assert at.number_input(key="est_x1").value == 2.0


def test_digits_gallery_picks_an_image_and_the_estimators_run_on_64_pixels(app_test):
    from ui.selection import digits_model, held_out_digits

    at = app_test(PAGE, {"est_model": "digits", "est_digit": "15", "est_k": "200", "est_R": "20"})
    assert at.number_input(key="est_digit").value == 15
    images, _ = held_out_digits()
    x = torch.tensor(images[15][None])
    assert exact(at) == pytest.approx(float(exact_log_marginal(digits_model(), x)[0]), abs=1e-4)
    assert len(table(at)) == 3 and np.isfinite(table(at)["bias of log p̂ (nats)"]).all()
    gallery = next(c for c in at.get("plotly_chart") if c.proto.id and "est_gallery" in c.proto.id)
    assert "held-out images" in json.loads(gallery.proto.spec)["layout"]["title"]["text"]
    at.number_input(key="est_digit").set_value(100).run()
    assert exact(at) != pytest.approx(float(exact_log_marginal(digits_model(), x)[0]), abs=1e-4)


def test_short_names_in_the_url_open_a_model_and_a_proposal_family(app_test):
    at = app_test(PAGE, {"est_model": "banana", "est_qfamily": "mixture", "est_qcomp": "3", "est_k": "200",
                         "est_R": "20"})
    assert at.selectbox(key="est_model").value == "banana"
    assert at.segmented_control(key="est_qfamily").value == "mixture" and at.slider(key="est_qcomp").value == 3
    # the labels the widgets write into the URL themselves open the same view
    again = app_test(PAGE, {"est_model": "Hard posterior: banana", "est_qfamily": "Mixture", "est_qcomp": "3",
                            "est_k": "200", "est_R": "20"})
    assert again.segmented_control(key="est_qfamily").value == "mixture"
    assert table(again).equals(table(at))


def test_reset_to_defaults_brings_back_the_default_model_point_and_k(app_test):
    at = app_test(PAGE, {"est_model": "banana", "est_k": "200", "est_R": "30"})
    assert at.selectbox(key="est_model").value == "banana"
    at.button(key="est_reset_defaults").click().run()
    assert at.selectbox(key="est_model").value == "seed"
    assert at.select_slider(key="est_k").value == 1000 and at.slider(key="est_R").value == 200
    assert (at.number_input(key="est_x1").value, at.number_input(key="est_x2").value) == (0.5, 0.5)
