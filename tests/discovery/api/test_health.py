"""Liveness, readiness and the shape of errors."""

from __future__ import annotations

import socket
from dataclasses import replace

from discovery.api.app import create_app
from discovery.settings import ApiSettings


def closed_port() -> int:
    """A local TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_both_answer(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgis": True, "redis": True}


def app_with(api_settings: ApiSettings, **index_fields: str):
    settings = replace(api_settings, index=replace(api_settings.index, **index_fields))
    return create_app(settings)


def test_readyz_names_a_redis_that_does_not_answer(index, api_settings) -> None:
    app = app_with(api_settings, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"] == {"postgis": True, "redis": False}
    assert body["error"]["message"] == "redis is not reachable"


def test_readyz_names_a_postgis_that_does_not_answer(index, api_settings) -> None:
    url = f"postgresql://nearby:nearby@127.0.0.1:{closed_port()}/nearby"
    app = app_with(api_settings, database_url=url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"] == {"postgis": False, "redis": True}
    assert body["error"]["message"] == "postgis is not reachable"


def test_unknown_route_is_a_json_404(client) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_unexpected_error_is_a_generic_500(app) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("password=secret in a driver message")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal", "message": "internal error", "param": None}
    }
