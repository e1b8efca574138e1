"""The shared sidebar: global seed, resample button, presentation mode."""

import streamlit as st

from ui import state

PRESENTATION_SCALE = 1.35  # figure heights and fonts grow by this factor in presentation mode

# Streamlit sizes text in rem, so raising the root font size enlarges the whole page's text at once.
_PRESENTATION_CSS = """
<style>
html { font-size: 21px; }
.stMarkdown p, .stMarkdown li { font-size: 1.15rem; }
.katex { font-size: 1.35em; }
</style>
"""


_RESAMPLE_HELP = "Draw new randomness on purpose (the URL's seed alone then no longer reproduces the numbers)."


def _reset_nonce() -> None:
    # a newly chosen seed alone defines the numbers again, so the URL reproduces them
    st.session_state[state.RESAMPLE_NONCE] = 0


def _resample() -> None:
    st.session_state[state.RESAMPLE_NONCE] = st.session_state.get(state.RESAMPLE_NONCE, 0) + 1


def render_sidebar() -> None:
    """draw the shared controls in the sidebar (call once per run, from app.py)"""
    st.session_state.setdefault(state.RESAMPLE_NONCE, 0)
    with st.sidebar:
        st.slider(
            "Seed",
            min_value=0,
            max_value=9999,
            value=0,
            key=state.SEED,
            on_change=_reset_nonce,
            help="All randomness on every page derives from this seed: the same URL gives the same numbers.",
            bind="query-params",
            persist_state="session",
        )
        st.button("Resample", key="sidebar_resample", icon=":material/casino:", on_click=_resample, help=_RESAMPLE_HELP)
        nonce = st.session_state[state.RESAMPLE_NONCE]
        if nonce:
            st.caption(f"Resampled {nonce}x: pages use seed {page_seed()}.")
        st.toggle(
            "Presentation mode",
            key=state.PRESENTATION,
            help="Larger fonts and figures, for a lecture hall.",
            bind="query-params",
            persist_state="session",
        )
    if presentation_mode():
        st.html(_PRESENTATION_CSS)


def page_seed() -> int:
    """the seed a page should use for its randomness: the global seed plus the number of resamples"""
    return int(st.session_state.get(state.SEED, 0)) + int(st.session_state.get(state.RESAMPLE_NONCE, 0))


def presentation_mode() -> bool:
    """whether presentation mode is on"""
    return bool(st.session_state.get(state.PRESENTATION, False))


def presentation_scale() -> float:
    """multiply figure heights by this (1.0 normally, larger in presentation mode)"""
    return PRESENTATION_SCALE if presentation_mode() else 1.0
