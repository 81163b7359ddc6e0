"""A warning's published CAP 1.2 document: which warnings are public, where, and its bytes.

The document is written from the stored alert (``alert_to_cap_xml``: UTF-8, schema order,
schema-valid) rather than served as the agency sent it: every warning reads the same whatever
its agency's encoding or tooling, and the centre, which reviewed it, vouches for it with its
own signature when ``[cap] signing_key`` and ``signing_cert`` are configured. Signed documents
are kept (the last :data:`KEPT` of them), so a document, and so its ETag, stays the same from
one request to the next even with a randomised ECDSA signature.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from warnpub.cap import Alert, alert_to_cap_xml
from warnpub.cap.certs import fingerprint
from warnpub.cap.signing import signer_for
from warnpub.config import Settings
from warnpub.review import states
from warnpub.storage.tables import WarningRecord

CAP_MEDIA_TYPE = "application/cap+xml"
PUBLIC_STATUS = "Actual"  # Exercise (drills) and Test messages are never published
PUBLIC_SCOPE = "Public"
RELEASED = (states.APPROVED, states.DISPATCHING, states.COMPLETED)
"""States in which a warning is in force (the feed lists these)."""
ONCE_RELEASED = (*RELEASED, states.CANCELLED, states.EXPIRED)
KEPT = 256

_DOCUMENTS: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
_LOCK = threading.Lock()


def cap_url(settings: Settings, warning_id: str) -> str:
    """Where a warning's CAP document is published: ``<public_url>/warnings/<id>.cap.xml``."""
    return f"{settings.server.public_url.rstrip('/')}/warnings/{warning_id}.cap.xml"


def is_published(warning: WarningRecord) -> bool:
    """An Actual, Public warning that was released (it stays readable once cancelled or
    expired, so partners can follow references to it)."""
    return (
        warning.status == PUBLIC_STATUS
        and warning.scope == PUBLIC_SCOPE
        and warning.decided_at is not None
        and warning.state in ONCE_RELEASED
    )


def published_cap(warning_id: str, alert: Alert, settings: Settings) -> bytes:
    """The CAP document of a warning, signed with the centre's key when one is configured."""
    signer = signer_for(settings)
    key = (warning_id, b"" if signer is None else fingerprint(signer.certs[0]))
    with _LOCK:
        cached = _DOCUMENTS.get(key)
        if cached is not None:
            _DOCUMENTS.move_to_end(key)
            return cached
    document = alert_to_cap_xml(alert)
    if signer is not None:
        document = signer.sign(document)
    with _LOCK:
        _DOCUMENTS[key] = document
        while len(_DOCUMENTS) > KEPT:
            _DOCUMENTS.popitem(last=False)
    return document
