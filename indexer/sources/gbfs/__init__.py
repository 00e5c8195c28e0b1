"""GBFS feeds (bike shares) to entities: versions 1.x, 2.x and 3.0.

:mod:`~indexer.sources.gbfs.fetch` reads a feed set (a discovery file or URL, a
directory, or one feed file); :mod:`~indexer.sources.gbfs.entities` turns its
stations and free-floating vehicles into ``bike`` entities. The names here are
what an importer needs of both.
"""

from indexer.sources.gbfs.entities import feed_set_to_entities
from indexer.sources.gbfs.fetch import Feed, FeedSet, load_feed_set, parse_json, read_location
from indexer.sources.rejects import GbfsError, Parsed, Rejected

__all__ = [
    "Feed",
    "FeedSet",
    "GbfsError",
    "Parsed",
    "Rejected",
    "feed_set_to_entities",
    "load_feed_set",
    "parse_json",
    "read_location",
]
