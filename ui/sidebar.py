"""The shared sidebar: global seed, resample button, presentation mode."""

import streamlit as st

from ui import state

SEED_MAX = 9999
PRESENTATION_SCALE = 1.35  # figure heights and fonts grow by this factor in presentation mode

# Streamlit sizes text in rem, so raising the root font size enlarges the whole page's text at once.
_PRESENTATION_CSS = """
<style>
html { font-size: 21px; }
.stMarkdown p, .stMarkdown li { font-size: 1.15rem; }
.katex { font-size: 1.35em; }
</style>
"""


_RESAMPLE_HELP = "Draw new randomness on purpose: moves to the next seed, so the URL still reproduces the numbers."


def _resample() -> None:
    # advancing the seed itself (not a hidden counter) keeps every view bookmarkable
    st.session_state[state.SEED] = (int(st.session_state.get(state.SEED, 0)) + 1) % (SEED_MAX + 1)


def render_sidebar() -> None:
    """draw the shared controls in the sidebar (call once per run, from app.py)"""
    with st.sidebar:
        st.slider(
            "Seed",
            min_value=0,
            max_value=SEED_MAX,
            value=0,
            key=state.SEED,
            help="All randomness on every page derives from this seed: the same URL gives the same numbers.",
            bind="query-params",
            persist_state="session",
        )
        st.button("Resample", key="sidebar_resample", icon=":material/casino:", on_click=_resample, help=_RESAMPLE_HELP)
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
    """the seed a page should use for its randomness: the global seed (Resample advances it)"""
    return int(st.session_state.get(state.SEED, 0))


def presentation_mode() -> bool:
    """whether presentation mode is on"""
    return bool(st.session_state.get(state.PRESENTATION, False))


def presentation_scale() -> float:
    """multiply figure heights by this (1.0 normally, larger in presentation mode)"""
    return PRESENTATION_SCALE if presentation_mode() else 1.0
