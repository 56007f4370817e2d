"""KD Explorer's Streamlit entry point: it only sets up the page and routes (``st.navigation``)."""

from __future__ import annotations

import streamlit as st

from dashboard import nav

# An emoji icon is drawn in the browser; a :material/ one is fetched from a font CDN, which an offline room lacks.
st.set_page_config(page_title="KD Explorer", page_icon="🎓", layout="wide")
st.navigation(nav.sections()).run()
