"""JSON responses: orjson writes the documents Flask's own encoder writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from discovery.api.jsonio import OrjsonProvider


@dataclass
class Point:
    lat: float
    lng: float


def test_documents_read_as_flasks() -> None:
    app = Flask(__name__)
    ours, flasks = OrjsonProvider(app), DefaultJSONProvider(app)
    doc = {
        "name": "Café Ümlaut 東京",
        "score": 0.1 + 0.2,
        "big": 2**53 + 1,
        "none": None,
        "nested": [{"b": 1, "a": [True, False]}],
        "when": datetime(2026, 11, 25, 8, 30, tzinfo=UTC),
        "point": Point(60.17, 24.94),
        "price": Decimal("1.10"),
    }
    with app.app_context():
        body = ours.response(doc).get_data()
    assert json.loads(body) == json.loads(flasks.dumps(doc))
    assert list(json.loads(body)) == list(doc)  # keys keep their order
    assert "Café".encode() in body  # UTF-8, not escaped
    assert json.loads(ours.dumps(doc, indent=2)) == json.loads(body)
