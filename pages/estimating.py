"""Estimating p(x): naive Monte Carlo against importance sampling, beside the exact answer (issue 5)."""

import streamlit as st

from ui.selection import model_and_point

st.title("Estimating p(x)")
sel = model_and_point("est")
