"""GET /v1/nearby refuses every malformed parameter, naming it."""

from __future__ import annotations

import pytest

BAD = [
    ({}, "lat"),
    ({"lat": "", "lng": 1}, "lat"),
    ({"lat": 1}, "lng"),
    ({"lat": "nan", "lng": 1}, "lat"),
    ({"lat": "inf", "lng": 1}, "lat"),
    ({"lat": "north", "lng": 1}, "lat"),
    ({"lat": 91, "lng": 1}, "lat"),
    ({"lat": 1, "lng": -180.5}, "lng"),
    ({"lat": 1, "lng": 1, "radius": 9}, "radius"),
    ({"lat": 1, "lng": 1, "radius": 50_001}, "radius"),
    ({"lat": 1, "lng": 1, "radius": "NaN"}, "radius"),
    ({"lat": 1, "lng": 1, "kinds": "boat"}, "kinds"),
    ({"lat": 1, "lng": 1, "category": ","}, "category"),
    ({"lat": 1, "lng": 1, "mini_app": ","}, "mini_app"),
    ({"lat": 1, "lng": 1, "available": "maybe"}, "available"),
    ({"lat": 1, "lng": 1, "open_now": "yes"}, "open_now"),
    ({"lat": 1, "lng": 1, "group": "kind"}, "group"),
    ({"lat": 1, "lng": 1, "sort": "name"}, "sort"),
    ({"lat": 1, "lng": 1, "scale": 0}, "scale"),
    ({"lat": 1, "lng": 1, "scale": "x"}, "scale"),
    ({"lat": 1, "lng": 1, "popularity_weight": -1}, "popularity_weight"),
    ({"lat": 1, "lng": 1, "popularity_weight": "nan"}, "popularity_weight"),
    ({"lat": 1, "lng": 1, "limit": 0}, "limit"),
    ({"lat": 1, "lng": 1, "limit": 101}, "limit"),
    ({"lat": 1, "lng": 1, "limit": "2.5"}, "limit"),
    ({"lat": 1, "lng": 1, "cursor": "!!!"}, "cursor"),
    ({"lat": 1, "lng": 1, "cursor": "AAAA"}, "cursor"),
    ({"lat": 1, "lng": 1, "explain": "please"}, "explain"),
    # Given empty: left out, a parameter takes its default; given, it says something.
    ({"lat": 1, "lng": 1, "radius": ""}, "radius"),
    ({"lat": 1, "lng": 1, "kinds": ""}, "kinds"),
    ({"lat": 1, "lng": 1, "cursor": ""}, "cursor"),
    ({"lat": 1, "lng": 1, "explain": ""}, "explain"),
    ({"lat": "", "lng": 1}, "lat"),
    # Numbers as JSON writes them, not as Python's float() reads them.
    ({"lat": 1, "lng": 1, "radius": "1_000"}, "radius"),
    ({"lat": 1, "lng": 1, "radius": "infinity"}, "radius"),
    ({"lat": 1, "lng": 1, "radius": " 100"}, "radius"),
    ({"lat": 1, "lng": 1, "limit": " 5"}, "limit"),
    ({"lat": 1, "lng": 1, "category": "caf\u0085e"}, "category"),
    ({"lat": 1, "lng": 1, "mini_app": "kfc,"}, "mini_app"),
    ({"lat": 1, "lng": 1, "kinds": "store, bike"}, "kinds"),
    ({"lat": 1, "lng": 1, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("args", "param"), BAD)
def test_every_parameter_error(client, args, param) -> None:
    response = client.get("/v1/nearby", query_string=args)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_parameter"
    assert response.json["error"]["param"] == param


def test_a_parameter_given_twice_is_refused(client) -> None:
    response = client.get("/v1/nearby?lat=1&lat=2&lng=1")
    assert response.status_code == 400 and response.json["error"]["param"] == "lat"
