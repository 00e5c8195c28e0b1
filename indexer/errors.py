"""The service's errors, and the one table that says how each one ends.

An error raised anywhere (a parser, the store, the hot index, a search) is one
of these; the API answers it with the table's HTTP status and code, the command
line exits with the table's exit status. Messages are safe to show: what went
wrong inside (driver messages, tracebacks) goes to the log only.

Exit statuses follow the command line's rule: 1 when the command ran but its
outcome is not clean (rows rejected, differences found, a store down), 2 when
the input itself is unusable and nothing was written.
"""

from __future__ import annotations

from dataclasses import dataclass


class NearbyError(Exception):
    """An error a client may see: a safe message and maybe the parameter it is about."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadInput(NearbyError):
    """A parameter, a body field or an input file is missing, malformed or out of range."""


class Unauthorized(NearbyError):
    """No API key was given for a write."""


class Forbidden(NearbyError):
    """The API key given is not one of the configured keys."""


class NotFound(NearbyError):
    """What was asked for does not exist."""


class TooLarge(NearbyError):
    """A request body or a batch is over its limit."""


class Unavailable(NearbyError):
    """A store the work needs does not answer."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How an error ends: the HTTP status and code of its answer, the CLI's exit status."""

    status: int
    code: str
    exit_code: int


#: Every error's ending. A subclass ends as its nearest listed ancestor.
ENDINGS: dict[type[BaseException], Ending] = {
    BadInput: Ending(400, "bad_parameter", 2),
    Unauthorized: Ending(401, "unauthorized", 2),
    Forbidden: Ending(403, "forbidden", 2),
    NotFound: Ending(404, "not_found", 2),
    TooLarge: Ending(413, "too_large", 2),
    Unavailable: Ending(503, "unavailable", 1),
    NearbyError: Ending(500, "internal", 1),
}

#: What an error outside the tree (a bug) ends as.
UNEXPECTED = Ending(500, "internal", 1)


def ending(error: BaseException) -> Ending:
    """The table's ending for ``error``: its own class's, else its nearest ancestor's."""
    for cls in type(error).__mro__:
        found = ENDINGS.get(cls)
        if found is not None:
            return found
    return UNEXPECTED
