"""Offline check of CAP files: hardened parse, CAP 1.2 schema, then every offline rule.

This is what ``warnpub cap validate FILE…`` prints: one :class:`FileReport` per file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from warnpub.cap.elements import xml_path
from warnpub.cap.model import Alert
from warnpub.cap.rules import offline_errors
from warnpub.cap.signature import SignatureStatus, verify_cap_signature
from warnpub.cap.xml_parse import parse_cap_xml
from warnpub.problems import FieldError, Problem


@dataclass(frozen=True, slots=True)
class FileReport:
    """The verdict on one CAP document.

    ``errors`` name CAP element paths (``alert/info[1]/expires``); ``summary`` is one line:
    "valid CAP 1.2: Alert, 2 info blocks, signature present", or the first reason it is refused
    ("alert/info[1]: <info> is not allowed here; … (line 9)").
    ``alert`` is the parsed alert when the document could be read, even if it breaks a rule.

    When signatures are checked (``trusted_certs`` given), ``signature`` holds the outcome and
    the summary ends with it instead: "signature verified, signed by trusted CN=…", "signature
    verified (integrity only: …)" or "2 signatures NOT verified: <why>". ``ok`` still speaks of
    the CAP document alone; intake is what refuses a signature that does not verify.
    """

    ok: bool
    errors: list[FieldError]
    summary: str
    alert: Alert | None = field(default=None, repr=False)
    signature: SignatureStatus | None = None


def validate_file(
    path: str | Path, *, trusted_certs: Sequence[x509.Certificate] | None = None
) -> FileReport:
    """Validate the CAP document in a file; an unreadable file is a report, not an exception.

    With ``trusted_certs`` (possibly empty), enveloped signatures are verified too."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _refused([FieldError("file", f"cannot read {str(path)!r}: {reason}")])
    return validate_bytes(data, trusted_certs=trusted_certs)


def validate_bytes(
    data: bytes, *, trusted_certs: Sequence[x509.Certificate] | None = None
) -> FileReport:
    """Validate one CAP document held in memory (see :func:`validate_file`)."""
    try:
        alert = parse_cap_xml(data)
    except Problem as problem:
        return _refused(problem.errors or [FieldError("document", problem.detail)])
    errors = [FieldError(xml_path(error.field), error.message) for error in offline_errors(alert)]
    if errors:
        return _refused(errors, alert)
    infos = len(alert.infos)
    status = None if trusted_certs is None else verify_cap_signature(data, trusted_certs)
    if status is not None:
        signature = status.summary
    else:
        signature = "signature present" if alert.has_signature else "no signature"
    summary = (
        f"valid CAP 1.2: {alert.msg_type}, {infos} info block{'' if infos == 1 else 's'}, "
        f"{signature}"
    )
    return FileReport(ok=True, errors=[], summary=summary, alert=alert, signature=status)


def _refused(errors: list[FieldError], alert: Alert | None = None) -> FileReport:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return FileReport(
        ok=False,
        errors=errors,
        summary=f"{first.field}: {first.message}{more}",
        alert=alert,
    )
