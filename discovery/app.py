"""The API's app factory."""

from __future__ import annotations

import logging

from flask import Flask

from discovery import api, errors, healing, health, push
from discovery.debug import views as debug
from discovery.fastpath import NearbyFastPath
from discovery.jsonio import OrjsonProvider
from discovery.services import Services
from discovery.settings import ApiSettings


def create_app(settings: ApiSettings | None = None) -> Flask:
    """Make the API app; settings come from the environment unless given."""
    # No static route of Flask's: the debug map's files are served by its
    # blueprint, only when it is on.
    app = Flask(__name__, static_folder=None)
    app.json = OrjsonProvider(app)
    settings = settings if settings is not None else ApiSettings.from_env()
    app.config["NEARBY"] = settings
    app.extensions["nearby"] = Services(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    errors.init_app(app)
    health.init_app(app)
    push.init_app(app)
    api.init_app(app)
    debug.init_app(app)
    healing.init_app(app)
    app.wsgi_app = NearbyFastPath(app, app.wsgi_app)  # type: ignore[method-assign]
    return app
