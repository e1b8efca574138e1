"""AppTest of the deep-LVM page: renders, the model controls, a short training run, upload of good and bad files,
the digits view (manifold, samples, latent space, exact log p(x) against the bounds, training), and the deep LVM
beside a 10-component GMM."""

import io
import re

import numpy as np
import pandas as pd
import torch
from streamlit.testing.v1 import AppTest

from lvm_core.datasets import load_binarized_digits
from lvm_core.models import MLPLVM, BernoulliMLPLVM, independent_pixel_log_likelihood
from lvm_core.pretrained import load_pretrained
from lvm_core.training import save_lvm
from tests.conftest import APPTEST_TIMEOUT, ROOT, assert_clean, chart, checked, plotly_array
from ui import state

PAGE = "views/deep_lvm.py"
DIGITS = "Handwritten digits"  # the data choice's label, as the URL holds it (?dl_data=Handwritten+digits)


def test_page_renders_the_notes_model_with_equations_and_the_mixture_view(app_test):
    at = app_test(PAGE)
    assert len(at.latex) >= 4  # the marginal, the notes' model, its live numbers, p(z) of the chosen component
    assert any("sigmoid" in t.value and "4.62" in t.value for t in at.latex)  # live numbers of theta (seed 0)
    assert len(at.get("plotly_chart")) >= 2  # the infinite mixture and p(z)
    assert {"dl_A1", "dl_B2", "dl_c1", "dl_d2", "dl_seed_noise", "dl_z1"} <= {s.key for s in at.slider} | {
        s.key for s in at.select_slider}


def test_view_controls_switch_model_and_latent_dimension_without_errors(app_test):
    at = app_test(PAGE, query_params={"dl_seed_noise": "0.2"})
    assert at.select_slider(key="dl_seed_noise").value == 0.2
    at.segmented_control(key="dl_latent_dim").set_value(2).run()
    z2 = at.slider(key="dl_z2")  # the second latent coordinate's slider (the lookup raises if it is missing)
    assert z2.min < 0 < z2.max and z2.min <= z2.value <= z2.max
    at.segmented_control(key="dl_source").set_value("mlp").run()


def test_new_random_theta_redraws_the_sliders(app_test):
    at = app_test(PAGE)
    before = at.slider(key="dl_A1").value
    at.segmented_control(key="dl_source").set_value("seed").run()
    at.button(key="dl_new_theta").click().run()
    assert at.slider(key="dl_theta_seed").value == 1
    assert at.slider(key="dl_A1").value != before


def test_short_training_run_stores_the_model_for_the_other_pages(app_test):
    at = app_test(PAGE)
    at.slider(key="dl_steps").set_value(100).run()
    at.button(key="dl_train").click().run()
    assert any("Trained 100 steps" in s.value for s in at.success)
    trained = at.session_state[state.TRAINED_LVM]
    assert isinstance(trained, state.TrainedLVM)
    assert isinstance(trained.model, MLPLVM) and trained.model.latent_dim == 2
    assert trained.encoder is not None and trained.history.steps_done == 100
    assert trained.data.train.shape[1] == 2 and abs(trained.data.train.mean()) < 0.2  # standardised
    assert len(at.session_state[state.TRAINING_RUNS]) == 1
    labels = [m.label for m in at.metric]
    assert any("exact held-out" in label for label in labels) and any("GMM" in label for label in labels)
    assert len(at.get("plotly_chart")) >= 6  # mixture, p(z), curves, density, samples, latent space
    # the trained model is now a choice in the view
    at.segmented_control(key="dl_source").set_value("trained").run()


def test_two_runs_overlay_on_one_chart_each_labelled_with_its_settings(app_test):
    at = app_test(PAGE)
    at.slider(key="dl_steps").set_value(100).run()
    at.button(key="dl_train").click().run()
    at.select_slider(key="dl_lr").set_value(3e-3).run()
    at.button(key="dl_train").click().run()
    runs = at.session_state[state.TRAINING_RUNS]
    assert len(runs) == 2 and runs[0]["label"] != runs[1]["label"]
    assert "lr 0.01" in runs[0]["label"] and "lr 0.003" in runs[1]["label"] and "seed 0" in runs[1]["label"]
    names = {t.get("name", "") for t in chart(at, "dl_runs_chart")["data"]}
    assert all(any(run["label"] in name for name in names) for run in runs), names


class _Upload:
    """what Streamlit's file uploader returns, enough for the page"""

    def __init__(self, name, data):
        self.name, self.file_id, self._data = name, f"id-{name}-{len(data)}", data

    def getvalue(self):
        return self._data


def test_uploading_a_wrong_file_explains_and_keeps_the_model(monkeypatch):
    import streamlit as st

    files = {"now": None}
    original = st.delta_generator.DeltaGenerator.file_uploader

    def fake(self, label, *args, key=None, **kwargs):
        if key == "dl_model_upload":
            return files["now"]
        return original(self, label, *args, key=key, **kwargs)

    monkeypatch.setattr(st.delta_generator.DeltaGenerator, "file_uploader", fake)
    at = checked(AppTest.from_file(str(ROOT / "app.py"), default_timeout=APPTEST_TIMEOUT))
    at.run()
    at.switch_page(PAGE).run()
    with at.expecting_errors():  # a bad file is refused with a message
        files["now"] = _Upload("notes.pt", b"this is not a model")
        at.run()
    assert any("Could not load 'notes.pt'" in e.value for e in at.error)
    assert state.TRAINED_LVM not in at.session_state
    with at.expecting_errors():
        files["now"] = _Upload("wide.pt", save_lvm(MLPLVM(latent_dim=3, hidden=8, seed=0), None, {}))
        at.run()
    assert any("latent dimension is 3" in e.value for e in at.error)
    assert state.TRAINED_LVM not in at.session_state
    model = MLPLVM(latent_dim=2, hidden=8, seed=3)
    files["now"] = _Upload("good.pt", save_lvm(model, None, {"objective": "elbo"}))
    at.run()
    loaded = at.session_state[state.TRAINED_LVM].model
    assert torch.equal(loaded.net[0].weight, model.net[0].weight)
    assert np.isfinite(float(at.metric[0].value.split()[0]))


# ------------------------------------------------------------------------------------------------ handwritten digits
def _heatmap_z(trace: dict) -> np.ndarray:
    """a heatmap's z from a chart's JSON: a nested list, or a typed array with its shape ("134, 134")"""
    z = trace["z"]
    if isinstance(z, dict):
        return plotly_array(z).astype(float).reshape([int(n) for n in str(z["shape"]).split(",")])
    return np.array(z, dtype=float)


def test_digits_from_the_url_show_the_shipped_models_manifold_samples_and_latent_space(app_test):
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    assert_clean(at)
    assert at.segmented_control(key="dl_data").value == "digits"
    manifold = chart(at, "dl_dg_manifold")
    heatmap = manifold["data"][0]
    tiled = _heatmap_z(heatmap)
    assert tiled.shape == (15 * 9 - 1, 15 * 9 - 1)  # 15 x 15 images of 8 x 8 with 1-pixel gaps
    ink = tiled[~np.isnan(tiled)]
    assert 0 <= ink.min() < 0.05 and 0.95 < ink.max() <= 1  # a trained decoder: clear ink and clear paper
    # the manifold's first tile row (the top, z₂ = 2.5, z₁ = -2.5) is the shipped decoder's mean image at that z
    model, _, _ = load_pretrained("digits")
    with torch.no_grad():
        top_left = model.mean(torch.tensor([[-2.5, 2.5]])).reshape(8, 8).numpy()
    np.testing.assert_allclose(tiled[:8, :8], top_left, atol=1e-6)
    assert manifold["layout"]["xaxis"]["title"]["text"] == "z₁"
    latent = chart(at, "dl_dg_latent")
    assert sorted(t["name"] for t in latent["data"]) == [str(d) for d in range(10)]  # one legend entry per digit
    ids = [c.proto.id for c in at.get("plotly_chart")]
    assert all(any(key in i for i in ids) for key in ("dl_dg_samples", "dl_dg_sample_means", "dl_dg_data"))
    assert "The model, seen" not in [h.value for h in at.header]  # the 2-D view is not drawn


def test_digits_table_has_exact_above_iwae_above_elbo_on_average_and_the_pixel_baseline(app_test, downloads):
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    table = at.dataframe[0].value
    assert len(table) == 60  # the first 60 held-out images by default
    means = table.mean(numeric_only=True)
    # IWAE-64's mean lies below the exact log p(x) by Jensen; its spread over 60 images is far below the 0.7-nat gap
    assert means["exact log p(x)"] > means["IWAE-64"] > means["ELBO"]
    np.testing.assert_allclose(table["gap (exact - ELBO)"], table["exact log p(x)"] - table["ELBO"])
    X_train, X_test, _, y_test = load_binarized_digits(seed=0)
    np.testing.assert_allclose(table["independent pixels"],
                               independent_pixel_log_likelihood(X_train, X_test[:60]).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(table["digit"], y_test[:60])
    assert -19 < means["exact log p(x)"] < -15 and means["exact log p(x)"] > means["independent pixels"] + 5
    metrics = {m.label: float(m.value.split()[0]) for m in at.metric}
    assert metrics["Exact log p(x)"] == round(means["exact log p(x)"], 2)
    story = next(m.value for m in at.markdown if "encoder's gap" in m.value)
    assert f"**{means['gap (exact - ELBO)']:.2f} nats per image**" in story
    csv = pd.read_csv(io.BytesIO(downloads(next(b for b in at.get("download_button") if b.key == "dl_dg_csv"))))
    assert len(csv) == 60 and list(csv.columns) == list(table.columns)
    np.testing.assert_allclose(csv["exact log p(x)"], table["exact log p(x)"], rtol=1e-6)


def test_data_choice_round_trips_through_the_url(app_test):
    # session a picks the digits and k by hand; session b opens the URL those controls write (the browser writes it,
    # AppTest does not, so the test spells it out: the choice's label) and shows the same view and numbers
    a = app_test(PAGE)
    assert a.segmented_control(key="dl_data").value == "points"
    assert any("dl_mixture_chart" in (c.proto.id or "") for c in a.get("plotly_chart"))
    a.segmented_control(key="dl_data").set_value("digits").run()
    a.select_slider(key="dl_dg_k").set_value(16).run()
    b = app_test(PAGE, query_params={"dl_data": DIGITS, "dl_dg_k": "16"})
    assert b.segmented_control(key="dl_data").value == "digits" and b.select_slider(key="dl_dg_k").value == 16
    pd.testing.assert_frame_equal(a.dataframe[0].value, b.dataframe[0].value)
    assert "IWAE-16" in b.dataframe[0].value.columns
    assert any("dl_dg_manifold" in (c.proto.id or "") for c in b.get("plotly_chart"))
    b.segmented_control(key="dl_data").set_value("points").run()  # and back to the 2-D view
    assert any("dl_mixture_chart" in (c.proto.id or "") for c in b.get("plotly_chart"))


def test_a_short_digits_run_replaces_the_shipped_model_and_back(app_test):
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    shipped = chart(at, "dl_dg_manifold")["data"][0]["z"]
    at.slider(key="dl_dg_steps").set_value(50).run()
    at.button(key="dl_dg_train").click().run()
    trained = at.session_state[state.TRAINED_LVM]
    assert trained.images and isinstance(trained.model, BernoulliMLPLVM) and trained.history.steps_done == 50
    assert trained.encoder is not None and trained.data.labels_test is not None
    assert any("Trained 50 steps" in s.value for s in at.success)
    assert chart(at, "dl_dg_manifold")["data"][0]["z"] != shipped  # the views show the new model
    names = [t.get("name", "") for t in chart(at, "dl_dg_curves")["data"]]
    assert any("bound" in n for n in names) and any("exact held-out" in n for n in names)
    # the 2-D view leaves a digits model alone: no "trained model" among its sources, and it draws clean
    at.segmented_control(key="dl_data").set_value("points").run()
    assert "trained" not in at.segmented_control(key="dl_source").options
    at.segmented_control(key="dl_data").set_value("digits").run()
    at.button(key="dl_dg_shipped").click().run()
    assert state.TRAINED_LVM not in at.session_state
    assert chart(at, "dl_dg_manifold")["data"][0]["z"] == shipped


# ------------------------------------------------------------------------------ the infinite and a finite mixture
def test_trained_model_is_drawn_beside_the_gmm_with_both_numbers_and_the_winner_computed(app_test):
    at = app_test(PAGE)
    at.slider(key="dl_steps").set_value(100).run()
    at.button(key="dl_train").click().run()
    metrics = {m.label: float(m.value.split()[0]) for m in at.metric}
    deep, gmm10 = metrics["Deep LVM: exact held-out log p(x)"], metrics["GMM (10 components): held-out"]
    pair = chart(at, "dl_density_chart")
    titles = [a["text"] for a in pair["layout"]["annotations"]]
    assert titles[0].startswith("Deep LVM") and titles[1].startswith("GMM (10 components)")
    numbers = [float(re.search(r"(-?\d+\.\d+) nats", t).group(1)) for t in titles]
    np.testing.assert_allclose(numbers, [deep, gmm10], atol=0.006)  # 2 decimals against the metrics' 3
    assert sum(t["type"] == "heatmap" for t in pair["data"]) == 2
    story = next(m.value for m in at.markdown if "wins by" in m.value)
    assert story.startswith("The deep LVM" if deep > gmm10 else "The Gaussian mixture with 10 components")
    assert abs(float(re.search(r"wins by (\d+\.\d+)", story).group(1)) - abs(deep - gmm10)) < 0.006


def test_scoring_all_held_out_images_extends_the_table_and_keeps_the_first_rows(app_test):
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    first = at.dataframe[0].value
    at.toggle(key="dl_dg_all").set_value(True).run()
    every = at.dataframe[0].value
    assert len(every) == 360 and set(every["exact by"]) <= {"shared grid", "adaptive grid"}
    # the exact column does not depend on how many images are scored; the bounds' draws do (one batch of noise)
    np.testing.assert_allclose(every["exact log p(x)"][:60], first["exact log p(x)"], rtol=1e-6)
    means = every.mean(numeric_only=True)
    assert means["exact log p(x)"] > means["IWAE-64"] > means["ELBO"]


def test_a_failure_in_the_digits_manifold_is_a_message_and_the_rest_of_the_view_draws(app_test, monkeypatch):
    from lvm_core.plots import deep

    def broken(*args, **kwargs):
        raise RuntimeError("injected into manifold_figure")

    monkeypatch.setattr(deep, "manifold_figure", broken)
    at = app_test(PAGE, query_params={"dl_data": DIGITS}, expect_errors=True)
    assert any("injected into manifold_figure" in e.value for e in at.error)
    assert any("digits_manifold" in s for s in at.session_state[state.SECTION_ERRORS])
    assert len(at.dataframe) == 1 and not at.exception  # the scores below still drew


def test_an_interrupted_digits_run_is_kept_as_the_model_with_a_stopped_message(app_test):
    from lvm_core.training import train_lvm

    X_train, X_test, _, y_test = load_binarized_digits(seed=0)
    model = BernoulliMLPLVM(seed=5)
    history = train_lvm(model, X_train, steps=20, seed=5, callback=lambda h: h.steps_done == 10)  # stops at 10
    data = state.TrainedData(train=X_train, test=X_test, mean=np.zeros(64), std=np.ones(64), labels_test=y_test)
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    at.session_state["dl_dg_pending"] = {"model": model, "history": history, "data": data,
                                         "config": {"objective": "iwae", "k": 8, "lr": 0.01, "steps": 20, "seed": 5}}
    at.run()
    assert any("Stopped after 10 steps" in i.value for i in at.info)
    trained = at.session_state[state.TRAINED_LVM]
    assert trained.model is model and trained.images and "dl_dg_pending" not in at.session_state
    assert any("seed 5" in c.value for c in at.caption)  # the view says it shows the model trained here


def test_hostile_values_in_the_digits_views_url_parameters_give_a_clean_page(app_test):
    at = app_test(PAGE, query_params={"dl_data": DIGITS})
    keys = sorted({w.key for kind in ("slider", "select_slider", "selectbox", "toggle") for w in at.get(kind)
                   if (w.key or "").startswith("dl_dg_")})
    assert {"dl_dg_k", "dl_dg_all", "dl_dg_steps", "dl_dg_lr", "dl_dg_objective"} <= set(keys)
    for bad in ("inf", "nan", "9" * 30, "<script>alert(1)</script>"):
        again = app_test(PAGE, query_params={"dl_data": DIGITS} | {key: bad for key in keys})
        assert again.select_slider(key="dl_dg_k").value == 64 and again.slider(key="dl_dg_steps").value == 1000
        assert len(again.dataframe[0].value) == 60


def test_the_url_may_name_the_digits_by_their_short_name(app_test):
    at = app_test(PAGE, query_params={"dl_data": "digits"})
    assert at.segmented_control(key="dl_data").value == "digits"


def test_reset_to_defaults_keeps_the_data_and_returns_the_view_to_its_defaults(app_test):
    at = app_test(PAGE, query_params={"dl_data": "digits"})
    at.segmented_control(key="dl_data").set_value("points").run()
    at.slider(key="dl_n").set_value(1000).run()  # the data's size: the user's data, kept by the reset
    at.slider(key="dl_steps").set_value(500).run()
    at.button(key="dl_reset_defaults").click().run()
    assert at.slider(key="dl_n").value == 1000
    assert at.slider(key="dl_steps").value == 6000 and at.selectbox(key="dl_objective").value == "iwae"
