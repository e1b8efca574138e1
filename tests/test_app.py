"""AppTest: every registered page runs clean, and a failure in its core calls fails its tests; the shell's sidebar and
query-string cleaning."""

import importlib

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import assert_clean, checked, page_failures
from ui import state
from ui.pages import PAGES
from ui.query import invalid_query_params

# One core call each page makes on its default view: (module, function). An exception injected there must fail the
# page's tests. A new page adds its entry (test_every_page_has_an_injection_point fails until it does).
INJECTION_POINTS = {
    "": ("lvm_core.plots.home", "mixture_1d_figure"),
    "mixtures": ("lvm_core.gmm", "decompose_density"),
    "deep-lvm": ("lvm_core.plots.deep", "prior_figure"),
    "estimating": ("lvm_core.plots.estimating", "estimates_figure"),
    "elbo": ("lvm_core.plots.elbo", "gap_chart"),
}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_every_registered_page_runs_clean(app_test, page):
    at = app_test(page.path)  # the factory checks every run: no exception, no st.error, no failed section
    assert not page_failures(at)
    assert at.get("plotly_chart"), "every page draws at least one chart"


def test_every_page_has_an_injection_point():
    assert {p.url_path for p in PAGES} == set(INJECTION_POINTS)


class InjectedFailure(RuntimeError):
    pass


def _inject(monkeypatch, url_path: str) -> list[int]:
    """make the page's core call raise (on a fresh server: caches emptied); returns a list that counts the calls"""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    module, name = INJECTION_POINTS[url_path]
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise InjectedFailure(f"injected into {module}.{name}")

    monkeypatch.setattr(importlib.import_module(module), name, broken)
    return calls


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.url_path or "home")
def test_an_exception_in_a_core_call_fails_the_page_tests(app_test, monkeypatch, page):
    calls = _inject(monkeypatch, page.url_path)
    with pytest.raises(AssertionError, match="injected into"):
        app_test(page.path)
    assert calls, "the injected call was never made: pick a call the page makes on its default view"


def test_a_test_that_provokes_a_failure_says_so(app_test, monkeypatch):
    _inject(monkeypatch, "mixtures")
    at = app_test("views/mixtures.py", expect_errors=True)  # opted out for every run: no assertion
    assert any("injected into" in f for f in page_failures(at))
    with pytest.raises(AssertionError, match="injected into"):
        assert_clean(at)
    at.expect_errors = False
    with at.expecting_errors():  # opted out for the runs inside the block, which must fail
        at.run()
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="no run inside the block showed an error"):
        with at.expecting_errors():
            at.run()


def test_checked_apptest_from_a_string_fails_on_st_error():
    at = checked(AppTest.from_string("import streamlit as st\nst.error('broken')", default_timeout=30))
    with pytest.raises(AssertionError, match="st.error: broken"):
        at.run()


def test_registry_has_home_first_and_unique_url_paths():
    assert PAGES[0].path == "views/home.py" and PAGES[0].url_path == ""
    assert len({p.url_path for p in PAGES}) == len(PAGES)
    assert all(p.icon.startswith(":material/") for p in PAGES)


def test_home_page_shows_four_steps_with_equations_and_a_chart(app_test):
    at = app_test("views/home.py")
    assert len(at.latex) == 4
    assert len(at.get("plotly_chart")) == 1, "the home page shows its live mixture figure"


# ------------------------------------------------------------------------------------------------- query cleaning


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan", "1e400", "-1e400", "1e300", "abc", ""])
def test_invalid_seed_values_are_dropped(value):
    assert invalid_query_params({"seed": value}) == ["seed"]


@pytest.mark.parametrize("value", ["0", "42", "9999", "2.5", "-3"])
def test_finite_seed_values_are_kept(value):
    # range checks are the widget's job (a slider clamps or drops); we only remove what would crash it
    assert invalid_query_params({"seed": value}) == []


def test_non_numeric_params_kept_unless_they_look_like_a_non_finite_number():
    params = {"mx_preset": "two moons", "est_k": "inf", "elbo_lr": "1e-2", "x": ["1", "nan"]}
    assert sorted(invalid_query_params(params)) == ["est_k", "x"]


@pytest.mark.parametrize("value", ["inf", "1e400", "abc"])
def test_app_survives_bad_seed_in_url_and_falls_back_to_default(app_test, value):
    at = app_test("views/home.py", query_params={state.SEED: value})
    assert at.slider(key=state.SEED).value == 0
    assert state.SEED not in at.query_params


def test_valid_seed_in_url_is_used(app_test):
    at = app_test("views/home.py", query_params={state.SEED: "17"})
    assert at.slider(key=state.SEED).value == 17


def test_integer_number_input_survives_inf_in_url():
    # Streamlit 1.67 raises OverflowError inside an integer number_input bound to ?k=inf (DESIGN.md "Known trap");
    # clean_query_params must run before the widget and refresh the URL snapshot widgets are seeded from.
    script = """
import streamlit as st
from ui.query import clean_query_params
clean_query_params()
st.number_input("k", value=1, step=1, key="k", bind="query-params")
"""
    for value in ["inf", "1e400"]:
        at = checked(AppTest.from_string(script, default_timeout=30))
        at.query_params["k"] = value
        at.run()
        assert at.number_input(key="k").value == 1


def test_cleaner_removes_a_bad_value_of_a_parameter_bound_to_a_widget():
    # the browser writes a typed 30-digit number into the URL of a bound number input; the next run's cleaner must
    # drop it without `del st.query_params[...]`, which Streamlit refuses once the key is bound
    script = """
import streamlit as st
from ui.query import clean_query_params
clean_query_params()
v = st.number_input("x", value=0.0, key="px", bind="query-params")
st.write(repr(v))
"""
    at = checked(AppTest.from_string(script, default_timeout=30)).run()
    at.number_input(key="px").set_value(2.5).run()  # bound now
    for value in ["999999999999999999999999999999", "1e400", "nan", "inf"]:
        at.query_params["px"] = value
        at.run()
        assert "px" not in at.query_params, value
        assert at.markdown[-1].value == "2.5"  # the widget kept its value


# ------------------------------------------------------------------------------------------------------- sidebar


def test_resample_button_advances_the_seed_itself(app_test):
    at = app_test("views/home.py", query_params={state.SEED: "5"})
    assert at.session_state[state.SEED] == 5
    at.button(key="sidebar_resample").click().run()
    assert at.session_state[state.SEED] == 6


def test_presentation_mode_toggles_from_url(app_test):
    at = app_test("views/home.py", query_params={state.PRESENTATION: "true"})
    assert at.toggle(key=state.PRESENTATION).value is True
