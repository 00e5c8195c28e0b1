"""The API fuzzed against its own OpenAPI document, over real PostGIS and Redis.

schemathesis reads /openapi.json and generates requests for every operation,
valid ones and invalid ones (the write endpoints with the test API key),
against the app over an index holding a few stores, bikes and chargers; half
of the valid requests are steered onto them (their ids, points near them) so
that answers with results (as JSON and as GeoJSON), entities found and pushes
applied are checked too.
Every answer is checked: never a server error; status, media type, headers and
body as documented; data the document calls valid accepted, data it calls
invalid refused. Every failure is collected and the run goes on; then the test
fails listing each kind of failure once, with a request that shows it.

The run is seeded (repeatable); NEARBY_FUZZ_SEED picks another seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi import checks as openapi_checks

from indexer.model import Entity
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.writer import write_entities
from indexer.text import query_problem
from tests.conftest import API_KEY, Index
from tests.factories import clear_catalog

#: Requests per operation: (valid, invalid). Generating a request costs far more
#: than answering it, a body most: the budget leans to the cheaper operations.
BUDGET = {
    "GET /v1/nearby": (2200, 1000),
    # An invalid id (one with NUL) is one schemathesis does not put in a path.
    "GET /v1/entities/{id}": (700, 0),
    "GET /v1/mini-apps/{slug}": (250, 100),
    "GET /v1/suggest": (300, 120),
    "GET /v1/discover": (250, 100),
    "PUT /v1/users/{user}/favorites/{slug}": (120, 40),
    "DELETE /v1/users/{user}/favorites/{slug}": (60, 20),
    "GET /v1/users/{user}/favorites": (60, 20),
    "GET /v1/users/{user}/recent": (60, 20),
    "DELETE /v1/users/{user}": (60, 20),
    "POST /v1/events": (200, 100),
    "POST /v1/positions": (450, 200),
    "POST /v1/availability": (300, 150),
    # Nothing to vary: one request each.
    "GET /healthz": (1, 0),
    "GET /readyz": (1, 0),
}
SEED = int(os.environ.get("NEARBY_FUZZ_SEED", "20261203"))

CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.positive_data_acceptance,
]

#: Where the planted entities are: (0, 0), where generated coordinates often
#: fall anyway, and central Helsinki.
SPOTS = ((0.0, 0.0), (0.001, -0.001), (60.17, 24.94), (60.171, 24.941))
LIVE_IDS = [f"fuzz:{kind}-{n}" for n in range(len(SPOTS)) for kind in ("bike", "charger")]
IDS = [*LIVE_IDS, *(f"fuzz:store-{n}" for n in range(len(SPOTS)))]


def planted() -> list[Entity]:
    """A store, a bike and a charger at each spot."""
    now = datetime.now(UTC)
    entities = []
    for n, (lat, lng) in enumerate(SPOTS):
        entities += [
            Entity(id=f"fuzz:store-{n}", kind="store", lat=lat, lng=lng, name=f"Shop {n}",
                   category="cafe", mini_app="kfc", popularity=float(n), opening_hours="24/7"),
            Entity(id=f"fuzz:bike-{n}", kind="bike", lat=lat + 1e-4, lng=lng, category="free_bike",
                   mini_app="divvy", available=1, capacity=1, seen_at=now),
            Entity(id=f"fuzz:charger-{n}", kind="charger", lat=lat, lng=lng + 1e-4,
                   category="ev_charger", available=2, capacity=4, seen_at=now),
        ]  # fmt: skip
    return entities


@dataclass
class Findings:
    """What the run saw: requests, answers that carried data, and failures by kind."""

    requests: int = 0
    with_results: int = 0
    found: int = 0
    applied: int = 0
    favorites: int = 0
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def saw(self, label: str, response: Any) -> None:
        """Count one answer, and whether it carried planted data."""
        self.requests += 1
        self.favorites += label.startswith("PUT") and response.status_code == 204
        if response.status_code != 200:
            return
        body = response.json()
        if label == "GET /v1/nearby":
            self.with_results += bool(body.get("results") or body.get("features"))
        elif label == "GET /v1/entities/{id}":
            self.found += 1
        elif label.startswith("POST"):
            self.applied += body["applied"]

    def add(self, label: str, failure: Failure, response: Any, example: str) -> None:
        """One failure of one request; its kind names the status and the parameter blamed."""
        blamed = error_param(response)
        answer = f"{response.status_code}" + (f" naming {blamed}" if blamed else "")
        first_line = (failure.message.splitlines() or [""])[0][:200]
        kind = (label, f"{failure.title} ({answer}): {first_line}")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.examples.setdefault(kind, example[:1000])

    def report(self) -> str:
        """Each kind of failure, how often, and one request that shows it."""
        lines = [f"{len(self.examples)} kinds of failure in {self.requests} requests:"]
        for kind, example in self.examples.items():
            lines.append(f"- {kind[0]}: {kind[1]} ({self.counts[kind]}x)\n    {example}")
        return "\n".join(lines)


def error_param(response: Any) -> str | None:
    """The parameter an error answer names, if any."""
    try:
        return response.json()["error"]["param"]
    except (ValueError, KeyError, TypeError):
        return None


def checks_for(case: Any) -> list[Any]:
    """The checks that apply to ``case``.

    Three promises no schema can state are left out: that a cursor is one the
    server signed (any other is refused, valid as its text may be), that a ``q``
    holds a letter or digit once normalised, and that a pushed item is refused
    alone, in a 200 (invalid items are not a 400).
    """
    leave_out: set[Any] = set()
    if case.query and "cursor" in case.query:
        leave_out.add(openapi_checks.positive_data_acceptance)
    if case.query and query_problem(str(case.query.get("q", "a"))):
        leave_out.add(openapi_checks.positive_data_acceptance)
    if case.path.startswith("/v1/mini-apps/") and needs_point(case.query or {}):
        # Nor that lat and lng go together, and radius, limit and cursor need them.
        leave_out.add(openapi_checks.positive_data_acceptance)
    if case.method.upper() == "POST":
        leave_out.add(openapi_checks.negative_data_rejection)
    return [check for check in CHECKS if check not in leave_out]


def needs_point(query: dict[str, Any]) -> bool:
    """A mini-app query with one of lat and lng, or with branch parameters but no point."""
    point = {"lat", "lng"} & set(query)
    return len(point) == 1 or (not point and bool({"radius", "limit", "cursor"} & set(query)))


def steer_catalog(case: Any, label: str, n: int) -> bool:
    """Point a valid case of the catalog's, the users' or the events' operations at the
    planted mini-app and entities; False for another operation."""
    if label == "GET /v1/mini-apps/{slug}":
        case.path_parameters["slug"] = ("kfc", "divvy")[n % 2]
        if "lat" in case.query and "lng" in case.query:
            lat, lng = SPOTS[n % len(SPOTS)]
            case.query["lat"] = lat + float(case.query["lat"]) * 1e-5
            case.query["lng"] = lng + float(case.query["lng"]) * 1e-5
    elif label.startswith(("PUT", "DELETE")) and "slug" in case.path_parameters:
        case.path_parameters["slug"] = "kfc"
    elif label == "POST /v1/events":
        for k, event in enumerate(case.body if isinstance(case.body, list) else []):
            if isinstance(event, dict) and "entity_id" in event:
                event["entity_id"] = IDS[(n + k) % len(IDS)]
            elif isinstance(event, dict) and "mini_app" in event:
                event["mini_app"] = "kfc"
    else:
        return False
    return True


def steer(case: Any, label: str, n: int) -> None:
    """Point a valid case at the planted entities, keeping it valid."""
    if steer_catalog(case, label, n):
        return
    if label == "GET /v1/entities/{id}":
        case.path_parameters["id"] = IDS[n % len(IDS)]
    elif label == "GET /v1/suggest":  # words the planted entities carry, near them
        lat, lng = SPOTS[n % len(SPOTS)]
        case.query.update(lat=lat, lng=lng, q=("sho", "Shop 2", "caf", "kf")[n % 4])
    elif label == "GET /v1/nearby":
        lat, lng = SPOTS[n % len(SPOTS)]
        # Within about 100 m of the spot; the generated values still vary it.
        case.query["lat"] = lat + float(case.query["lat"]) * 1e-5
        case.query["lng"] = lng + float(case.query["lng"]) * 1e-5
        if n % 2:  # the same answer as a GeoJSON FeatureCollection
            case.headers = {**(case.headers or {}), "Accept": "application/geo+json"}
    elif label.startswith("POST"):
        items = case.body.get("items") if isinstance(case.body, dict) else case.body
        for k, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict):
                item["id"] = LIVE_IDS[(n + k) % len(LIVE_IDS)]


def fuzz(operation: Any, mode: GenerationMode, examples: int, findings: Findings) -> None:
    """Send ``examples`` generated requests of ``mode`` to ``operation``, collecting failures."""
    if not examples:
        return
    label = f"{operation.method.upper()} {operation.path}"
    writes = ("POST", "PUT", "DELETE", "GET /v1/users")
    headers = {"Authorization": f"Bearer {API_KEY}"} if label.startswith(writes) else {}
    numbers = count()

    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: Any) -> None:
        n = next(numbers)
        if mode is GenerationMode.POSITIVE and n % 2:
            steer(case, label, n // 2)
        response = case.call()
        findings.saw(label, response)
        try:
            case.validate_response(response, checks=checks_for(case), headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                findings.add(label, failure, response, case.as_curl_command(headers=headers))
        except Failure as failure:
            findings.add(label, failure, response, case.as_curl_command(headers=headers))

    run()


@pytest.fixture
def schema(app: Flask, index: Index) -> Iterator[Any]:
    """The app's own document, loaded by schemathesis, over the planted index."""
    write_entities(index.conn, index.hot, "fuzz", planted())
    clear_catalog(index)
    write_catalog(index.conn, [MiniApp("kfc", "KFC", "https://example.com/kfc.png")], replace=True)
    publish_catalog(index.hot.client, index.settings.redis_prefix, read_catalog(index.conn))
    index.conn.commit()
    yield schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_every_operation_answers_as_documented(schema: Any) -> None:
    findings = Findings()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == set(BUDGET)
    for operation in operations:
        valid, invalid = BUDGET[f"{operation.method.upper()} {operation.path}"]
        fuzz(operation, GenerationMode.POSITIVE, valid, findings)
        fuzz(operation, GenerationMode.NEGATIVE, invalid, findings)
    assert not findings.examples, findings.report()
    assert findings.requests >= 5000
    # The planted data was reached: results, entities and pushes applied were checked.
    assert min(findings.with_results, findings.found, findings.applied, findings.favorites) > 0, (
        findings
    )
