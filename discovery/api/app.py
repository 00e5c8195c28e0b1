"""The API's app factory."""

from __future__ import annotations

from flask import Flask

from discovery.api import (
    discover,
    errors,
    events,
    health,
    miniapps,
    push,
    requestlog,
    suggest,
    users,
)
from discovery.api import nearby as api
from discovery.api.fastpath import NearbyFastPath
from discovery.api.jsonio import OrjsonProvider
from discovery.api.metrics import ApiMetrics
from discovery.api.requestlog import RequestLayer, RequestNotes
from discovery.debug import demo
from discovery.debug import views as debug
from discovery.search.services import Services
from discovery.settings import ApiSettings
from indexer.logs import configure_logging


def create_app(settings: ApiSettings | None = None) -> Flask:
    """Make the API app; settings come from the environment unless given."""
    # No static route of Flask's: the debug map's files are served by its
    # blueprint, only when it is on.
    app = Flask(__name__, static_folder=None)
    app.json = OrjsonProvider(app)
    settings = settings if settings is not None else ApiSettings.from_env()
    configure_logging(settings.observe.log_format, secrets=settings.api_keys)
    app.config["NEARBY"] = settings
    services = Services(settings, RequestNotes())
    app.extensions["nearby"] = services
    errors.init_app(app)
    requestlog.init_app(app)
    health.init_app(app)
    push.init_app(app)
    api.init_app(app)
    miniapps.init_app(app)
    suggest.init_app(app)
    users.init_app(app)
    discover.init_app(app)
    events.init_app(app)
    debug.init_app(app)
    demo.init_app(app)
    services.check_healing_in_background()
    services.start_rounds()
    metrics = ApiMetrics(services.hot, settings.observe.multiproc_dir)
    app.extensions["nearby.metrics"] = metrics
    # Outermost: every request, whichever path answers it, has its id and is counted.
    app.wsgi_app = RequestLayer(  # type: ignore[method-assign]
        NearbyFastPath(app, app.wsgi_app), metrics, settings.observe.metrics_port
    )
    return app
