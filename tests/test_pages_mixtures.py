"""AppTest of the shallow-mixtures page: every control works and changes what it should, bad files keep the data."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from lvm_core import gmm
from ui import state

PAGE = "views/mixtures.py"


@pytest.fixture
def page(app_test):
    at = app_test(PAGE)
    assert not at.exception, at.exception
    return at


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace_types(at) -> set[str]:
    return {t.get("type", "scatter") for spec in chart_specs(at) for t in spec["data"]}


def test_page_renders_and_shares_data_and_fit(page):
    at = page
    assert not at.error
    assert metric(at, "EM iteration") == "0"
    X = at.session_state[state.DATASET]
    assert X.shape == (500, 2)
    lvm = at.session_state[state.FITTED_MIXTURE]
    assert type(lvm).__name__ == "GaussianMixtureLVM" and lvm.latent_dim == 3
    assert len(at.get("plotly_chart")) >= 4 and len(at.latex) >= 3


def test_step_reset_and_run_to_convergence(page):
    at = page
    before = float(metric(at, "mean log p(x)").split()[0])
    at.button(key="mx_step").click().run()
    assert metric(at, "EM iteration") == "1" and not at.exception
    assert float(metric(at, "mean log p(x)").split()[0]) >= before - 1e-9  # EM never lowers the likelihood
    at.button(key="mx_step").click().run()
    assert metric(at, "EM iteration") == "2"
    at.button(key="mx_reset").click().run()
    assert metric(at, "EM iteration") == "0"
    at.button(key="mx_converge").click().run()
    assert metric(at, "status") == "converged" and int(metric(at, "EM iteration")) >= 1
    at.slider(key="mx_iter").set_value(0).run()  # scrubbing back shows the initialisation again
    assert metric(at, "EM iteration") == "0"


def test_play_advances_and_pause_keeps_the_iteration_reached(page):
    at = page
    at.selectbox(key="mx_preset").set_value("overlapping").run()
    at.selectbox(key="mx_init").set_value("random").run()  # random responsibilities: EM needs many iterations
    at.button(key="mx_play").click().run()  # the playing fragment draws one EM iteration per tick
    assert at.session_state["mx_playing"] is True and not at.exception
    assert metric(at, "EM iteration") == "1" and metric(at, "status") == "playing"
    at.button(key="mx_play").click().run()
    assert at.session_state["mx_playing"] is False and not at.exception
    assert metric(at, "EM iteration") == "1" and at.session_state["mx_iter"] == 1


def test_play_stops_by_itself_at_convergence(page):
    at = page  # k-means starts on well-separated blobs converge after one iteration
    at.button(key="mx_play").click().run()
    assert at.session_state["mx_playing"] is False and metric(at, "status") == "converged" and not at.exception


def test_fit_controls_change_the_fit(page):
    at = page
    at.slider(key="mx_K").set_value(5).run()
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 5
    at.selectbox(key="mx_cov").set_value("spherical").run()
    assert at.session_state[state.MIXTURE_FIT]["trace"].covariance_type == "spherical"
    means0 = at.session_state[state.MIXTURE_FIT]["trace"].params[0].means
    at.selectbox(key="mx_init").set_value("random_from_data").run()
    at.slider(key="mx_seed").set_value(7).run()
    means1 = at.session_state[state.MIXTURE_FIT]["trace"].params[0].means
    assert not np.allclose(means0, means1) and not at.exception
    # iteration 0 of a one-point start is a spike per component: the page says why log p(x) is near -1e6
    assert any("a spike" in c.value for c in at.caption)
    at.button(key="mx_step").click().run()
    assert not any("a spike" in c.value for c in at.caption)


def test_data_controls_change_the_data(page):
    at = page
    X0 = at.session_state[state.DATASET]
    at.selectbox(key="mx_preset").set_value("two_moons").run()
    X1 = at.session_state[state.DATASET]
    assert not np.array_equal(X0, X1)
    at.slider(key="mx_n").set_value(200).run()
    assert at.session_state[state.DATASET].shape == (200, 2)
    X2 = at.session_state[state.DATASET]
    at.slider(key="mx_noise").set_value(2.0).run()
    X3 = at.session_state[state.DATASET]
    assert X3.var(0).sum() > X2.var(0).sum()
    at.slider(key="mx_data_seed").set_value(5).run()
    assert not np.array_equal(at.session_state[state.DATASET], X3) and not at.exception


def test_bad_csv_shows_an_error_and_keeps_the_data_and_a_good_one_replaces_it(page):
    at = page
    X0 = at.session_state[state.DATASET].copy()
    at.file_uploader(key="mx_upload").upload("bad.csv", b"x\n1\n2\n3\n", "text/csv")
    at.run()
    assert any("Only one numeric column" in e.value for e in at.error) and not at.exception
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    at.file_uploader(key="mx_upload").upload("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00IHDR", "text/csv")
    at.run()
    assert any("not a text CSV" in e.value for e in at.error)
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    raw = b"a,b\n0,0\n1,1\nnan,2\n3,0\n0,4\n2,2\n"
    at.file_uploader(key="mx_upload").upload("mine.csv", raw, "text/csv")
    at.run()
    assert not at.error or all("Could not use" not in e.value for e in at.error)
    assert at.session_state[state.DATASET].shape == (5, 2)
    assert any("Dropped 1 of 6 rows" in i.value for i in at.info)
    # K = 3 on 5 points works; K = 6 cannot: an explanation, not a traceback
    at.slider(key="mx_K").set_value(6).run()
    assert any("Reduce K" in e.value for e in at.error) and not at.exception
    at.slider(key="mx_K").set_value(2).run()
    assert not at.error and at.session_state[state.FITTED_MIXTURE].latent_dim == 2
    at.button(key="mx_back_to_preset").click().run()
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)


def test_download_serves_the_current_data_after_an_upload(downloads, page):  # capture first, then run
    at = page
    button = next(b for b in at.get("download_button") if b.key == "mx_download")
    preset = pd.read_csv(io.BytesIO(downloads(button)))
    np.testing.assert_allclose(preset.to_numpy(), at.session_state[state.DATASET], rtol=1e-12)
    at.file_uploader(key="mx_upload").upload("mine.csv", b"a,b\n0,0\n1,1\n3,0\n0,4\n2,2\n", "text/csv")
    at.run()
    button = next(b for b in at.get("download_button") if b.key == "mx_download")
    mine = pd.read_csv(io.BytesIO(downloads(button)))
    np.testing.assert_array_equal(mine.to_numpy(), [[0, 0], [1, 1], [3, 0], [0, 4], [2, 2]])


def test_degenerate_data_get_an_explanation_and_the_data_stay(page):
    at = page
    X0 = at.session_state[state.DATASET].copy()
    at.file_uploader(key="mx_upload").upload("same.csv", b"a,b\n1,2\n1,2\n1,2\n", "text/csv")
    at.run()
    assert any("identical" in e.value for e in at.error) and not at.exception
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    # 6 rows but only 2 distinct points: K = 3 cannot be fitted, and the page says why
    at.file_uploader(key="mx_upload").upload("two.csv", b"a,b\n0,0\n0,0\n0,0\n5,5\n5,5\n5,5\n", "text/csv")
    at.run()
    assert at.session_state[state.DATASET].shape == (6, 2)
    assert any("only 2 distinct points" in e.value for e in at.error) and not at.exception
    at.slider(key="mx_K").set_value(2).run()
    assert not at.error and not at.exception and at.session_state[state.FITTED_MIXTURE].latent_dim == 2


def test_an_em_failure_while_playing_is_explained_not_a_traceback(page, monkeypatch):
    at = page
    at.selectbox(key="mx_preset").set_value("overlapping").run()
    at.selectbox(key="mx_init").set_value("random").run()

    def collapse(*args, **kwargs):
        raise gmm.MixtureFitError("The fit failed: a component collapsed onto too few points. Reduce K.")

    monkeypatch.setattr(gmm, "em_extend", collapse)
    at.button(key="mx_play").click().run()
    assert not at.exception
    assert any("collapsed" in e.value for e in at.error)


def test_views_and_density_mode_change_the_chart(page):
    at = page
    assert "contour" in trace_types(at)
    at.segmented_control(key="mx_density").set_value("heatmap").run()
    assert "heatmap" in {t.get("type") for t in chart_specs(at)[0]["data"]}
    at.pills(key="mx_show").set_value(["means"]).run()
    first = chart_specs(at)[0]["data"]
    assert {t.get("type", "scatter") for t in first} == {"scatter"}  # no density, no ellipses
    assert not any(t.get("name", "").startswith("ellipses") for t in first) and not at.exception


def test_typed_point_changes_the_decomposition(page):
    at = page
    before = [x.value for x in at.latex]
    at.number_input(key="mx_px").set_value(-4.0).run()
    at.number_input(key="mx_py").set_value(-2.0).run()
    after = [x.value for x in at.latex]
    assert before != after and any("log p(x)" in v for v in after) and not at.exception


def test_generative_samples_restarts_and_model_selection(page):
    at = page
    at.slider(key="mx_n").set_value(150).run()  # fewer points: restarts and K = 1 ... 10 stay quick
    at.slider(key="mx_gen_n").set_value(50).run()
    at.toggle(key="mx_gen_animate").set_value(True).run()
    assert not at.exception and any("Draw 1" in c.value for c in at.caption)
    at.toggle(key="mx_gen_animate").set_value(False).run()
    at.slider(key="mx_R").set_value(4).run()
    at.toggle(key="mx_restarts_on").set_value(True).run()
    assert any("distinct optima in 4 restarts" in c.value for c in at.caption) and not at.exception
    at.toggle(key="mx_select_on").set_value(True).run()
    assert any("held-out points" in c.value for c in at.caption) and not at.exception


def test_the_url_restores_the_view(app_test):
    at = app_test(
        PAGE, query_params={"mx_K": "4", "mx_iter": "3", "mx_preset": "Two moons", "mx_cov": "diagonal (axis-aligned)"}
    )
    assert not at.exception
    assert metric(at, "EM iteration") == "3"
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 4
    assert at.session_state[state.MIXTURE_FIT]["trace"].covariance_type == "diag"
    assert at.session_state[state.DATASET_META]["label"] == "Two moons"


def test_nonsense_in_the_url_is_dropped(app_test):
    at = app_test(PAGE, query_params={"mx_K": "inf", "mx_iter": "1e400", "mx_preset": "nope", "mx_px": "nan"})
    assert not at.exception and not at.error
    assert metric(at, "EM iteration") == "0"


def test_the_view_survives_a_page_switch(page):
    at = page
    at.slider(key="mx_K").set_value(4).run()
    at.button(key="mx_step").click().run()
    at.switch_page("views/home.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert metric(at, "EM iteration") == "1" and at.session_state[state.FITTED_MIXTURE].latent_dim == 4
