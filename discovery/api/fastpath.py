"""GET /v1/nearby answered without Flask's request machinery: the same answer, cheaper.

A nearby request is the service's hot path, and Flask's request and response
objects, routing and contexts are a noticeable share of its CPU.  This WSGI
middleware answers a plain ``GET /v1/nearby`` (one that does not ask for
GeoJSON) itself, byte for byte as the Flask view does: both make the body with
:func:`discovery.api.nearby.nearby_json`, and an error is answered here from the
same table as Flask's error handlers (:func:`discovery.api.errors.error_answer`).
Every other request goes to the Flask app, before any work is done for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from discovery.api.errors import CONTENT_TYPE, error_answer
from discovery.api.nearby import nearby_json
from discovery.search.services import Services

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: WSGI status lines by code, as Flask's responses write them.
_STATUS = {code: f"{code} {phrase.upper()}" for code, phrase in HTTP_STATUS_CODES.items()}


class NearbyFastPath:
    """WSGI middleware in front of ``app``'s own WSGI callable (see the module)."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self.wsgi_app = wsgi_app
        self.services: Services = app.extensions["nearby"]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer a plain nearby request here; hand everything else to Flask."""
        if not plain_nearby(environ):
            return self.wsgi_app(environ, start_response)
        try:
            status, body = 200, nearby_json(self.services, environ.get("QUERY_STRING", ""))
        except Exception as exc:  # answered as Flask's error handlers answer it
            status, body = error_answer(exc)
        start_response(
            _STATUS[status], [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]


def plain_nearby(environ: dict[str, Any]) -> bool:
    """A GET of /v1/nearby that does not ask for GeoJSON."""
    return (
        environ.get("PATH_INFO") == "/v1/nearby"
        and environ.get("REQUEST_METHOD") == "GET"
        and "geo+json" not in environ.get("HTTP_ACCEPT", "").lower()
    )
