"""LVM Lab: the entry point. Page config, query-string cleaning, navigation, shared sidebar, then the chosen page."""

# Load the heavy libraries once, before any page runs: plotly imports pandas lazily, and two first runs racing on that
# import fail with "partially initialized module 'pandas'" (DESIGN.md, "Second trap"; plotly/plotly.py#2433).
import pandas  # noqa: F401
import plotly.express  # noqa: F401
import sklearn.mixture  # noqa: F401
import streamlit as st
import torch
from threadpoolctl import threadpool_limits

from ui import state
from ui.pages import PAGES
from ui.query import clean_query_params
from ui.sidebar import render_sidebar

# One intra-op thread per computation, set once here for the whole process (lvm_core never changes it): our tensors
# are small, and with several sessions on few cores a second OpenMP thread made them 5-25x slower (measured in
# benchmarks/). The same for BLAS under scikit-learn's EM: its spin-waiting threads made one EM step 10x slower.
torch.set_num_threads(1)
threadpool_limits(1, user_api="blas")  # after the imports above, so every BLAS they load is limited

st.set_page_config(page_title="LVM Lab", page_icon=":material/blur_on:", layout="wide")

# Drop URL values that would crash or mislead a bound widget (?seed=inf, ?seed=1e400, ?seed=abc) before any widget
# reads them; Streamlit then falls back to each widget's default.
clean_query_params()

page = st.navigation(
    [
        st.Page(p.path, title=p.title, icon=p.icon, default=True)
        if p.url_path == ""
        else st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path)
        for p in PAGES
    ]
)
render_sidebar()
# a full run starts with no failed sections; fragments append to the list between full runs
st.session_state[state.SECTION_ERRORS] = []
page.run()
