"""Two sessions on one server: two AppTests of app.py in one process, run interleaved (as Streamlit runs sessions,
with shared caches). Neither sees the other's data, trained or fitted model, settings or results, and the same URL
gives the same numbers in both whatever the other does."""

from streamlit.testing.v1 import AppTest

from tests.conftest import APPTEST_TIMEOUT, ROOT, chart
from ui import state
from ui.selection import ALWAYS_AVAILABLE, MODEL_LABELS

ESTIMATING, MIXTURES, DEEP, ELBO = "views/estimating.py", "views/mixtures.py", "views/deep_lvm.py", "views/elbo.py"


def _open(page: str) -> AppTest:
    # two sessions share the machine's cores, as on a server: each run may take twice as long as a page test's
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=2 * APPTEST_TIMEOUT)
    at.run()
    at.switch_page(page).run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception and not at.error, ([e.message for e in at.exception], [e.value for e in at.error])


def _estimates(at: AppTest) -> list:
    """every estimator's R trial estimates, as drawn in the histogram"""
    return [trace.get("x") for trace in chart(at, "est_hist")["data"]]


def test_two_sessions_see_only_their_own_data_models_settings_and_numbers():
    a, b = _open(ESTIMATING), _open(ESTIMATING)
    first = _estimates(b)
    assert _estimates(a) == first  # same URL, same numbers

    # A makes the app its own: another data set (and so another fitted mixture), a trained deep LVM, another seed
    a.switch_page(MIXTURES).run()
    a.selectbox(key="mx_preset").set_value("two_moons").run()
    _ok(a)
    b.run()  # B keeps working in between
    a.switch_page(DEEP).run()
    a.slider(key="dl_steps").set_value(100).run()
    a.button(key="dl_train").click().run()
    _ok(a)
    a.session_state[state.SEED] = 7
    a.switch_page(ESTIMATING).run()
    _ok(a)
    assert {MODEL_LABELS["deep"], MODEL_LABELS["mixture"]} <= set(a.selectbox(key="est_model").options)

    # B sees none of it: its picker offers no trained or fitted model, its seed and numbers are its own
    b.run()
    _ok(b)
    for key in (state.TRAINED_LVM, state.TRAINING_RUNS, state.FITTED_MIXTURE, state.DATASET):
        assert key not in b.session_state, key
    assert set(b.selectbox(key="est_model").options) == {MODEL_LABELS[k] for k in ALWAYS_AVAILABLE}
    assert b.session_state[state.SEED] == 0
    assert _estimates(b) == first
    assert _estimates(a) != first  # A's seed 7 draws other numbers (so the comparison above could fail)

    # B's own settings stay B's: its k moves, A's does not
    b.select_slider(key="est_k").set_value(100).run()
    _ok(b)
    a.run()
    assert a.select_slider(key="est_k").value == 1_000 and b.select_slider(key="est_k").value == 100

    # results computed from a session's model stay in that session: B's ELBO page has no VAE to split gaps for
    b.switch_page(ELBO).run()
    _ok(b)
    assert any("needs a VAE" in i.value for i in b.info)
    a.switch_page(ELBO).run()
    _ok(a)
    assert not any("needs a VAE" in i.value for i in a.info)
    assert "elbo_amort_go" in {w.key for w in a.button}

    # and B's data set is still the default one, while A's is the moons it chose
    b.switch_page(MIXTURES).run()
    a.switch_page(MIXTURES).run()
    assert b.selectbox(key="mx_preset").value != "two_moons" and a.selectbox(key="mx_preset").value == "two_moons"
    assert not (b.session_state[state.DATASET] == a.session_state[state.DATASET]).all()
