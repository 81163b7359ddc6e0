"""Webhooks for partner systems (entry point ``webhook`` in ``warnpub.channels``).

One instance per partner: a TV or radio station, a messaging bridge, a neighbouring county.
The partner registers a URL and a shared secret; each warning is POSTed to the URL as the
published CAP 1.2 document (``format = "cap"``, ``application/cap+xml``) or as warnpub's JSON
envelope (``format = "json"``), see docs/partners.md. Every request carries

* ``X-Warnpub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, the
  same scheme as warnpub's own callbacks (:mod:`warnpub.callbacks.signing`), made afresh for
  each attempt;
* ``Idempotency-Key: wp-<delivery id>``, the same on every retry of one delivery, so a partner
  that remembers keys never acts twice on one warning.

A message's text is the warning envelope rendered by :mod:`warnpub.render.partner`. Its
address is the partner's instance name (or empty): a message addressed to another partner is
refused rather than sent to the wrong place. Text that is not an envelope (a plain test
message) goes to a ``json`` partner as ``{"text": …}`` and cannot go to a ``cap`` partner.

==================================================  ==========================================
the partner answers                                 Result
==================================================  ==========================================
2xx                                                 DELIVERED (the 2xx is the partner's receipt)
429                                                 TRANSIENT, retry_after_s from Retry-After
5xx, 408, 425, a timeout, a refused connection      TRANSIENT
3xx (redirects are not followed), any other 4xx     PERMANENT
==================================================  ==========================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from warnpub import __version__
from warnpub.callbacks.signing import HEADER, sign
from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.channels.sms_http import parse_retry_after
from warnpub.render.partner import MEDIA_TYPES, PartnerFormat, partner_body

log = logging.getLogger("warnpub.channels.webhook")

MAX_ERROR_CHARS = 300
_TRANSIENT_4XX = frozenset({408, 425, 429})


class WebhookConfig(BaseModel):
    """One ``[[channels.webhook]]`` entry (name and adapter aside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: SecretStr
    format: Literal["cap", "json"] = "cap"
    timeout_s: float = Field(10.0, gt=0, le=300)
    rate_per_s: float = Field(10.0, gt=0)
    concurrency: int = Field(4, ge=1, le=256)
    weight: float = Field(1.0, ge=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parsed = urlsplit(value)
            host = parsed.hostname
        except ValueError:
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("use a secret of at least 16 characters (e.g. 32 random hex digits)")
        return value


class Webhook:
    """A partner's webhook as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "webhook"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = parse_config(config)
        cfg = self.config
        self.format: PartnerFormat = cfg.format
        self.limits = Limits(
            max_batch=1,
            rate_per_s=cfg.rate_per_s,
            burst=max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=False,
        )
        self.weight = cfg.weight
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Webhook(name={self.name!r}, url={self.config.url!r}, format={self.format!r})"

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.limits.concurrency, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        await self.start()
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    def body(self, message: Message) -> bytes | None:
        """What the partner receives for ``message``; None when it cannot be sent in this
        partner's format."""
        body = partner_body(message.text, self.format)
        if body is not None or self.format == "cap":
            return body
        plain = {"text": message.text, "language": message.language}
        return json.dumps(plain, ensure_ascii=False).encode("utf-8")

    async def _send_one(self, m: Message) -> Result:
        if m.address not in ("", self.name):
            return self._permanent(
                m, f"addressed to partner {m.address!r}, not to this one ({self.name!r})"
            )
        body = self.body(m)
        if body is None:
            return self._permanent(
                m, "the message is not a warning envelope, so it cannot be sent as CAP"
            )
        headers = {
            "Content-Type": f"{MEDIA_TYPES[self.format]}; charset=utf-8",
            "Idempotency-Key": m.idempotency_key or f"wp-{m.delivery_id}",
            "User-Agent": f"warnpub/{__version__}",
            HEADER: sign(self.config.secret.get_secret_value(), body),
        }
        assert self._session is not None
        try:
            async with self._session.post(
                self.config.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                text = (await resp.content.read(2048)).decode("utf-8", "replace")
                return self._outcome(m, resp.status, resp.headers.get("Retry-After"), text)
        except TimeoutError:
            return self._transient(m, f"no answer within {self.config.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return self._transient(m, f"cannot reach the partner: {type(exc).__name__}: {exc}")

    def _outcome(self, m: Message, status: int, retry_after: str | None, text: str) -> Result:
        if 200 <= status < 300:
            return Result(m.delivery_id, Status.DELIVERED, provider_ref=_provider_ref(text))
        error = _describe(status, text)
        if status >= 500 or status in _TRANSIENT_4XX:
            wait = parse_retry_after(retry_after) if status in (429, 503) else None
            return self._transient(m, error, wait)
        if 300 <= status < 400:
            error += " (redirects are not followed: register the final URL)"
        return self._permanent(m, error)

    def _transient(self, m: Message, error: str, retry_after: float | None = None) -> Result:
        error = error[:MAX_ERROR_CHARS]
        log.debug(
            "webhook %s: transient failure for delivery %s: %s", self.name, m.delivery_id, error
        )
        return Result(m.delivery_id, Status.TRANSIENT, error=error, retry_after_s=retry_after)

    def _permanent(self, m: Message, error: str) -> Result:
        error = error[:MAX_ERROR_CHARS]
        log.info("webhook %s: delivery %s refused: %s", self.name, m.delivery_id, error)
        return Result(m.delivery_id, Status.PERMANENT, error=error)


def parse_config(config: Mapping[str, Any]) -> WebhookConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix.

    The secret never appears in the error."""
    return validate_instance(WebhookConfig, config, "webhook", "docs/partners.md")


def _provider_ref(text: str) -> str | None:
    """The partner's own id for what it received, when its answer names one ({"id": …})."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    ref = doc.get("id") if isinstance(doc, dict) else None
    return str(ref)[:120] if isinstance(ref, str | int) and not isinstance(ref, bool) else None


def _describe(status: int, text: str) -> str:
    text = " ".join(text.split())
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"
