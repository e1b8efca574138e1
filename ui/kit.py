"""The small kit every page is built from: guarded sections, presentation scaling, one Step/Play/Pause/Reset control,
charts that export at slide resolution, CSV downloads, the slides flag, "Reset to defaults", content hashes for caches.

    from ui import kit
    kit.explain("The idea in one paragraph ...")        # hidden with ?slides=true
    kit.guarded(section, explained=(MyInputError,))      # an exception becomes a message the tests can see
    st.caption(f"File: {kit.literal(name)}")             # user text shown as typed, never as Markdown or HTML
    kit.chart(fig, key="est_hist", filename="estimates")  # PNG export from the chart's own modebar
    if kit.player("elbo", on_step=step, on_reset=reset): ...
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import state
from ui.sidebar import presentation_scale

logger = logging.getLogger(__name__)

SLIDES_PARAM = "slides"  # ?slides=true: charts and controls only, for a slide or an iframe
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
PNG_SCALE = 2  # a chart exports at twice its size on screen: a 900-pixel-wide chart gives a full-HD slide's width
PLAY_TICK_S = 0.1  # server-driven animations ask for a frame this often; a frame comes when the last one is done


# ----------------------------------------------------------------------------------------------------- sizes, text
def height(h: int) -> int:
    """a figure height in pixels, scaled up in presentation mode"""
    return int(h * presentation_scale())


def slides_mode() -> bool:
    """whether the URL asks for charts and controls only (?slides=true): explanations are left out"""
    return st.query_params.get(SLIDES_PARAM, "").strip().lower() in TRUE_WORDS


def explain(text: str) -> None:
    """explanatory Markdown (with $math$), left out in slides mode"""
    if not slides_mode():
        st.markdown(text)


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~$:"})


def literal(text: str) -> str:
    """user text (a file name, a typed value) for st.markdown or a caption: every Markdown character escaped, so it
    shows as typed and never as a link, emphasis, maths or HTML"""
    return str(text).translate(_MARKDOWN_SPECIALS)


def note(text: str) -> None:
    """a caption under a chart, left out in slides mode"""
    if not slides_mode():
        st.caption(text)


def accept_short_names(key: str, options, format_func: Callable = str) -> None:
    """Let the URL name an option of a bound selectbox or segmented control by its short name (?est_model=banana)
    as well as by the label (format_func(option)) the widget itself writes there. Call before the widget, on every
    run. The URL is rewritten to the label, which is what the widget keeps there from then on (it drops a value
    that is not one of its labels), so a bookmark taken later still opens this option."""
    value = st.query_params.get(key)
    if key in st.session_state or value not in list(options):
        return
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    # The widget seeds itself from a snapshot of the query string taken when the run started: write the label and
    # refresh the snapshot (internal API, as ui/query.py's cleaner; pinned by the short-name page tests).
    st.query_params[key] = format_func(value)
    with ctx.session_state.query_params() as qp:
        qp.set_initial_query_params_from_current()


# -------------------------------------------------------------------------------------------------- guarded parts
def guarded(section: Callable, *args, explained: tuple[type[Exception], ...] = (), **kwargs):
    """Run one part of a page; an unexpected failure becomes a message, never a traceback, and the user's state is
    kept. The failure is logged with its traceback and recorded under state.SECTION_ERRORS, so a test sees it even
    where the message is not an element it looks at. Returns the section's result, or None after a failure.

    explained: exception types whose message already tells the user what to change (validation at the boundary,
    e.g. gmm.MixtureFitError); they are shown as they are, as an st.error, and not recorded as a failed section."""
    try:
        return section(*args, **kwargs)
    except explained as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a live demo
        name = getattr(section, "__name__", "section")
        logger.exception("page section %s failed", name)
        st.session_state.setdefault(state.SECTION_ERRORS, []).append(f"{name}: {type(exc).__name__}: {exc}")
        st.error(f"This part of the page could not be drawn ({type(exc).__name__}: {exc}). Your settings and data "
                 "are kept; try Reset or other settings.", icon=":material/error:")
        return None


# ---------------------------------------------------------------------------------------------- long computations
# a Stop waits at most this long for the run it interrupts to load its best weights (one training step, normally)
STOP_WAIT_S = 60.0


def new_run(**fields) -> dict:
    """A long run's record for st.session_state: ``fields``, its ``history`` (None until the first step), and the two
    signals through which a later script run stops it (``stop``) and learns that it has ended (``done``)."""
    return dict(fields, history=None, stop=threading.Event(), done=threading.Event())


def take_over_run(key: str) -> dict | None:
    """The run an earlier script run left in st.session_state[key], once it has ended; None if there is none.

    Streamlit's fast reruns (its default) start the next script run at once, in a new thread, and the interrupted one
    goes on until its next Streamlit call: so a Stop click asks the run to stop and waits until it has loaded its best
    weights and completed its history. Whichever of the two threads takes the record from session state finishes it.
    """
    run = st.session_state.get(key)
    if run is None:
        return None
    if "stop" in run:
        run["stop"].set()
        if not run["done"].wait(STOP_WAIT_S):
            logger.warning("run under %s did not end within %.0f s of a stop", key, STOP_WAIT_S)
    return st.session_state.pop(key, None)


@contextlib.contextmanager
def background_priority(increment: int = 10):
    """Run a long computation (a training run, an exact evaluation of many points) at a lower CPU priority than the
    other sessions' reruns. Streamlit runs every session's script in a thread of one process, so a student's training
    would otherwise take half of a core from everyone else. Linux keeps a nice value per thread: this changes only
    the calling thread's, for the block, and does nothing where the platform does not allow it."""
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(before + increment, 19))
    except (AttributeError, OSError):
        yield
        return
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, before)
        except OSError:  # raising priority back needs privileges; the thread ends with its script run anyway
            pass


# ------------------------------------------------------------------------------------------------ content hashing
def fingerprint(*parts) -> str:
    """A short hash of the parts' content, the one cache identity for models, arrays and plain values.

    A torch module hashes its class name, its ``config`` (if any) and every entry of its state_dict; arrays and
    tensors hash dtype, shape and bytes; anything else hashes its repr. Two objects with equal content give equal
    keys, whatever their id()."""
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        _update(h, part)
    return h.hexdigest()


def _update(h, part) -> None:
    if isinstance(part, torch.nn.Module):
        h.update(type(part).__name__.encode())
        h.update(repr(sorted(getattr(part, "config", {}).items())).encode())
        for name, value in part.state_dict().items():
            h.update(name.encode())
            _update(h, value)
    elif isinstance(part, torch.Tensor):
        _update(h, part.detach().cpu().contiguous().numpy())
    elif isinstance(part, np.ndarray):
        h.update(f"{part.dtype}{part.shape}".encode())
        h.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(part, bytes):
        h.update(part)
    elif isinstance(part, (list, tuple)):
        h.update(f"{type(part).__name__}{len(part)}".encode())
        for item in part:
            _update(h, item)
    else:
        h.update(repr(part).encode())


# ------------------------------------------------------------------------------------------------ charts and data
def chart_config(filename: str) -> dict:
    """plotly's config for every chart: the modebar's camera saves a PNG at slide resolution under this name"""
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": "png", "filename": filename, "scale": PNG_SCALE}}


def chart(fig, key: str, filename: str | None = None, config: dict | None = None, **kwargs):
    """st.plotly_chart with the shared export config (plus `config`, e.g. {"scrollZoom": False}); filename defaults to
    the key"""
    return st.plotly_chart(fig, key=key, config=chart_config(filename or key) | (config or {}), **kwargs)


def csv_bytes(table: pd.DataFrame | dict) -> bytes:
    """a table (DataFrame or dict of columns) as UTF-8 CSV bytes"""
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    return frame.to_csv(index=False).encode()


def csv_download(table: pd.DataFrame | dict | bytes, filename: str, key: str,
                 label: str = "Download the data (CSV)") -> None:
    """a download button for a table; it serves the file without rerunning the page"""
    data = table if isinstance(table, bytes) else csv_bytes(table)
    st.download_button(label, data, file_name=filename, mime="text/csv", key=key, icon=":material/download:",
                       on_click="ignore")


# ---------------------------------------------------------------------------------- Step / Play / Pause / Reset
def playing_key(prefix: str) -> str:
    return f"{prefix}_playing"


def is_playing(prefix: str) -> bool:
    """whether the animation with this prefix is playing (fragments pass PLAY_TICK_S to run_every while it is)"""
    return bool(st.session_state.get(playing_key(prefix), False))


def stop(prefix: str) -> None:
    st.session_state[playing_key(prefix)] = False


def _toggle(prefix: str) -> None:
    st.session_state[playing_key(prefix)] = not is_playing(prefix)


def _guarded_call(prefix: str, action: Callable | None) -> None:
    if action is not None:
        guarded(action)


def _reset(prefix: str, on_reset: Callable | None) -> None:
    stop(prefix)
    _guarded_call(prefix, on_reset)


def player(prefix: str, on_step: Callable, on_reset: Callable | None = None, step_label: str = "Step",
           step_help: str | None = None, reset_help: str | None = None,
           extra: Iterable[tuple[str, str, Callable]] = ()) -> bool:
    """Step, Play/Pause and Reset buttons (plus ``extra`` (label, icon, callback) buttons) in one row.

    on_step advances the state by one click's worth; Play asks the page's fragment to call it every PLAY_TICK_S;
    on_reset returns to the start (Play stops first). Callbacks are guarded. Returns whether it is playing."""
    extra = list(extra)
    cols = st.columns([1, 1, 1] + [1.4] * len(extra) + [max(1.0, 5 - 1.4 * len(extra))])
    playing = is_playing(prefix)
    cols[0].button(step_label, key=f"{prefix}_step", icon=":material/skip_next:", type="primary", help=step_help,
                   on_click=_guarded_call, args=(prefix, on_step))
    cols[1].button("Pause" if playing else "Play", key=f"{prefix}_play", on_click=_toggle, args=(prefix,),
                   icon=":material/pause:" if playing else ":material/play_arrow:")
    cols[2].button("Reset", key=f"{prefix}_reset", icon=":material/replay:", help=reset_help,
                   on_click=_reset, args=(prefix, on_reset))
    for i, (label, icon, callback) in enumerate(extra):
        def run(callback=callback):
            stop(prefix)
            guarded(callback)

        cols[3 + i].button(label, key=f"{prefix}_extra{i}", icon=icon, on_click=run)
    return playing


# ---------------------------------------------------------------------------------------------- reset to defaults
def _reset_to_defaults(prefixes: tuple[str, ...], keys: tuple[str, ...], keep: tuple[str, ...] = ()) -> None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ss = st.session_state
    doomed = [key for key in ss.keys()
              if key not in keep and (key in keys or any(key.startswith(f"{p}_") for p in prefixes))]
    # A widget bound to the URL seeds itself from the query string again once its state is gone, so its parameter
    # must go too. Streamlit refuses to delete a bound parameter through st.query_params; its own binding layer
    # removes it (internal API: pinned by tests/test_kit.py, which fails if Streamlit changes it).
    ctx = get_script_run_ctx()
    if ctx is not None:
        with ctx.session_state.query_params() as qp:
            for key in doomed:
                qp.remove_param(key)
            qp.set_initial_query_params_from_current()
    for key in doomed:
        del ss[key]


def reset_to_defaults(prefixes: str | Iterable[str], keys: Iterable[str] = (),
                      label: str = "Reset to defaults", keep: Iterable[str] = (),
                      help: str = "Every control of this page back to its default (your data and trained models are "
                                  "kept).") -> None:
    """A button that returns every control of a page to its default and drops the page's own state.

    Deletes the session-state entries whose key starts with one of the prefixes (the page's widgets and state) and
    the given shared keys, except the keys in `keep` (e.g. the controls that define the user's data); widgets then
    show their defaults, and a widget bound to the URL drops its parameter."""
    prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
    st.button(label, key=f"{prefixes[0]}_reset_defaults", icon=":material/restart_alt:", help=help,
              on_click=_reset_to_defaults, args=(prefixes, tuple(keys), tuple(keep)))
