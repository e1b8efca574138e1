"""AppTest of the shallow-mixtures page: every control changes what it should, the EM animation holds the whole
trajectory, bad files and bad values keep the data and fit, the URL restores the view. Every run is checked for
exceptions, error messages and failed sections (tests/conftest.py); tests that provoke an error say so."""

import io

import numpy as np
import pandas as pd
import pytest

from lvm_core import gmm
from lvm_core.datasets import make_dataset
from lvm_core.plots import mixtures as figs
from tests.conftest import chart, plotly_array
from ui import state

PAGE = "views/mixtures.py"


@pytest.fixture
def page(app_test):
    return app_test(PAGE)


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def em_chart(at) -> dict:
    return chart(at, "mx_chart_")


def fit(at) -> state.MixtureFit:
    return at.session_state[state.MIXTURE_FIT]


def download(at, downloads, key: str) -> pd.DataFrame:
    button = next(b for b in at.get("download_button") if b.key == key)
    return pd.read_csv(io.BytesIO(downloads(button)))


def test_page_renders_and_shares_data_and_fit_as_dataclasses(page):
    at = page
    X = at.session_state[state.DATASET]
    assert X.shape == (500, 2)
    meta = at.session_state[state.DATASET_META]
    assert isinstance(meta, state.DatasetMeta) and meta.source == "preset" and meta.n == 500
    f = fit(at)
    assert isinstance(f, state.MixtureFit) and (f.n_components, f.init_params) == (3, "random")
    lvm = at.session_state[state.FITTED_MIXTURE]
    assert type(lvm).__name__ == "GaussianMixtureLVM" and lvm.latent_dim == 3
    # the shared model is EM's last iteration
    np.testing.assert_allclose(lvm.log_weights.exp().detach().numpy(), f.trace.mixture().weights_, rtol=1e-6)
    assert metric(at, "EM iterations") == str(f.trace.n_iter)
    assert len(at.get("plotly_chart")) >= 3 and len(at.latex) >= 3


def test_the_animation_holds_the_whole_trajectory_as_plotly_frames(page):
    at = page
    trace = fit(at).trace
    spec = em_chart(at)
    names = [f["name"] for f in spec["frames"]]
    assert names == [str(t) for t in gmm.frame_iterations(trace.n_iter, 60)] and names[-1] == str(trace.n_iter)
    # the log-likelihood marker of each frame is the trajectory's own value, and EM never lowers it
    marker = [plotly_array(f["data"][-1]["y"])[0] for f in spec["frames"]]
    np.testing.assert_allclose(marker, [trace.log_likelihoods[int(n)] for n in names])
    assert np.all(np.diff(marker) >= -1e-9)
    # the last frame colours each point by its final responsibilities
    X = at.session_state[state.DATASET]
    last_colors = spec["frames"][-1]["data"][0]["marker"]["color"]
    assert last_colors == figs.blend_colors(gmm.responsibilities(trace.mixture(), X))
    # plotly's own play button and slider drive it: no server round trip
    layout = spec["layout"]
    assert [b["label"] for b in layout["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause"]
    assert [s["args"][0][0] for s in layout["sliders"][0]["steps"]] == names
    assert layout["updatemenus"][0]["buttons"][0]["args"][1]["frame"]["redraw"] is False  # contours: fast frames


def test_play_speed_sets_the_frame_duration(page):
    at = page
    at.select_slider(key="mx_speed").set_value(30).run()
    play = em_chart(at)["layout"]["updatemenus"][0]["buttons"][0]["args"][1]
    assert play["frame"]["duration"] == pytest.approx(1000 / 30)


def test_fit_controls_change_the_fit(page):
    at = page
    at.slider(key="mx_K").set_value(5).run()
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 5
    at.selectbox(key="mx_cov").set_value("spherical").run()
    assert fit(at).trace.covariance_type == "spherical"
    means0 = fit(at).trace.params[0].means
    at.selectbox(key="mx_init").set_value("random_from_data").run()
    at.slider(key="mx_seed").set_value(7).run()
    assert not np.allclose(means0, fit(at).trace.params[0].means)
    # a one-point start is a spike per component: the page says why log p(x) starts near -1e6
    assert any("a spike" in c.value for c in at.caption)


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
    assert not np.array_equal(at.session_state[state.DATASET], X3)


def test_bad_csv_shows_an_error_and_keeps_the_data_and_a_good_one_replaces_it(page):
    at = page
    X0 = at.session_state[state.DATASET].copy()
    with at.expecting_errors():
        at.file_uploader(key="mx_upload").upload("bad.csv", b"x\n1\n2\n3\n", "text/csv")
        at.run()
    assert any("Only one numeric column" in e.value for e in at.error)
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    with at.expecting_errors():
        at.file_uploader(key="mx_upload").upload("picture.csv", b"\x89PNG\r\n\x1a\n\x00\x00IHDR", "text/csv")
        at.run()
    assert any("not a text CSV" in e.value for e in at.error)
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    raw = b"a,b\n0,0\n1,1\nnan,2\n3,0\n0,4\n2,2\n"
    at.file_uploader(key="mx_upload").upload("mine.csv", raw, "text/csv")
    at.run()
    assert at.session_state[state.DATASET].shape == (5, 2)
    assert any("Dropped 1 of 6 rows" in i.value for i in at.info)
    # K = 3 on 5 points works; K = 6 cannot: an explanation, not a traceback, and the data stay
    with at.expecting_errors():
        at.slider(key="mx_K").set_value(6).run()
    assert any("Reduce K" in e.value for e in at.error)
    assert at.session_state[state.DATASET].shape == (5, 2)
    at.slider(key="mx_K").set_value(2).run()
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 2
    at.button(key="mx_back_to_preset").click().run()
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)


def test_downloads_serve_the_data_and_the_em_trajectory(downloads, page):  # capture first, then run
    at = page
    np.testing.assert_allclose(download(at, downloads, "mx_download").to_numpy(), at.session_state[state.DATASET],
                               rtol=1e-12)
    trajectory = download(at, downloads, "mx_em_csv")
    trace = fit(at).trace
    assert len(trajectory) == (trace.n_iter + 1) * 3
    last = trajectory[trajectory.iteration == trace.n_iter]
    np.testing.assert_allclose(last.weight, trace.mixture().weights_, rtol=1e-9)
    np.testing.assert_allclose(last.mean_log_likelihood, trace.log_likelihoods[-1], rtol=1e-12)
    at.file_uploader(key="mx_upload").upload("mine.csv", b"a,b\n0,0\n1,1\n3,0\n0,4\n2,2\n", "text/csv")
    at.run()
    np.testing.assert_array_equal(download(at, downloads, "mx_download").to_numpy(),
                                  [[0, 0], [1, 1], [3, 0], [0, 4], [2, 2]])


def test_degenerate_data_get_an_explanation_and_the_data_stay(page):
    at = page
    X0 = at.session_state[state.DATASET].copy()
    with at.expecting_errors():
        at.file_uploader(key="mx_upload").upload("same.csv", b"a,b\n1,2\n1,2\n1,2\n", "text/csv")
        at.run()
    assert any("identical" in e.value for e in at.error)
    np.testing.assert_array_equal(at.session_state[state.DATASET], X0)
    # 6 rows but only 2 distinct points: K = 3 cannot be fitted, and the page says why
    with at.expecting_errors():
        at.file_uploader(key="mx_upload").upload("two.csv", b"a,b\n0,0\n0,0\n0,0\n5,5\n5,5\n5,5\n", "text/csv")
        at.run()
    assert at.session_state[state.DATASET].shape == (6, 2)
    assert any("only 2 distinct points" in e.value for e in at.error)
    at.slider(key="mx_K").set_value(2).run()
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 2


def test_views_and_density_mode_change_the_animation(page):
    at = page
    assert any(t.get("name") == "log p(x), 1 nat apart" for t in em_chart(at)["data"])
    at.segmented_control(key="mx_density").set_value("heatmap").run()
    spec = em_chart(at)
    assert spec["layout"]["images"][0]["source"].startswith("data:image/png;base64,")  # p(x), a layout image
    assert all(len(f["layout"]["images"]) == 1 for f in spec["frames"])  # one per EM iteration
    assert spec["layout"]["updatemenus"][0]["buttons"][0]["args"][1]["frame"]["redraw"] is False
    at.pills(key="mx_show").set_value(["means"]).run()
    spec = em_chart(at)
    assert {t.get("type", "scatter") for t in spec["data"]} == {"scatter"}  # no density
    assert not any(t.get("name", "").startswith("ellipses") for t in spec["data"])
    assert spec["data"][figs.TRACE_DATA]["marker"]["color"] == figs.PALETTE["data"]  # not coloured, not animated
    assert len(spec["frames"][0]["data"]) == 2  # the means and the curve's marker


def test_typed_point_changes_the_decomposition_and_the_star(page):
    at = page
    before = [x.value for x in at.latex]
    at.number_input(key="mx_px").set_value(-4.0).run()
    at.number_input(key="mx_py").set_value(-2.0).run()
    after = [x.value for x in at.latex]
    assert before != after and any("log p(x)" in v for v in after)
    star = next(t for t in em_chart(at)["data"] if t.get("name") == "chosen x")
    assert (plotly_array(star["x"])[0], plotly_array(star["y"])[0]) == (-4.0, -2.0)


@pytest.mark.parametrize("value", [999999999999999999999999999999, 1e309, float("nan"), float("-inf")])
def test_typed_values_beyond_the_range_fall_back_to_a_sane_point(page, value):
    at = page
    at.number_input(key="mx_px").set_value(value).run()
    assert np.isfinite(at.number_input(key="mx_px").value)
    assert "mx_px" not in at.query_params or np.isfinite(float(at.query_params["mx_px"][0]))
    at.run()  # and the next run cleans nothing it cannot


def test_a_30_digit_number_in_the_url_of_a_bound_input_is_dropped(page):
    # the browser puts what was typed into the URL; once x1 is bound, the cleaner must not `del` it (Streamlit
    # refuses), and the page must keep going
    at = page
    at.number_input(key="mx_px").set_value(1.5).run()
    at.query_params["mx_px"] = "999999999999999999999999999999"
    at.run()
    assert "mx_px" not in at.query_params and at.number_input(key="mx_px").value == 1.5


def test_generative_samples_restarts_and_model_selection(page):
    at = page
    at.slider(key="mx_n").set_value(150).run()  # fewer points: restarts and K = 1 ... 10 stay quick
    at.slider(key="mx_gen_n").set_value(50).run()
    gen = chart(at, "mx_gen_chart")
    assert [f["name"] for f in gen["frames"]] == [str(j) for j in range(1, 31)] + ["all"]
    assert sum(len(plotly_array(t["x"])) for t in gen["frames"][-1]["data"][:3]) == 50
    at.slider(key="mx_R").set_value(4).run()
    at.toggle(key="mx_restarts_on").set_value(True).run()
    assert any("distinct optima in 4 restarts" in c.value for c in at.caption)
    at.toggle(key="mx_select_on").set_value(True).run()
    assert any("held-out points" in c.value for c in at.caption)


def test_the_url_restores_the_view(app_test):
    at = app_test(PAGE, query_params={"mx_K": "4", "mx_preset": "Two moons", "mx_cov": "diagonal (axis-aligned)",
                                      "mx_density": "heatmap", "mx_px": "1.25"})
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 4
    assert fit(at).trace.covariance_type == "diag"
    assert at.session_state[state.DATASET_META].label == "Two moons"
    assert at.number_input(key="mx_px").value == 1.25
    assert em_chart(at)["layout"]["images"][0]["source"].startswith("data:image/png")  # the heatmap density


QUERY_FUZZ = [
    {"mx_K": "inf", "mx_iter": "1e400", "mx_preset": "nope", "mx_px": "nan"},
    {"mx_K": "1e400", "mx_seed": "-inf", "mx_py": "1" + "9" * 400, "mx_speed": "nan"},
    # invalid UTF-8 reaches the script decoded as U+FFFD (the browser) or still percent-encoded
    {"mx_preset": "<script>alert(1)</script>", "mx_cov": "\x00", "mx_px": "\ufffd\ufffd", "mx_show": "<b>x</b>",
     "mx_click": "%FF%FE"},
    {"mx_K": ["2", "7"], "mx_n": "999999999", "mx_noise": "-5", "mx_gen_n": "0", "mx_R": "10000"},
    {f"junk{i}": str(i) for i in range(200)},
]


@pytest.mark.parametrize("query", QUERY_FUZZ, ids=["non-finite", "huge", "markup", "twice-and-range", "200-keys"])
def test_nonsense_in_the_url_falls_back_to_defaults(app_test, query):
    at = app_test(PAGE, query_params=query)
    assert at.session_state[state.DATASET].shape[1] == 2 and at.session_state[state.FITTED_MIXTURE] is not None
    assert 1 <= at.slider(key="mx_K").value <= gmm.MAX_COMPONENTS
    assert all(np.isfinite(v.value) for v in at.number_input)
    assert not at.get("html")  # nothing from the URL became HTML


@pytest.mark.parametrize("end", ["min", "max"])
def test_every_slider_at_either_end_gives_finite_numbers(app_test, end):
    at = app_test(PAGE)
    at.slider(key="mx_n").set_value(20 if end == "min" else 5000).run()  # the data first: every fit sees them
    for key in ("mx_K", "mx_seed", "mx_noise", "mx_data_seed", "mx_gen_n", "mx_R", "mx_test_frac"):
        widget = at.slider(key=key)
        widget.set_value(widget.min if end == "min" else widget.max)
    speed = at.select_slider(key="mx_speed")
    speed.set_value(speed.options[0] if end == "min" else speed.options[-1])
    at.run()
    trace = fit(at).trace
    assert np.all(np.isfinite(trace.log_likelihoods)) and trace.n_iter >= 0


def test_csv_uploads_that_cannot_be_used_keep_the_data_and_the_fit(page):
    at = page
    X0, fit0 = at.session_state[state.DATASET].copy(), fit(at).key
    bad = {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 4,
        "inf.csv": b"a,b\ninf,1\nnan,2\n-inf,3\n",
        "one_column.csv": b"a\n1\n2\n",
        "words.csv": b"a,b\nx,y\nz,w\n",
        "zip.csv": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200),
        "truncated.csv": b'a,b\n1,2\n3,"4',
        "script.csv": b"<script>alert(1)</script>,b\n1,2\n",
    }
    for name, raw in bad.items():
        with at.expecting_errors():
            at.file_uploader(key="mx_upload").upload(name, raw, "text/csv")
            at.run()
        np.testing.assert_array_equal(at.session_state[state.DATASET], X0, err_msg=name)
        assert fit(at).key == fit0, name
        assert not at.get("html")


def test_a_large_upload_is_used(page):
    at = page
    X = make_dataset("overlapping", n=20_000, seed=1)
    raw = pd.DataFrame(X, columns=["x1", "x2"]).to_csv(index=False).encode()
    at.file_uploader(key="mx_upload").upload("big.csv", raw, "text/csv")
    at.run()
    assert at.session_state[state.DATASET].shape == (20_000, 2)


def test_reset_view_keeps_the_data_and_the_fit(page):
    at = page
    at.selectbox(key="mx_preset").set_value("two_moons").run()
    at.slider(key="mx_K").set_value(4).run()
    at.segmented_control(key="mx_density").set_value("heatmap").run()
    at.number_input(key="mx_px").set_value(2.0).run()
    X, key = at.session_state[state.DATASET].copy(), fit(at).key
    at.button(key="mx_reset_defaults").click().run()
    assert at.segmented_control(key="mx_density").value == "contours"
    assert at.number_input(key="mx_px").value == 0.0
    np.testing.assert_array_equal(at.session_state[state.DATASET], X)
    assert fit(at).key == key and at.slider(key="mx_K").value == 4


def test_an_edited_data_set_survives_reset(page):
    at = page
    at.file_uploader(key="mx_upload").upload("mine.csv", b"a,b\n0,0\n1,1\n3,0\n0,4\n2,2\n", "text/csv")
    at.run()
    at.button(key="mx_reset_defaults").click().run()
    assert at.session_state[state.DATASET].shape == (5, 2)


def test_the_view_survives_a_page_switch(page):
    at = page
    at.slider(key="mx_K").set_value(4).run()
    at.number_input(key="mx_px").set_value(1.0).run()
    at.switch_page("views/home.py").run()
    at.switch_page(PAGE).run()
    assert at.session_state[state.FITTED_MIXTURE].latent_dim == 4 and at.number_input(key="mx_px").value == 1.0


def test_every_widget_has_a_label(page):
    at = page
    widgets = [*at.slider, *at.select_slider, *at.selectbox, *at.number_input, *at.toggle, *at.button,
               *at.get("button_group"), *at.get("file_uploader")]
    assert widgets
    for w in widgets:
        label = getattr(w, "label", None) or w.proto.label
        assert label and label.strip(), w
