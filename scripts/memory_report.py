"""Where the hot index's Redis memory goes: bytes per entity by key family.

    python -m scripts.memory_report [--prefix nearby]

Reads REDIS_URL and the deployment's prefix (``--prefix``, else
NEARBY_REDIS_PREFIX, else ``nearby``).  Every key under the prefix and layout
(:mod:`indexer.hot.layout`) is measured with ``MEMORY USAGE key SAMPLES 0``
(every element counted, not a sample: exact up to the allocator's rounding as
Redis estimates it) and ``OBJECT ENCODING``, then summed per family: loc, the
cell sets of each resolution, the tops hashes, the members hash, the display
documents, the text entries (x) and the posting sets (w), the generation's
control keys, anything else.  The sizes of the stored values (members,
documents, text entries, loc entries) are read in full with HSCAN.
A reading of a live index sees it as it is while other writers change it.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from indexer.hot import layout
from indexer.model import INDEX_RESOLUTIONS

#: Keys measured per pipeline round trip.
BATCH = 1000
#: The configuration that decides a key's encoding.
THRESHOLDS = (
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    # Sets are listpacks from Redis 7.2 on (an older server has no such setting).
    "set-max-listpack-entries",
)
#: The families in the order the table prints them.
FAMILIES = (
    "loc",
    *(f"z r{res}" for res in INDEX_RESOLUTIONS),
    "tops",
    "m",
    "d",
    "x",
    "w",
    "wc",
    "k",
    "a",
    "b",
    "control",
    "other",
)
#: The keys of the index outside any generation (the last is the healing lease's).
CONTROL = (layout.GEN, layout.BUILDING, layout.COUNTER, "heal")
#: The families whose stored values the report sizes.
VALUE_FAMILIES = ("loc", "m", "d", "x")
#: A family's command for its element count.
LENGTH = {"z": "ZCARD", "hash": "HLEN", "set": "SCARD"}


#: The families of the posting sets: a name's term's (sorted), a carrier term's; and
#: of the branches sets (GEO sets: sorted).
NAME_SETS, CARRIER_SETS, BRANCH_SETS = "w", "wc", "b"
#: Each family of sets or sorted sets that is not a cell set's, by the kind of its keys.
SET_KINDS = {NAME_SETS: "zset", CARRIER_SETS: "set", BRANCH_SETS: "zset"}

#: A group's hashes by name, and the family of each.
GROUP_HASHES = {
    layout.MEMBERS: layout.MEMBERS,
    layout.DOCUMENTS: layout.DOCUMENTS,
    layout.TEXT: layout.TEXT,
    layout.CARRIERS: layout.CARRIERS,
    layout.BRANCH_HASH: layout.BRANCH_HASH,
    **{layout.tops_field(res): "tops" for res in INDEX_RESOLUTIONS},
}


def family_of(rest: str) -> str:
    """The family of a key, given what follows ``{prefix}:{layout}:``."""
    words = rest.split(":")
    last = words[-1]
    if len(words) == 1:
        return "control" if last in CONTROL else "other"
    if len(words) == 2:
        return "loc" if last == layout.LOC else "other"
    if words[-2] + ":" == layout.CELL_SET:
        return f"z r{int(last[1], 16)}"
    if len(words) >= 4 and words[2] + ":" in (layout.POSTINGS, layout.BRANCHES):
        return set_family(words[2] + ":", words[3])
    return GROUP_HASHES.get(last, "other")


def set_family(kind: str, name: str) -> str:
    """The family of a posting set (``kind`` POSTINGS) or a branches set, by its name."""
    if kind == layout.BRANCHES:
        return BRANCH_SETS
    return CARRIER_SETS if name.startswith(layout.CARRIER) else NAME_SETS


@dataclass
class Family:
    """What the keys of one family hold: their count, bytes, elements and encodings."""

    keys: int = 0
    bytes: int = 0
    elements: int = 0
    encodings: Counter[str] = field(default_factory=Counter)
    #: Keys in a non-listpack encoding though their element count is within the threshold:
    #: a value too long for a listpack put them there.
    by_value: int = 0


@dataclass
class Values:
    """The total length and count of the values (and fields) of a family's hashes."""

    count: int = 0
    field_bytes: int = 0
    value_bytes: int = 0

    def add(self, name: bytes, value: bytes) -> None:
        """Count one field and its value."""
        self.count += 1
        self.field_bytes += len(name)
        self.value_bytes += len(value)

    def mean(self) -> float:
        """The mean value length in bytes."""
        return self.value_bytes / self.count if self.count else 0.0


@dataclass
class Report:
    """A reading of one index: its families, value sizes, entity count and configuration."""

    prefix: str
    families: dict[str, Family]
    values: dict[str, Values]
    entities: int
    config: dict[str, int]

    @property
    def total(self) -> int:
        """Bytes of every key of the index."""
        return sum(family.bytes for family in self.families.values())


def keys_of(client: redis.Redis, prefix: str) -> Iterator[bytes]:
    """Every key of the index under ``prefix`` (the layout named in it)."""
    yield from client.scan_iter(match=prefix + ":*", count=BATCH)


def batches(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """Lists of up to ``size`` items."""
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def config_of(client: redis.Redis) -> dict[str, int]:
    """The encoding thresholds the server runs with."""
    found: dict[str, int] = {}
    for name in THRESHOLDS:
        for key, value in client.config_get(name).items():
            found[key.decode() if isinstance(key, bytes) else key] = int(value)
    return found


def length_command(family: str) -> str:
    """The command counting a family's elements (control and other keys: none)."""
    if family.startswith("z ") or SET_KINDS.get(family) == "zset":
        return LENGTH["z"]
    if family in SET_KINDS:
        return LENGTH["set"]
    return LENGTH["hash"] if family in ("loc", "tops", "m", "d", "x", "k", "a") else ""


def measure_batch(client: redis.Redis, start: int, keys: list[bytes]) -> list[tuple[Any, ...]]:
    """(family, bytes, encoding, elements) of each key, in one round trip."""
    pipe = client.pipeline(transaction=False)
    families = [family_of(key[start:].decode()) for key in keys]
    for key, family in zip(keys, families, strict=True):
        pipe.execute_command("MEMORY USAGE", key, "SAMPLES", "0")
        pipe.execute_command("OBJECT ENCODING", key)
        command = length_command(family)
        if command:
            pipe.execute_command(command, key)
        else:
            pipe.exists(key)
    replies = pipe.execute()
    return [
        (family, int(replies[3 * i] or 0), (replies[3 * i + 1] or b"?").decode(),
         int(replies[3 * i + 2] or 0) if length_command(family) else 0)
        for i, family in enumerate(families)
    ]  # fmt: skip


def listpack_limit(family: str, config: dict[str, int]) -> int:
    """The element count up to which a family's keys may stay listpacks."""
    kind = "zset" if family.startswith("z ") else SET_KINDS.get(family, "hash")
    return config.get(f"{kind}-max-listpack-entries", 0)


def measure_keys(client: redis.Redis, prefix: str, config: dict[str, int]) -> dict[str, Family]:
    """Every key of the index measured, summed per family."""
    families = {name: Family() for name in FAMILIES}
    start = len(prefix) + 1
    for keys in batches(keys_of(client, prefix), BATCH):
        for name, size, encoding, elements in measure_batch(client, start, keys):
            family = families[name]
            family.keys += 1
            family.bytes += size
            family.elements += elements
            family.encodings[encoding] += 1
            if encoding != "listpack" and 0 < elements <= listpack_limit(name, config):
                family.by_value += 1
    return families


def hash_keys(client: redis.Redis, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(family, key) of the index's loc, member and document hashes."""
    start = len(prefix) + 1
    for key in keys_of(client, prefix):
        family = family_of(key[start:].decode())
        if family in VALUE_FAMILIES:
            yield family, key


def measure_values(client: redis.Redis, prefix: str) -> tuple[dict[str, Values], int]:
    """The value sizes of loc, the members and the documents; the entity count (loc
    entries that place their id: a tombstone holds the revision alone)."""
    values = {name: Values() for name in VALUE_FAMILIES}
    entities = 0
    for name, key in hash_keys(client, prefix):
        sizes = values[name]
        for field_name, value in client.hscan_iter(key, count=BATCH):
            sizes.add(field_name, value)
            if name == "loc" and b" " in value:
                entities += 1
    return values, entities


def read(client: redis.Redis, deployment: str) -> Report:
    """Measure the index of a deployment's prefix (``client`` must leave replies as bytes)."""
    prefix = layout.layout_prefix(deployment)
    config = config_of(client)
    families = measure_keys(client, prefix, config)
    values, entities = measure_values(client, prefix)
    return Report(prefix, families, values, entities, config)


def per_entity(count: float, entities: int) -> float:
    """``count`` divided among the entities (0 when there are none)."""
    return count / entities if entities else 0.0


def family_row(name: str, family: Family, report: Report) -> str:
    """One family's line of the table."""
    share = family.bytes / report.total if report.total else 0.0
    encodings = ", ".join(f"{enc} {count:,}" for enc, count in family.encodings.most_common())
    if family.by_value:
        encodings += f" ({family.by_value:,} by value length)"
    return (
        f"{name:<9}{family.keys:>10,}{per_entity(family.elements, report.entities):>9.2f}"
        f"{per_entity(family.bytes, report.entities):>10.0f}{share:>7.1%}  {encodings}"
    )


def value_row(name: str, sizes: Values, report: Report) -> str:
    """One line of the value sizes."""
    field_mean = sizes.field_bytes / sizes.count if sizes.count else 0.0
    return (
        f"{name:<9}{sizes.count:>10,}{per_entity(sizes.count, report.entities):>9.2f}"
        f"{field_mean:>10.1f}{sizes.mean():>10.1f}"
    )


def format_report(report: Report) -> str:
    """The breakdown as a table: bytes per entity by family, then the value sizes."""
    lines = [
        f"hot index {report.prefix}: {report.entities:,} entities, {report.total:,} bytes"
        f" ({per_entity(report.total, report.entities):.0f} B/entity, MEMORY USAGE SAMPLES 0)",
        f"{'family':<9}{'keys':>10}{'elem/ent':>9}{'B/entity':>10}{'share':>7}  encodings",
    ]
    lines += [
        family_row(name, family, report) for name, family in report.families.items() if family.keys
    ]
    lines += [
        "",
        f"{'values':<9}{'count':>10}{'per ent':>9}{'field B':>10}{'value B':>10}",
        *(value_row(name, sizes, report) for name, sizes in report.values.items()),
        "",
        "thresholds: " + ", ".join(f"{name} {value}" for name, value in report.config.items()),
    ]
    return "\n".join(lines)


def used_memory(client: redis.Redis) -> int:
    """The server's used_memory (every key of every user, and its own overhead)."""
    return int(client.info("memory")["used_memory"])


def key_bytes(client: redis.Redis, key: str) -> int:
    """MEMORY USAGE of one key, every element counted."""
    return int(client.execute_command("MEMORY USAGE", key, "SAMPLES", "0") or 0)


def main(argv: list[str] | None = None) -> int:
    """Print the breakdown of one deployment's hot index."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default=os.environ.get("NEARBY_REDIS_PREFIX", "nearby"))
    args = parser.parse_args(argv)
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    print(format_report(read(client, args.prefix)))
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
