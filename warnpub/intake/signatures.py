"""Intake's signature check: a CAP message whose XML signature does not verify is refused.

Call :func:`signature_problem` with the raw body of a CAP XML submission after it parsed
(``parse_cap_xml``) and before anything is written; raise what it returns. Unsigned messages
pass: signatures are optional, agencies authenticate with their API key.
"""

from __future__ import annotations

from warnpub.cap.certs import load_certificates
from warnpub.cap.signature import SignatureStatus, verify_cap_signature
from warnpub.config import Settings
from warnpub.problems import FieldError, Problem, invalid


def signature_problem(data: bytes, settings: Settings) -> Problem | None:
    """A 422 ``cap-signature`` problem when ``data`` is signed and a signature does not verify
    (or, with ``[cap] trusted_certs`` configured, no trusted certificate vouches for the
    signer); None when it is unsigned or verifies."""
    status = check_signature(data, settings)
    if not status.present or status.valid:
        return None
    return invalid(
        "the CAP message is signed, but its XML signature does not verify; send it unsigned or "
        "signed with a valid, trusted certificate",
        [FieldError("alert/Signature", status.reason)],
        kind="cap-signature",
    )


def check_signature(data: bytes, settings: Settings) -> SignatureStatus:
    """The signature status of ``data`` under this configuration (now, SHA-256 or stronger)."""
    return verify_cap_signature(data, load_certificates(settings.cap.trusted_certs))
