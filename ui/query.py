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
