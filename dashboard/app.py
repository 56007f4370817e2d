"""KD Explorer's Streamlit entry point: it only sets up the page and routes (``st.navigation``)."""

from __future__ import annotations

import streamlit as st

from dashboard import nav

st.set_page_config(page_title="KD Explorer", page_icon=":material/school:", layout="wide")
st.navigation(nav.sections()).run()
