"""The user endpoints: favourites, recents, forgetting a user, and no user id in a log line."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from discovery.server.accesslog import access_fields
from indexer.model import Entity
from tests.conftest import API_KEY, Index
from tests.factories import user_traces

AUTH = {"Authorization": f"Bearer {API_KEY}"}
USER = "pat-7f3a"


def favorites(client: FlaskClient, user: str = USER) -> list[str]:
    body = client.get(f"/v1/users/{user}/favorites", headers=AUTH).json
    return [item["slug"] for item in body["favorites"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/v1/users/u/favorites/kfc"),
        ("delete", "/v1/users/u/favorites/kfc"),
        ("get", "/v1/users/u/favorites"),
        ("get", "/v1/users/u/recent"),
        ("delete", "/v1/users/u"),
    ],
)
def test_every_user_endpoint_needs_a_key(
    client: FlaskClient, entities: list[Entity], method: str, path: str
) -> None:
    assert getattr(client, method)(path).status_code == 401
    assert getattr(client, method)(path, headers={"X-API-Key": "nope"}).status_code == 403


def test_favourites_are_set_listed_and_unset(client: FlaskClient, entities: list[Entity]) -> None:
    assert favorites(client) == []
    assert client.put(f"/v1/users/{USER}/favorites/kfc", headers=AUTH).status_code == 204
    assert client.put(f"/v1/users/{USER}/favorites/alko", headers=AUTH).status_code == 204
    assert client.put(f"/v1/users/{USER}/favorites/kfc", headers=AUTH).status_code == 204
    body = client.get(f"/v1/users/{USER}/favorites", headers=AUTH).json["favorites"]
    assert [(i["slug"], i["name"], i["icon_url"]) for i in body] == [
        ("alko", "Alko", ""), ("kfc", "KFC", "https://example.com/kfc.png")
    ]  # fmt: skip
    assert all(item["added_at"] for item in body)
    assert favorites(client, "someone-else") == []
    assert client.delete(f"/v1/users/{USER}/favorites/kfc", headers=AUTH).status_code == 204
    assert client.delete(f"/v1/users/{USER}/favorites/kfc", headers=AUTH).status_code == 204
    assert favorites(client) == ["alko"]


def test_a_favourite_must_be_in_the_catalog(client: FlaskClient, entities: list[Entity]) -> None:
    response = client.put(f"/v1/users/{USER}/favorites/unlisted", headers=AUTH)
    assert response.status_code == 404
    assert response.json["error"] == {
        "code": "not_found", "message": "no mini-app 'unlisted'", "param": "slug"
    }  # fmt: skip


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("slug", ["%C2%81x", "a%2Cb", "x" * 201, "a%01"])
def test_a_bad_slug_is_400(
    client: FlaskClient, entities: list[Entity], method: str, slug: str
) -> None:
    response = getattr(client, method)(f"/v1/users/{USER}/favorites/{slug}", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["param"] == "slug"


@pytest.mark.parametrize("user", ["a b", "x" * 129, "é", "a%00b"])
def test_a_bad_user_id_is_400(client: FlaskClient, entities: list[Entity], user: str) -> None:
    response = client.get(f"/v1/users/{user}/favorites", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["param"] == "user"
    assert user not in response.json["error"]["message"]


def test_recent_lists_the_apps_of_the_users_events(
    client: FlaskClient, entities: list[Entity]
) -> None:
    now = time.time()
    events = [
        {"type": "open", "entity_id": "u:0", "user": USER, "at": now - 50},  # kfc
        {"type": "open", "entity_id": "u:2", "user": USER, "at": now - 40},  # unlisted
        {"type": "open", "entity_id": "u:3", "user": USER, "at": now - 30},  # no mini-app
        {"type": "order", "mini_app": "alko", "user": USER, "at": now - 45},
        {"type": "open", "entity_id": "u:4", "user": USER, "at": now - 60},  # kfc, older
        {"type": "open", "entity_id": "u:1", "user": "other", "at": now},
    ]
    assert client.post("/v1/events", json=events, headers=AUTH).json["applied"] == 6
    recent = client.get(f"/v1/users/{USER}/recent", headers=AUTH).json["recent"]
    assert [(i["slug"], i["name"]) for i in recent] == [
        ("unlisted", None), ("alko", "Alko"), ("kfc", "KFC")
    ]  # fmt: skip
    assert client.get("/v1/users/nobody/recent", headers=AUTH).json == {"recent": []}


def test_forgetting_a_user_leaves_nothing(
    client: FlaskClient, entities: list[Entity], index: Index
) -> None:
    now = time.time()
    client.put(f"/v1/users/{USER}/favorites/kfc", headers=AUTH)
    events = [{"type": "open", "entity_id": f"u:{n}", "user": USER, "at": now - n}
              for n in range(8)]  # fmt: skip
    events.append({"type": "open", "entity_id": "u:0", "user": "keeper", "at": now})
    client.post("/v1/events", json=events, headers=AUTH)
    client.put("/v1/users/keeper/favorites/alko", headers=AUTH)
    assert user_traces(index, USER) != []
    assert client.delete(f"/v1/users/{USER}", headers=AUTH).status_code == 204
    assert user_traces(index, USER) == []
    assert favorites(client) == []
    assert client.get(f"/v1/users/{USER}/recent", headers=AUTH).json == {"recent": []}
    # The others stay, and so do the forgotten user's events, anonymous, in the masses.
    assert favorites(client, "keeper") == ["alko"]
    with index.conn.cursor() as cur:
        cur.execute("SELECT count(*), count(user_id) FROM usage_events")
        assert cur.fetchone() == (9, 1)
    index.conn.commit()


def test_user_paths_are_logged_with_the_id_redacted(app: Flask, entities: list[Entity]) -> None:
    paths = {
        ("GET", f"/v1/users/{USER}/favorites"): "/v1/users/[redacted]/favorites",
        ("PUT", f"/v1/users/{USER}/favorites/kfc"): "/v1/users/[redacted]/favorites/kfc",
        ("DELETE", f"/v1/users/{USER}"): "/v1/users/[redacted]",
        ("GET", "/v1/mini-apps/kfc"): "/v1/mini-apps/kfc",
    }
    statuses: list[str] = []

    def start(status: str, headers: list, *_: Any) -> None:
        statuses.insert(0, status)

    for (method, path), logged in paths.items():
        environ = EnvironBuilder(path=path, method=method, headers=AUTH).get_environ()
        environ["RAW_URI"] = path + "?x=1"
        body = b"".join(app.wsgi_app(environ, start))
        assert statuses[0][:3] in ("200", "204"), body
        answer = type("Answer", (), {"status": statuses[0], "sent": len(body)})()
        fields = access_fields(answer, environ, timedelta(milliseconds=1))
        assert fields["path"] == logged
        assert USER not in repr(fields) and USER not in environ["RAW_URI"]
