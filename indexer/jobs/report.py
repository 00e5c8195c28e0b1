"""What an import reports: the one-line summary, and the CSV of rejected records."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from indexer.progress import format_count


@dataclass(frozen=True)
class ImportSummary:
    """What an import did, for the one-line summary."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    reduced: int = 0
    seconds: float = 0.0
    #: Redis held no generation to apply the import to (a rebuild mends it).
    no_generation: bool = False

    def line(self) -> str:
        """``imported N · updated N · unchanged N · deleted N · rejected N in S s``."""
        parts = [
            f"imported {format_count(self.inserted)}",
            f"updated {format_count(self.updated)}",
            f"unchanged {format_count(self.unchanged)}",
            f"deleted {format_count(self.deleted)}",
            f"rejected {format_count(self.rejected)}",
        ]
        if self.reduced:
            parts.append(f"{format_count(self.reduced)} shapes as points")
        return " · ".join(parts) + f" in {self.seconds:.1f} s"

    def rows(self) -> dict[str, int]:
        """Rows by outcome, as :mod:`indexer.telemetry` records them."""
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "rejected": self.rejected,
        }

    def __add__(self, other: ImportSummary) -> ImportSummary:
        return ImportSummary(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.deleted + other.deleted,
            self.rejected + other.rejected,
            self.reduced + other.reduced,
            self.seconds + other.seconds,
            self.no_generation or other.no_generation,
        )


class RejectLog:
    """Rejected records of one or more inputs, as CSV: file, position, id, reason, record.

    Rows go to a temporary file beside the target; :meth:`commit` moves it into
    place once the import has committed, :meth:`discard` removes it otherwise.
    """

    def __init__(self, target: Path, unit: str) -> None:
        self.target = target
        self.unit = unit
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: Any = None

    def add(self, path: str, position: int, entity_id: str, reason: str, raw: object) -> None:
        """Write one rejected record (``raw`` as JSON)."""
        if self._writer is None:
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by commit/discard
                "w",
                dir=self.target.parent,
                prefix=f".{self.target.name}.",
                suffix=".tmp",
                delete=False,
                encoding="utf-8",
                newline="",
            )
            self._writer = csv.writer(self._file)
            self._writer.writerow(["file", self.unit, "id", "reason", "record"])
        record = json.dumps(raw, ensure_ascii=False, default=str)
        self._writer.writerow([path, position, entity_id, reason, record])
        self.count += 1

    def commit(self) -> None:
        """Put the rejects file in place (nothing when no record was rejected)."""
        if self._file is not None:
            self._file.close()
            os.replace(self._file.name, self.target)
            self._file = self._writer = None

    def discard(self) -> None:
        """Remove the temporary file of a failed import."""
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = self._writer = None
