"""The dashboard's server: Streamlit's own (``st.App``) serving ``app.py``, behind the origin guard.

``kdx dashboard`` runs ``streamlit run dashboard/server.py`` (see :mod:`kdcore.dashboard_server`): only
pages of the dashboard's own origins (``server.corsAllowedOrigins``) may talk to it.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from streamlit import config
from streamlit.starlette import App

from kdcore.dashboard_server import OriginGuard

app = App("app.py", middleware=[
    Middleware(OriginGuard, origins=lambda: config.get_option("server.corsAllowedOrigins"))])
