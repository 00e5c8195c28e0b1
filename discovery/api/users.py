"""The users' mini-apps: favourites, recents, and forgetting a user.

``PUT``/``DELETE /v1/users/<user>/favorites/<slug>``, ``GET
/v1/users/<user>/favorites``, ``GET /v1/users/<user>/recent`` and ``DELETE
/v1/users/<user>``. The platform calls them on its users' behalf: each needs an
API key, as the pushes do. A user id is opaque (1-128 of ``A-Za-z0-9._~:@+=-``)
and is never logged: the request log writes these paths with it redacted
(:mod:`discovery.api.requestlog`).
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, jsonify

from discovery.api.catalog_cache import catalog_of
from discovery.api.current import services
from discovery.api.miniapp_params import SLUG_PATTERN
from discovery.api.push import require_key
from indexer.errors import BadInput, NotFound
from indexer.store.events import USER_PATTERN
from indexer.store.users import add_favorite, favorites, forget_user, recents, remove_favorite

bp = Blueprint("users", __name__, url_prefix="/v1/users")

_USER = re.compile(USER_PATTERN)
_SLUG = re.compile(SLUG_PATTERN)


def checked_user(user: str) -> str:
    """The user id of the path; BadInput when it is not one (never echoed back)."""
    require_key()
    if not _USER.fullmatch(user):
        raise BadInput("user must be 1-128 letters, digits or ._~:@+=-", "user")
    return user


def checked_slug(slug: str) -> str:
    """The slug of the path; BadInput when no mini-app could have it."""
    if not _SLUG.fullmatch(slug):
        raise BadInput("slug must be 1-200 characters, no control characters, commas or /", "slug")
    return slug


def no_content() -> Response:
    """An empty 204 answer."""
    return Response(status=204)


@bp.put("/<user>/favorites/<slug>")
def put_favorite(user: str, slug: str) -> Response:
    """Make a mini-app of the catalog one of the user's favourites (204, also when it was)."""
    user, slug = checked_user(user), checked_slug(slug)
    svc = services()
    if slug not in catalog_of(svc).current().apps:
        raise NotFound(f"no mini-app {slug[:200]!r}", "slug")
    with svc.postgis() as conn:
        add_favorite(conn, user, slug)
    return no_content()


@bp.delete("/<user>/favorites/<slug>")
def delete_favorite(user: str, slug: str) -> Response:
    """Unset a favourite (204, also when it was not one)."""
    user, slug = checked_user(user), checked_slug(slug)
    with services().postgis() as conn:
        remove_favorite(conn, user, slug)
    return no_content()


@bp.get("/<user>/favorites")
def get_favorites(user: str) -> Response:
    """The user's favourites, the last added first."""
    user = checked_user(user)
    with services().postgis() as conn:
        return jsonify({"favorites": favorites(conn, user)})


@bp.get("/<user>/recent")
def get_recent(user: str) -> Response:
    """The last 20 distinct mini-apps the user's events named, newest first."""
    user = checked_user(user)
    with services().postgis() as conn:
        return jsonify({"recent": recents(conn, user)})


@bp.delete("/<user>")
def delete_user(user: str) -> Response:
    """Forget everything about the user: favourites, recents, their events' user field."""
    user = checked_user(user)
    with services().postgis() as conn:
        forget_user(conn, user)
    return no_content()


def init_app(app: Flask) -> None:
    """Register the user endpoints."""
    app.register_blueprint(bp)
