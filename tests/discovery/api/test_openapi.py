"""The OpenAPI document validates, and the answers match it."""

from __future__ import annotations

import jsonschema
from openapi_spec_validator import validate

from indexer.model import Entity
from indexer.store.writer import write_entities


def schema_for(document: dict, path: str, status: str, media: str = "application/json") -> dict:
    """The response schema, resolvable against the document's components."""
    operation = document["paths"][path]["get"]
    ref = operation["responses"][status]["content"][media]["schema"]
    return {**ref, "components": document["components"]}


def test_document_validates(client) -> None:
    document = client.get("/openapi.json").json
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert {
        "/v1/nearby",
        "/v1/entities/{id}",
        "/healthz",
        "/readyz",
        "/v1/positions",
        "/v1/availability",
    } <= set(document["paths"])


def test_answers_match_the_document(index, client) -> None:
    write_entities(
        index.conn,
        index.hot,
        "t",
        [
            Entity(id="t:1", kind="store", lat=60.17, lng=24.94, mini_app="a", popularity=3.0),
            Entity(
                id="t:2", kind="bike", lat=60.171, lng=24.94, mini_app="b", available=1, capacity=2
            ),
        ],
    )
    document = client.get("/openapi.json").json
    checks = [
        ("/v1/nearby?lat=60.17&lng=24.94&explain=true", "/v1/nearby", "200", {}),
        ("/v1/nearby?lat=60.17&lng=24.94&group=mini_app&limit=1", "/v1/nearby", "200", {}),
        ("/v1/nearby?lat=60.17", "/v1/nearby", "400", {}),
        ("/v1/entities/t:1", "/v1/entities/{id}", "200", {}),
        ("/v1/entities/t:9", "/v1/entities/{id}", "404", {}),
    ]
    for url, path, status, headers in checks:
        response = client.get(url, headers=headers)
        assert str(response.status_code) == status, url
        jsonschema.validate(response.json, schema_for(document, path, status))
    geo = client.get("/v1/nearby?lat=60.17&lng=24.94", headers={"Accept": "application/geo+json"})
    jsonschema.validate(geo.json, schema_for(document, "/v1/nearby", "200", "application/geo+json"))


#: Values of the text parameters of GET /v1/nearby, valid and not.
TEXT_SAMPLES = {
    "kinds": ["store", "bike,charger", "store,store", "store, bike", "boat", "store,", ""],
    "category": ["cafe", "cafe,mart", "Robert's Coffee", " cafe", "a\tb", "a\x85b", "a,,b", ""],
    "mini_app": ["kfc", "Q38076", "k\u00e9", "kfc,", "\x00", ""],
    "available": ["true", "false", "1", "0", "True", " true", "yes", ""],
    "group": ["mini_app", "kind", ""],
    "sort": ["score", "distance", "popularity", "Score", "popularity ", ""],
}


def test_the_document_and_the_server_agree_on_text_parameters(client) -> None:
    # A value the document's schema takes gets a 200; any other a 400 naming it.
    document = client.get("/openapi.json").json
    schemas = {p["name"]: p["schema"] for p in document["paths"]["/v1/nearby"]["get"]["parameters"]}
    for name, values in TEXT_SAMPLES.items():
        for value in values:
            documented = jsonschema.Draft202012Validator(schemas[name]).is_valid(value)
            response = client.get("/v1/nearby", query_string={"lat": 1, "lng": 1, name: value})
            expected = 200 if documented and value != "" else 400
            assert response.status_code == expected, (name, value)
            if expected == 400:
                assert response.json["error"]["param"] == name
