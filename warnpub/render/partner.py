"""A warning for partner systems (webhooks): the whole warning, not a text for people.

:func:`partner_document` is the JSON *envelope* a webhook partner receives: the warning's id
and CAP URL, its level and hazard, the CAP identity fields, the full alert (warnpub's JSON
form of CAP, the same schema agencies submit) and the published CAP document itself
(``cap_xml``, signed by the centre when a signing key is configured).

For dispatch, :func:`partner_rendered` gives channel ``webhook`` the envelope as its text (once
per warning); the webhook channel turns it into the partner's format with
:func:`partner_body`: the CAP document for ``format = "cap"``, the envelope for ``"json"``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from warnpub.clock import iso
from warnpub.config import Settings
from warnpub.feeds.documents import CAP_MEDIA_TYPE, cap_url, published_cap
from warnpub.render.templates import Rendered
from warnpub.render.view import WarningView
from warnpub.storage.tables import WarningRecord

PartnerFormat = Literal["cap", "json"]
PARTNER_FORMATS: tuple[PartnerFormat, ...] = ("cap", "json")
ENVELOPE_TYPE = "warnpub.warning"
JSON_MEDIA_TYPE = "application/json"
MEDIA_TYPES: dict[str, str] = {"cap": CAP_MEDIA_TYPE, "json": JSON_MEDIA_TYPE}
CHANNEL = "webhook"


def partner_document(view: WarningView, settings: Settings) -> dict[str, Any]:
    """The JSON envelope of one warning (see the module docstring and docs/partners.md)."""
    alert = view.alert
    expires = [info.expires for info in alert.infos if info.expires is not None]
    headline = next((info.headline for info in alert.infos if info.headline), view.headline)
    return {
        "type": ENVELOPE_TYPE,
        "id": view.id,
        "cap_url": cap_url(settings, view.id),
        "full_text_url": view.full_text_url,
        "level": view.level.value if view.level is not None else None,
        "hazard": dict(view.hazard_names),
        "status": alert.status,
        "msg_type": alert.msg_type,
        "scope": alert.scope,
        "sender": alert.sender,
        "identifier": alert.identifier,
        "sent": iso(alert.sent),
        "expires": iso(max(expires)) if expires else None,
        "headline": headline or "",
        "alert": alert.model_dump(mode="json"),
        "cap_xml": published_cap(view.id, alert, settings).decode("utf-8"),
    }


def partner_rendered(view: WarningView, settings: Settings) -> Rendered:
    """The envelope as the text of a ``webhook`` Message, rendered once per warning."""
    key = (CHANNEL, "")
    cached = view.cache.get(key)
    if cached is None:
        text = json.dumps(partner_document(view, settings), ensure_ascii=False)
        cached = view.cache[key] = Rendered(CHANNEL, "", None, text)
    assert isinstance(cached, Rendered)
    return cached


def render_partner(warning: WarningRecord, fmt: PartnerFormat, settings: Settings) -> bytes:
    """A stored warning as a partner receives it: its CAP document or the JSON envelope."""
    if fmt not in PARTNER_FORMATS:
        raise ValueError(f"unknown partner format {fmt!r}; use one of {', '.join(PARTNER_FORMATS)}")
    view = WarningView.from_record(warning, settings)
    if fmt == "cap":
        return published_cap(warning.id, view.alert, settings)
    return partner_rendered(view, settings).text.encode("utf-8")


def read_envelope(text: str) -> dict[str, Any] | None:
    """The envelope in a Message text, or None when the text is not one."""
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("type") != ENVELOPE_TYPE:
        return None
    return doc


def partner_body(text: str, fmt: PartnerFormat) -> bytes | None:
    """The request body for a partner in ``fmt`` from a webhook Message text; None when the
    text is not a warning envelope."""
    doc = read_envelope(text)
    if doc is None:
        return None
    if fmt == "cap":
        cap = doc.get("cap_xml")
        return cap.encode("utf-8") if isinstance(cap, str) and cap else None
    return text.encode("utf-8")
