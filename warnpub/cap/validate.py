"""Offline check of CAP files: hardened parse, CAP 1.2 schema, then every offline rule.

This is what ``warnpub cap validate FILE…`` prints: one :class:`FileReport` per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from warnpub.cap.elements import xml_path
from warnpub.cap.model import Alert
from warnpub.cap.rules import offline_errors
from warnpub.cap.xml_parse import parse_cap_xml
from warnpub.problems import FieldError, Problem


@dataclass(frozen=True, slots=True)
class FileReport:
    """The verdict on one CAP document.

    ``errors`` name CAP element paths (``alert/info[1]/expires``); ``summary`` is one line:
    "valid CAP 1.2: Alert, 2 info blocks, signature present", or the first reason it is refused
    ("alert/info[1]: <info> is not allowed here; … (line 9)").
    ``alert`` is the parsed alert when the document could be read, even if it breaks a rule.
    """

    ok: bool
    errors: list[FieldError]
    summary: str
    alert: Alert | None = field(default=None, repr=False)


def validate_file(path: str | Path) -> FileReport:
    """Validate the CAP document in a file; an unreadable file is a report, not an exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _refused([FieldError("file", f"cannot read {str(path)!r}: {reason}")])
    return validate_bytes(data)


def validate_bytes(data: bytes) -> FileReport:
    """Validate one CAP document held in memory."""
    try:
        alert = parse_cap_xml(data)
    except Problem as problem:
        return _refused(problem.errors or [FieldError("document", problem.detail)])
    errors = [FieldError(xml_path(error.field), error.message) for error in offline_errors(alert)]
    if errors:
        return _refused(errors, alert)
    infos = len(alert.infos)
    signature = "signature present" if alert.has_signature else "no signature"
    summary = (
        f"valid CAP 1.2: {alert.msg_type}, {infos} info block{'' if infos == 1 else 's'}, "
        f"{signature}"
    )
    return FileReport(ok=True, errors=[], summary=summary, alert=alert)


def _refused(errors: list[FieldError], alert: Alert | None = None) -> FileReport:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return FileReport(
        ok=False,
        errors=errors,
        summary=f"{first.field}: {first.message}{more}",
        alert=alert,
    )
