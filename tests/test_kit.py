"""ui.kit: content fingerprints, guarded sections, the player, reset to defaults (AppTest on small scripts)."""

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lvm_core.models import MLPLVM, SeedLVM
from tests.conftest import checked
from ui import kit

TIMEOUT = 60


def test_fingerprint_equal_content_gives_equal_key_whatever_the_object():
    a, b = SeedLVM(1, seed=3), SeedLVM(1, seed=3)
    assert a is not b and kit.fingerprint(a) == kit.fingerprint(b)
    assert kit.fingerprint(a) != kit.fingerprint(SeedLVM(1, seed=4))
    assert kit.fingerprint(np.zeros(3)) == kit.fingerprint(np.zeros(3))
    assert kit.fingerprint(np.zeros(3)) != kit.fingerprint(np.zeros(4))
    assert kit.fingerprint(np.zeros(3, np.float32)) != kit.fingerprint(np.zeros(3, np.float64))


def test_fingerprint_sees_a_changed_parameter_and_the_config():
    model = MLPLVM(2, 2, hidden=8, seed=0)
    before = kit.fingerprint(model)
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-6
    assert kit.fingerprint(model) != before
    assert kit.fingerprint(MLPLVM(2, 2, hidden=8, seed=0, activation="tanh")) != kit.fingerprint(
        MLPLVM(2, 2, hidden=8, seed=0, activation="relu"))


def _guarded_script():
    import streamlit as st

    from ui import kit

    def broken():
        raise ValueError("boom")

    kit.guarded(broken)
    st.write("after")


def test_guarded_shows_a_message_records_the_failure_and_the_page_goes_on():
    at = checked(AppTest.from_function(_guarded_script, default_timeout=TIMEOUT))
    with at.expecting_errors():
        at.run()
    assert not at.exception
    assert len(at.error) == 1 and "ValueError: boom" in at.error[0].value
    assert at.session_state["section_errors"] == ["broken: ValueError: boom"]
    assert at.markdown[-1].value == "after"


def _reset_script():
    import streamlit as st

    from ui import kit

    a = st.slider("a", 0, 10, 3, key="pg_a", bind="query-params", persist_state="session")
    b = st.selectbox("b", ["x", "y"], key="pg_b", bind="query-params", persist_state="session")
    st.session_state.setdefault("pg_state", "fresh")
    st.session_state.setdefault("shared_data", "kept")
    kit.reset_to_defaults("pg")
    st.write(f"{a} {b} {st.session_state['pg_state']} {st.session_state['shared_data']}")


def test_reset_to_defaults_restores_widgets_bound_to_the_url_and_keeps_shared_state():
    at = checked(AppTest.from_function(_reset_script, default_timeout=TIMEOUT))
    at.query_params.update({"pg_a": "7", "pg_b": "y"})
    at.run()
    assert at.markdown[-1].value == "7 y fresh kept"
    at.session_state["pg_state"] = "changed"
    at.slider(key="pg_a").set_value(9).run()
    assert at.markdown[-1].value == "9 y changed kept"
    at.button(key="pg_reset_defaults").click().run()
    assert at.markdown[-1].value == "3 x fresh kept"
    assert "pg_a" not in at.query_params and "pg_b" not in at.query_params
    at.run()  # and it stays at the defaults
    assert at.markdown[-1].value == "3 x fresh kept"


def _player_script():
    import streamlit as st

    from ui import kit

    st.session_state.setdefault("pl_count", 0)

    def step():
        st.session_state["pl_count"] += 1

    def reset():
        st.session_state["pl_count"] = 0

    playing = kit.player("pl", on_step=step, on_reset=reset)
    st.write(f"{st.session_state['pl_count']} {playing}")


def test_player_steps_plays_pauses_and_resets():
    at = checked(AppTest.from_function(_player_script, default_timeout=TIMEOUT)).run()
    assert at.markdown[-1].value == "0 False"
    at.button(key="pl_step").click().run()
    at.button(key="pl_step").click().run()
    assert at.markdown[-1].value == "2 False"
    at.button(key="pl_play").click().run()
    assert at.markdown[-1].value == "2 True" and at.button(key="pl_play").label == "Pause"
    at.button(key="pl_reset").click().run()
    assert at.markdown[-1].value == "0 False"


def test_chart_config_exports_png_at_twice_the_screen_size():
    config = kit.chart_config("estimates")
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "estimates", "scale": 2}
    assert config["displaylogo"] is False


def test_background_priority_lowers_only_the_calling_threads_priority_for_the_block():
    import os
    import threading

    from ui.kit import background_priority

    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread priorities on this platform")
    me = threading.get_native_id()
    main_before, seen = os.getpriority(os.PRIO_PROCESS, me), {}

    def work():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        with background_priority(5):
            seen["inside"] = os.getpriority(os.PRIO_PROCESS, tid) - before
            seen["main"] = os.getpriority(os.PRIO_PROCESS, me)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen["inside"] == min(5, 19 - main_before) and seen["main"] == main_before  # the other threads untouched


def test_take_over_run_stops_the_interrupted_run_and_waits_for_its_best_weights():
    """Streamlit's fast reruns run the next script at once, beside the interrupted one: the record must come back only
    once the run has stopped and loaded its best weights."""
    import threading

    import streamlit as st

    from lvm_core.training import train_lvm

    X = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    model = MLPLVM(hidden=8, seed=0)
    run = kit.new_run(model=model)
    st.session_state["test_pending_run"] = run
    running = threading.Event()

    def train():
        def callback(history) -> bool:
            run["history"] = history
            if history.steps_done >= 5:
                running.set()
            return run["stop"].is_set()

        try:
            train_lvm(model, X, steps=1_000_000, seed=0, callback=callback)
        finally:
            run["done"].set()

    worker = threading.Thread(target=train)
    worker.start()
    assert running.wait(TIMEOUT)
    taken = kit.take_over_run("test_pending_run")
    worker.join(TIMEOUT)
    history = taken["history"]
    assert taken is run and "test_pending_run" not in st.session_state and not worker.is_alive()
    assert history.stopped and 0 < history.best_step <= history.steps_done < 1_000_000
    assert all(torch.equal(v, history.best_state[k]) for k, v in model.state_dict().items())
    assert kit.take_over_run("test_pending_run") is None  # nothing left to take
