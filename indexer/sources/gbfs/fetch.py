"""GBFS feed sets: reading them and their documents, versions 1.x, 2.x and 3.0.

A feed set is read from a ``gbfs.json`` discovery file (local or a URL; its
feeds are followed), a directory of feed files, or one feed file. Only the feeds
of :data:`WANTED_FEEDS` are read; the rest of a set is skipped.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from indexer.sources.rejects import GbfsError
from indexer.sources.values import as_count, parse_time

#: Feeds that carry what the index needs; the rest of a feed set is skipped.
WANTED_FEEDS = (
    "system_information",
    "station_information",
    "station_status",
    "free_bike_status",
    "vehicle_status",
    "vehicle_types",
)
#: Bounds on a fetched document: large systems publish a few MB; more is a mistake.
MAX_FEED_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT_S = 20.0

Reader = Callable[[str], bytes]


@dataclass(frozen=True, slots=True)
class Feed:
    """One GBFS document: its name, version, times and ``data`` object."""

    name: str
    version: str
    last_updated: datetime | None
    ttl_s: int | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class FeedSet:
    """The feeds of one system that an import reads, by name."""

    feeds: Mapping[str, Feed]
    lang: str | None = None

    @property
    def system_id(self) -> str | None:
        """The system id from ``system_information``, if the set has one."""
        info = self.feeds.get("system_information")
        value = info.data.get("system_id") if info else None
        return str(value) if value not in (None, "") else None

    @property
    def ttl_s(self) -> int | None:
        """The shortest ``ttl`` of the set's feeds (None when none says)."""
        ttls = [feed.ttl_s for feed in self.feeds.values() if feed.ttl_s is not None]
        return min(ttls) if ttls else None


# --- reading -----------------------------------------------------------------


def is_url(location: str) -> bool:
    """True when ``location`` is an http(s) URL rather than a path."""
    return urlsplit(location).scheme in ("http", "https")


def read_location(location: str) -> bytes:
    """Read a local file or fetch an http(s) URL, bounded in size and time."""
    if not is_url(location):
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise GbfsError(f"{location}: {exc.strerror or exc}") from exc
    request = urllib.request.Request(location, headers={"User-Agent": "nearby-indexer"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
            body: bytes = response.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise GbfsError(f"{location}: {exc}") from exc
    if len(body) > MAX_FEED_BYTES:
        raise GbfsError(f"{location}: larger than {MAX_FEED_BYTES} bytes")
    return body


def parse_json(body: bytes, where: str) -> Any:
    """Decode a JSON document, naming ``where`` on failure."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GbfsError(f"{where}: not JSON ({exc})") from exc


# --- documents ---------------------------------------------------------------


def feed_from_document(name: str, document: Any) -> Feed:
    """Wrap one decoded GBFS document; 1.x documents carry no version (read as "1.0")."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise GbfsError(f"{name}: not a GBFS document (no data object)")
    ttl = as_count(document.get("ttl"))
    return Feed(
        name=name,
        version=str(document.get("version") or "1.0"),
        last_updated=parse_time(document.get("last_updated")),
        ttl_s=ttl,
        data=document["data"],
    )


#: Keys of a document's ``data`` that tell which feed it is, in the order they are tried.
FEED_MARKERS = (
    ("vehicles", "vehicle_status"),
    ("bikes", "free_bike_status"),
    ("vehicle_types", "vehicle_types"),
    ("system_id", "system_information"),
)


def guess_feed_name(data: Mapping[str, Any]) -> str | None:
    """Which feed a document is, from its content (for files not named after their feed)."""
    for key, name in FEED_MARKERS:
        if key in data:
            return name
    stations = data.get("stations")
    if isinstance(stations, list) and stations:
        return _stations_feed_name(stations[0])
    if "feeds" in data or discovery_languages(data):
        return "gbfs"
    return None


def _stations_feed_name(first: Any) -> str:
    # station_information gives each station's place and name; station_status does not.
    station = first if isinstance(first, dict) else {}
    return "station_information" if "lat" in station or "name" in station else "station_status"


def discovery_languages(data: Mapping[str, Any]) -> list[str]:
    """Languages of a 1.x/2.x ``gbfs.json`` (``data: {lang: {feeds}}``), in file order."""
    return [key for key, value in data.items() if isinstance(value, dict) and "feeds" in value]


def discovery_feed_urls(
    data: Mapping[str, Any], lang: str | None
) -> tuple[dict[str, str], str | None]:
    """Feed URLs by name from a ``gbfs.json`` ``data`` object, and the language picked.

    3.0 lists ``feeds`` directly; 1.x/2.x list them per language, and the
    language is ``lang`` when given, else English when offered, else the first.
    """
    if isinstance(data.get("feeds"), list):
        return _feed_urls(data["feeds"]), lang
    languages = discovery_languages(data)
    if not languages:
        raise GbfsError("gbfs: the discovery file lists no feeds")
    if lang is None:
        chosen = "en" if "en" in languages else languages[0]
    elif lang in languages:
        chosen = lang
    else:
        raise GbfsError(f"gbfs: no language {lang!r} (offered: {', '.join(languages)})")
    return _feed_urls(data[chosen]["feeds"]), chosen


def _feed_urls(feeds: Any) -> dict[str, str]:
    urls: dict[str, str] = {}
    for item in feeds if isinstance(feeds, list) else []:
        if isinstance(item, dict) and item.get("name") and item.get("url"):
            urls[str(item["name"])] = str(item["url"])
    return urls


def resolve_feed(base: str, name: str, url: str) -> str:
    """Where to read feed ``name`` listed by the discovery file at ``base``.

    A local discovery file prefers a sibling ``{name}.json`` (a saved feed set
    keeps the operator's URLs), and falls back to the URL; a remote one joins
    relative URLs to its own.
    """
    if is_url(base):
        return urljoin(base, url)
    sibling = Path(base).parent / f"{name}.json"
    if sibling.is_file():
        return str(sibling)
    return url if is_url(url) else str(Path(base).parent / url)


def load_feed_set(
    location: str, *, lang: str | None = None, read: Reader = read_location
) -> FeedSet:
    """Read a feed set from a discovery file or URL, a directory, or one feed file."""
    if not is_url(location) and Path(location).is_dir():
        return _load_directory(Path(location), lang, read)
    document = parse_json(read(location), location)
    data = document.get("data") if isinstance(document, dict) else None
    name = guess_feed_name(data) if isinstance(data, dict) else None
    if name == "gbfs":
        return _load_discovery(location, data or {}, lang, read)
    feed = feed_from_document(name or Path(urlsplit(location).path).stem, document)
    if feed.name not in WANTED_FEEDS:
        raise GbfsError(f"{location}: not a GBFS feed this importer reads")
    return FeedSet(feeds={feed.name: feed}, lang=lang)


def _load_discovery(
    location: str, data: Mapping[str, Any], lang: str | None, read: Reader
) -> FeedSet:
    urls, chosen = discovery_feed_urls(data, lang)
    feeds = {}
    for name in WANTED_FEEDS:
        if name in urls:
            where = resolve_feed(location, name, urls[name])
            feeds[name] = feed_from_document(name, parse_json(read(where), where))
    if not feeds:
        raise GbfsError(f"{location}: the discovery file lists none of {', '.join(WANTED_FEEDS)}")
    return FeedSet(feeds=feeds, lang=chosen)


def _load_directory(directory: Path, lang: str | None, read: Reader) -> FeedSet:
    discovery = directory / "gbfs.json"
    if discovery.is_file():
        return load_feed_set(str(discovery), lang=lang, read=read)
    feeds = {}
    for path in sorted(directory.glob("*.json")):
        document = parse_json(read(str(path)), str(path))
        data = document.get("data") if isinstance(document, dict) else None
        name = path.stem if path.stem in WANTED_FEEDS else None
        name = name or (guess_feed_name(data) if isinstance(data, dict) else None)
        if name in WANTED_FEEDS and name not in feeds:
            feeds[name] = feed_from_document(name, document)
    if not feeds:
        raise GbfsError(f"{directory}: no GBFS feed files")
    return FeedSet(feeds=feeds, lang=lang)
