"""Clean the URL's query string once, before any widget reads it (validate at the boundary)."""

import math
from collections.abc import Mapping

from ui import state

# Parameters that must hold a number. Any other parameter is still dropped when it *looks* numeric but is not finite.
NUMERIC_PARAMS = frozenset({state.SEED})

# Beyond 2**53 integers are no longer exact in a float (or in the browser's JavaScript numbers).
MAX_ABS_NUMBER = 2.0**53


def _is_sane_number(text: str) -> bool:
    try:
        value = float(text)  # "1e400" -> inf, "nan" -> nan
    except ValueError:
        return False
    return math.isfinite(value) and abs(value) <= MAX_ABS_NUMBER


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def invalid_query_params(params: Mapping[str, str | list[str]]) -> list[str]:
    """keys whose value would crash or mislead a widget bound to the URL: values of NUMERIC_PARAMS that are not
    finite numbers of sane size (?seed=abc, ?seed=inf, ?seed=1e400), and any value that parses as a number but is
    inf, nan or beyond +-2**53"""
    bad = []
    for key, values in params.items():
        values = [values] if isinstance(values, str) else list(values)
        for text in values:
            if (key in NUMERIC_PARAMS or _looks_numeric(text)) and not _is_sane_number(text):
                bad.append(key)
                break
    return bad


def clean_query_params() -> None:
    """drop invalid values from the URL (st.query_params) before any widget reads them; call once, first, in app.py"""
    import streamlit as st
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    bad = invalid_query_params({key: st.query_params.get_all(key) for key in st.query_params})
    if not bad:
        return
    ctx = get_script_run_ctx()
    if ctx is None:  # outside a Streamlit run nothing is bound to a widget
        for key in bad:
            del st.query_params[key]
        return
    # Once a widget is bound to a parameter (any run after the first), Streamlit refuses `del st.query_params[key]`
    # (DESIGN.md "Third trap": type a 30-digit number into a bound number input). Its binding layer removes the
    # parameter, and the widget keeps its own value (bounded inputs never hold such a number). Widgets seed themselves
    # from a snapshot of the query string taken when the run started, so refresh that snapshot too. Internal API:
    # pinned by tests/test_app.py (test_integer_number_input_survives_inf_in_url and
    # test_cleaner_removes_a_bad_value_of_a_parameter_bound_to_a_widget), which fail if Streamlit changes it.
    with ctx.session_state.query_params() as qp:
        for key in bad:
            qp.remove_param(key)
        qp.set_initial_query_params_from_current()
