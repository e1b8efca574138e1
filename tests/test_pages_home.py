"""AppTest of the home page: the live mixture follows its controls and the URL, the CSV holds the samples drawn,
slides mode leaves out the explanations, Reset returns the defaults. Every run is checked (tests/conftest.py)."""

import io

import numpy as np
import pandas as pd

from lvm_core.gmm import sample_mixture_1d
from tests.conftest import chart, plotly_array

PAGE = "views/home.py"


def test_home_draws_the_mixture_with_its_samples_and_four_steps(app_test):
    at = app_test(PAGE)
    fig = chart(at, "home_mixture_chart")
    assert [t.get("name") for t in fig["data"]][-1] == "p(x) exact"
    assert len(plotly_array(fig["data"][0]["x"])) == 1000 and len(at.latex) == 4
    assert len(at.get("page_link")) == 4


def test_the_url_sets_the_weight_and_the_sample_size_and_the_csv_holds_the_samples(app_test, downloads):
    at = app_test(PAGE, query_params={"home_pi": "0.8", "home_n": "200", "seed": "5"})
    assert at.slider(key="home_pi").value == 0.8 and at.select_slider(key="home_n").value == 200
    button = next(b for b in at.get("download_button") if b.key == "home_csv")
    samples = pd.read_csv(io.BytesIO(downloads(button)))["x"].to_numpy()
    np.testing.assert_allclose(samples, sample_mixture_1d((0.8, 0.2), (-1.5, 1.5), (0.6, 0.9), 200, seed=5))
    np.testing.assert_allclose(plotly_array(chart(at, "home_mixture_chart")["data"][0]["x"]), samples)


def test_slides_mode_leaves_out_the_explanations_but_keeps_chart_and_controls(app_test):
    full = app_test(PAGE)
    slides = app_test(PAGE, query_params={"slides": "true"})
    assert len(slides.markdown) < len(full.markdown)
    assert not any("signature" in m.value for m in slides.markdown)
    assert slides.get("plotly_chart") and slides.slider(key="home_pi").value == 0.35 and len(slides.latex) == 4


def test_reset_to_defaults_returns_the_controls(app_test):
    at = app_test(PAGE, query_params={"home_pi": "0.8"})
    at.select_slider(key="home_n").set_value(50).run()
    at.button(key="home_reset_defaults").click().run()
    assert at.slider(key="home_pi").value == 0.35 and at.select_slider(key="home_n").value == 1000
    assert "home_pi" not in at.query_params


def test_nonsense_in_the_url_falls_back_to_defaults(app_test):
    at = app_test(PAGE, query_params={"home_pi": "1e400", "home_n": "<script>", "slides": "\x00"})
    assert at.slider(key="home_pi").value == 0.35 and at.select_slider(key="home_n").value == 1000
    assert not at.get("html")
