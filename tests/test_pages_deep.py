"""AppTest of the deep-LVM page: renders, the model controls, a short training run, upload of good and bad files."""


import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from lvm_core.models import MLPLVM
from lvm_core.training import save_lvm
from tests.conftest import APPTEST_TIMEOUT, ROOT, chart, checked
from ui import state

PAGE = "views/deep_lvm.py"


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
