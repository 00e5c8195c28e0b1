"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from discovery.api.current import services
from discovery.search.services import REDIS_DOWN
from indexer.errors import Unavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive."""
    return jsonify({"status": "ok"})


def check_postgis() -> bool:
    """True when PostGIS answers a query."""
    try:
        with services().postgis() as conn:
            conn.execute("SELECT 1")
        return True
    except Unavailable:
        return False


def check_redis() -> bool:
    """True when Redis answers PING."""
    try:
        return bool(services().redis.ping())
    except REDIS_DOWN:
        return False


@bp.get("/readyz")
def readyz() -> Response:
    """200 when PostGIS and Redis both answer; 503 naming the one that does not."""
    checks = {"postgis": check_postgis(), "redis": check_redis()}
    down = [name for name, up in checks.items() if not up]
    body: dict[str, object] = {"status": "ok" if not down else "unavailable", "checks": checks}
    if down:
        names = " and ".join(down)
        body["error"] = {
            "code": "unavailable",
            "message": f"{names} {'is' if len(down) == 1 else 'are'} not reachable",
            "param": None,
        }
    response = jsonify(body)
    response.status_code = 503 if down else 200
    return response


def init_app(app: Flask) -> None:
    """Register /healthz and /readyz."""
    app.register_blueprint(bp)
