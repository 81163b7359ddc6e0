"""Errors that carry what the caller must fix, rendered as RFC 9457 problem documents.

Every refusal in warnpub, from the CAP parser to the review state machine, raises a
:class:`Problem`. The HTTP layer turns it into ``application/problem+json``; the CLI prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with the input: where (a JSON-pointer-like path or XML element path) and how to fix it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(slots=True)
class Problem(Exception):
    """A refusal. ``status`` is the HTTP status; ``kind`` a short slug naming the problem type."""

    status: int
    title: str
    detail: str
    kind: str = "about:blank"
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.detail)

    def __str__(self) -> str:
        lines = [f"{self.title}: {self.detail}"]
        lines += [f"  - {e.field}: {e.message}" for e in self.errors]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.kind
            if self.kind == "about:blank"
            else f"https://warnpub.org/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def invalid(
    detail: str, errors: list[FieldError] | None = None, *, kind: str = "invalid-input"
) -> Problem:
    """422: the input was understood but breaks a rule."""
    return Problem(422, "Invalid input", detail, kind, list(errors or []))


def bad_request(
    detail: str, errors: list[FieldError] | None = None, *, kind: str = "malformed"
) -> Problem:
    """400: the input could not be read at all (malformed JSON or XML, hostile XML)."""
    return Problem(400, "Malformed request", detail, kind, list(errors or []))


def forbidden(
    detail: str, errors: list[FieldError] | None = None, *, kind: str = "forbidden"
) -> Problem:
    return Problem(403, "Forbidden", detail, kind, list(errors or []))


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, "unauthorized")


def not_found(detail: str) -> Problem:
    return Problem(404, "Not found", detail, "not-found")


def conflict(detail: str, *, kind: str = "conflict", **extra: Any) -> Problem:
    return Problem(409, "Conflict", detail, kind, [], dict(extra))
