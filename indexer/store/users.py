"""What we keep about a platform's users: favourite mini-apps, recent ones, their events.

A user id is opaque text the platform chooses; it is never logged. Favourites
are set and unset one mini-app at a time; recents are the last
:data:`~indexer.store.usage.RECENTS_KEPT` distinct mini-apps the user's events
named (kept by :func:`indexer.store.usage.apply_usage`). Forgetting a user
deletes both and clears the user field of their stored events (the events
stay, anonymous, in the masses).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from indexer.store.usage import RECENTS_KEPT

FAVORITES = """
SELECT f.slug, m.name, m.icon_url, f.added_at FROM user_favorites f
LEFT JOIN mini_apps m USING (slug)
WHERE f.user_id = %s ORDER BY f.added_at DESC, f.slug
"""
RECENTS = f"""
SELECT r.slug, m.name, m.icon_url, r.at FROM user_recents r
LEFT JOIN mini_apps m USING (slug)
WHERE r.user_id = %s ORDER BY r.at DESC, r.slug LIMIT {RECENTS_KEPT}
"""

#: Both of a user's lists in one statement (the pull-down screen's): recents ("r") then
#: favourites ("f", the last added at most: its parameters are the user, the user
#: and that count), each in its order (the time, then the slug).
SCREEN_LISTS = f"""
SELECT 'r' AS list, r.* FROM ({RECENTS}) r
UNION ALL
SELECT 'f', f.* FROM ({FAVORITES} LIMIT %s) f
ORDER BY list DESC, at DESC, slug
"""


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a user removed."""

    favorites: int
    recents: int
    events: int


def listed(rows: list[tuple[Any, ...]], when: str) -> list[dict[str, Any]]:
    """Rows of (slug, name, icon_url, time) as the API lists them (name and icon null
    for a mini-app the catalog no longer holds)."""
    return [
        {"slug": slug, "name": name, "icon_url": icon_url,
         when: moment.isoformat() if isinstance(moment, datetime) else moment}
        for slug, name, icon_url, moment in rows
    ]  # fmt: skip


def add_favorite(conn: psycopg.Connection, user: str, slug: str) -> bool:
    """Make ``slug`` one of the user's favourites; False when it already was."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO user_favorites (user_id, slug) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (user, slug),
        )
        return cur.rowcount == 1


def remove_favorite(conn: psycopg.Connection, user: str, slug: str) -> bool:
    """Unset a favourite; False when it was not one."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM user_favorites WHERE user_id = %s AND slug = %s", (user, slug))
        return cur.rowcount == 1


def favorites(conn: psycopg.Connection, user: str) -> list[dict[str, Any]]:
    """The user's favourites, the last added first (ties by slug)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(FAVORITES, (user,))
        return listed(cur.fetchall(), "added_at")


def recents(conn: psycopg.Connection, user: str) -> list[dict[str, Any]]:
    """The user's recent mini-apps, newest first (ties by slug)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(RECENTS, (user,))
        return listed(cur.fetchall(), "at")


def screen_lists(
    conn: psycopg.Connection, user: str, most_favorites: int
) -> dict[str, list[dict[str, Any]]]:
    """The user's recents and (the ``most_favorites`` last added) favourites, as
    :func:`recents` and :func:`favorites` list them, read in one statement."""
    with conn.cursor() as cur:
        cur.execute(SCREEN_LISTS, (user, user, most_favorites))
        rows = cur.fetchall()
    return {
        "recent": listed([row[1:] for row in rows if row[0] == "r"], "at"),
        "favorites": listed([row[1:] for row in rows if row[0] == "f"], "added_at"),
    }


def forget_user(conn: psycopg.Connection, user: str) -> Forgotten:
    """Delete the user's favourites and recents and clear their events' user, at once."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM user_favorites WHERE user_id = %s", (user,))
        favorites_removed = cur.rowcount
        cur.execute("DELETE FROM user_recents WHERE user_id = %s", (user,))
        recents_removed = cur.rowcount
        cur.execute("UPDATE usage_events SET user_id = NULL WHERE user_id = %s", (user,))
        return Forgotten(favorites_removed, recents_removed, cur.rowcount)
