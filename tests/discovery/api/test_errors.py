"""Errors as the API answers them: JSON, with the headers HTTP asks for."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_a_method_not_allowed_names_the_allowed_ones(client: FlaskClient) -> None:
    cases = [
        ("POST", "/v1/nearby?lat=1&lng=2", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/v1/entities/t:1", {"GET", "HEAD", "OPTIONS"}),
        ("GET", "/v1/positions", {"POST", "OPTIONS"}),
    ]
    for method, path, allowed in cases:
        response = client.open(path, method=method)
        assert response.status_code == 405, path
        assert set(response.headers["Allow"].split(", ")) == allowed, path
        assert response.content_type == "application/json"
        assert response.get_json() == {
            "error": {
                "code": "method_not_allowed",
                "message": "The method is not allowed for the requested URL.",
                "param": None,
            }
        }


def test_an_unknown_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/v2/nearby")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
