"""SMS over a generic JSON-over-HTTP gateway (entry point ``http_json`` in ``warnpub.channels``).

One instance per configured gateway; each keeps one aiohttp session (pooled keep-alive
connections) for its whole life. A single message is POSTed to ``url``; when ``batch_url`` is
set, several messages go in one request to ``batch_url`` and the answer carries one result per
message. Every message carries its idempotency key, so a retry after a timeout is never
delivered twice by a gateway that honours it. Outcomes (see docs/channels.md):

==============================================  ===========================================
gateway answer                                  Result
==============================================  ===========================================
2xx, message id in the body                     SENT, provider_ref = that id
429                                             TRANSIENT, retry_after_s from Retry-After
5xx, 408, 425, timeout, connection error        TRANSIENT
401 / 403                                       TRANSIENT (our credentials: not the message)
4xx whose item is marked permanent, or whose    PERMANENT (invalid number, rejected content)
error code is in ``permanent_codes``
other 4xx                                       TRANSIENT, with the gateway's code and text
==============================================  ===========================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from yarl import URL

from warnpub.callbacks.sms_receipts import ReceiptFormat
from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.clock import utcnow
from warnpub.logs import mask

log = logging.getLogger("warnpub.channels.sms_http")

DEFAULT_PERMANENT_CODES = (
    "invalid_number",
    "unreachable_number",
    "blocked_number",
    "rejected_content",
    "opted_out",
)
MAX_ERROR_CHARS = 300
_TRANSIENT_4XX = frozenset({401, 403, 408, 409, 425, 429})
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class RequestFields(_Strict):
    """Names of the JSON fields of one message in a request."""

    to: str = "to"
    text: str = "text"
    reference: str = "reference"  # the idempotency key (the delivery id)
    sender: str = "sender"  # only sent when sender_id is set

    _check = field_validator("to", "text", "reference", "sender")(_non_empty)

    @model_validator(mode="after")
    def _distinct(self) -> RequestFields:
        names = [self.to, self.text, self.reference, self.sender]
        if len(set(names)) != len(names):
            raise ValueError(f"the four field names must differ: {names}")
        return self


class ResponseFields(_Strict):
    """Where the answer puts each part (a dotted path such as ``data.msgid`` reaches inside)."""

    id: str = "id"  # the gateway's message id, matched later by receipts
    reference: str = "reference"  # our reference echoed back (matches batch results)
    code: str = "code"  # a machine error code
    error: str = "error"  # a human error text
    permanent: str = "permanent"  # true when the gateway says retrying cannot help
    retry_after: str = "retry_after_s"  # seconds to wait, per message (batch throttling)
    results: str = "results"  # the per-message list in a batch answer

    _check = field_validator(
        "id", "reference", "code", "error", "permanent", "retry_after", "results"
    )(_non_empty)


class ReceiptFields(_Strict):
    """Field names of this gateway's delivery receipts (see warnpub.callbacks.sms_receipts)."""

    list_field: str = "receipts"
    id: str = "id"
    reference: str = "reference"
    status: str = "status"
    error: str = "error"
    at: str = "at"

    _check = field_validator("list_field", "id", "reference", "status", "error", "at")(_non_empty)


class HttpJsonSmsConfig(_Strict):
    """One ``[[channels.sms]]`` entry with ``adapter = "http_json"`` (name and adapter aside)."""

    url: str
    batch_url: str | None = None
    batch_field: str = "messages"
    # Messages per send(): one batch request with batch_url; otherwise that many single
    # requests in parallel. Default: 100 with batch_url, else 1.
    max_batch: int | None = Field(None, ge=1, le=10_000)
    auth_header: str | None = None
    auth_value: SecretStr | None = None
    sender_id: str = ""
    fields: RequestFields = RequestFields()
    response: ResponseFields = ResponseFields()
    permanent_codes: list[str] = list(DEFAULT_PERMANENT_CODES)
    timeout_s: float = Field(10.0, gt=0, le=300)
    rate_per_s: float = Field(100.0, gt=0)
    burst: int | None = Field(None, ge=1)  # default: one second's worth of rate_per_s
    concurrency: int = Field(8, ge=1, le=1024)
    weight: float = Field(1.0, ge=0)
    receipt_timeout_s: float = Field(3600.0, gt=0)
    callback_secret: SecretStr | None = None
    receipt_fields: ReceiptFields = ReceiptFields()

    @field_validator("url", "batch_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = urlsplit(value)
            host = parsed.hostname
        except ValueError:
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        return value

    @field_validator("auth_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not set(value) <= _TOKEN_CHARS):
            raise ValueError(
                f"{value!r} is not an HTTP header name (e.g. Authorization, X-Api-Key)"
            )
        return value

    @field_validator("batch_field")
    @classmethod
    def _batch_field(cls, value: str) -> str:
        return _non_empty(value)

    @model_validator(mode="after")
    def _pairs(self) -> HttpJsonSmsConfig:
        if (self.auth_header is None) != (self.auth_value is None):
            raise ValueError("give auth_header and auth_value together (or neither)")
        if self.auth_value is not None and not self.auth_value.get_secret_value():
            raise ValueError("auth_value must not be empty")
        return self


class HttpJsonSms:
    """A JSON SMS gateway as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "sms"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = parse_config(config)
        cfg = self.config
        self._fields = cfg.fields
        self._resp = cfg.response
        self._batch_url = cfg.batch_url
        # Parsed once: a URL string would be parsed again for every request.
        self._url = URL(cfg.url)
        self._batch_url_parsed = URL(cfg.batch_url) if cfg.batch_url else None
        max_batch = cfg.max_batch or (100 if cfg.batch_url else 1)
        self.limits = Limits(
            max_batch=max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=cfg.burst or max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=True,
            receipt_timeout_s=cfg.receipt_timeout_s,
        )
        self.weight = cfg.weight
        self.receipt_format = ReceiptFormat(**cfg.receipt_fields.model_dump())
        self._permanent_codes = frozenset(cfg.permanent_codes)
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
        }
        if cfg.auth_header and cfg.auth_value is not None:
            self._headers[cfg.auth_header] = cfg.auth_value.get_secret_value()
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        self._session: aiohttp.ClientSession | None = None
        r = self._resp
        # Plain field names (no dotted paths) let an accepted message be read with dict.get.
        self._flat = all("." not in f for f in (r.id, r.reference, r.code, r.error, r.permanent))

    def __repr__(self) -> str:
        return f"HttpJsonSms(name={self.name!r}, url={self.config.url!r})"

    @property
    def callback_secret(self) -> str | None:
        """The shared secret that signs this gateway's receipts and inbound callbacks."""
        secret = self.config.callback_secret
        if secret is None or not secret.get_secret_value():
            return None
        return secret.get_secret_value()

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            per_call = 1 if self._batch_url else self.limits.max_batch
            connector = aiohttp.TCPConnector(
                limit=self.limits.concurrency * per_call, keepalive_timeout=30
            )
            # A gateway API sets no cookies worth keeping: the dummy jar skips their handling.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        await self.start()
        if len(messages) == 1:
            return [await self._send_one(messages[0])]
        if self._batch_url is None:
            return list(await asyncio.gather(*(self._send_one(m) for m in messages)))
        size = self.limits.max_batch
        chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
        if len(chunks) == 1:
            return await self._send_batch(chunks[0])
        done = await asyncio.gather(*(self._send_batch(c) for c in chunks))
        return [r for part in done for r in part]

    # -- one request ---------------------------------------------------------------------

    def _item(self, m: Message) -> dict[str, str]:
        f = self._fields
        item = {f.to: m.address, f.text: m.text, f.reference: reference_of(m)}
        if self.config.sender_id:
            item[f.sender] = self.config.sender_id
        return item

    async def _post(self, url: URL, payload: Any) -> tuple[int, Any, float | None, str]:
        """(status, decoded JSON or None, Retry-After seconds, short body text)."""
        assert self._session is not None
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        async with self._session.post(url, data=body, headers=self._headers) as resp:
            raw = await resp.read()
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            status = resp.status
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        text = "" if data is not None else raw[:200].decode("utf-8", "replace")
        return status, data, retry_after, text

    async def _send_one(self, m: Message) -> Result:
        try:
            status, data, retry_after, text = await self._post(self._url, self._item(m))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._unreachable([m], exc)[0]
        item = data if isinstance(data, dict) else {}
        return self._outcome(m, status, item, retry_after, text)

    async def _send_batch(self, messages: Sequence[Message]) -> list[Result]:
        assert self._batch_url is not None
        payload = {self.config.batch_field: [self._item(m) for m in messages]}
        try:
            assert self._batch_url_parsed is not None
            status, data, retry_after, text = await self._post(self._batch_url_parsed, payload)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._unreachable(messages, exc)
        items = _get(data, self._resp.results) if isinstance(data, dict) else data
        if not isinstance(items, list) or status == 429 or status >= 500:
            whole = data if isinstance(data, dict) else {}
            return [
                self._outcome(m, status, whole, retry_after, text, own_item=False) for m in messages
            ]
        by_ref: dict[str, dict[str, Any]] = {}
        ref_field = self._resp.reference
        for item in items:
            if isinstance(item, dict):
                ref = item.get(ref_field) if self._flat else _get(item, ref_field)
                if ref is not None:
                    by_ref[ref if isinstance(ref, str) else str(ref)] = item
        positional = not by_ref and len(items) == len(messages)
        results: list[Result] = []
        for index, m in enumerate(messages):
            found = items[index] if positional else by_ref.get(reference_of(m))
            if not isinstance(found, dict):
                results.append(
                    Result(
                        m.delivery_id,
                        Status.TRANSIENT,
                        error=f"HTTP {status}: the gateway's answer did not mention this message",
                    )
                )
                continue
            results.append(self._outcome(m, status, found, retry_after, ""))
        return results

    # -- classification ------------------------------------------------------------------

    def _outcome(
        self,
        m: Message,
        status: int,
        item: Mapping[str, Any],
        retry_after: float | None,
        text: str,
        *,
        own_item: bool = True,
    ) -> Result:
        """Classify one message from the HTTP status and its item of the answer.

        ``own_item`` is False when a batch answer had no per-message list: the body then
        describes the whole request and its id (if any) is not this message's id."""
        r = self._resp
        if own_item and self._flat and 200 <= status < 300:
            # The common case, decided without the general rules below (same outcome).
            ref = item.get(r.id)
            code, err, flag = item.get(r.code), item.get(r.error), item.get(r.permanent)
            if (
                (code is None or code is False or code == "")
                and flag is not True
                and (ref is not None or err is None or err is False or err == "")
            ):
                return Result(
                    m.delivery_id,
                    Status.SENT,
                    provider_ref=None if ref is None else ref if isinstance(ref, str) else str(ref),
                )
        ref = _get(item, r.id) if own_item else None
        code = _text(_get(item, r.code))
        err_text = _text(_get(item, r.error))
        flagged = _get(item, r.permanent) is True
        item_retry = _seconds(_get(item, r.retry_after))
        failed = bool(code) or flagged or (bool(err_text) and ref is None)
        if 200 <= status < 300 and not failed:
            return Result(
                m.delivery_id, Status.SENT, provider_ref=None if ref is None else str(ref)
            )
        if status == 429:
            return self._transient(m, status, code, err_text or text, retry_after or item_retry)
        permanent = flagged or code in self._permanent_codes
        if permanent and status < 500 and status not in _TRANSIENT_4XX:
            error = _describe(status, code, err_text or text)
            log.debug("sms %s: permanent refusal for %s: %s", self.name, mask(m.address), error)
            return Result(m.delivery_id, Status.PERMANENT, error=error)
        if status in (401, 403) and not err_text:
            err_text = "the gateway refused our credentials (check auth_header and auth_value)"
        return self._transient(m, status, code, err_text or text, item_retry or retry_after)

    def _transient(
        self, m: Message, status: int, code: str, text: str, retry_after: float | None
    ) -> Result:
        error = _describe(status, code, text)
        log.debug("sms %s: transient failure for delivery %s: %s", self.name, m.delivery_id, error)
        return Result(m.delivery_id, Status.TRANSIENT, error=error, retry_after_s=retry_after)

    def _unreachable(self, messages: Sequence[Message], exc: BaseException) -> list[Result]:
        if isinstance(exc, TimeoutError):
            error = f"no answer within {self.config.timeout_s:g} s"
        else:
            error = f"cannot reach the gateway: {type(exc).__name__}: {exc}"
        error = mask(error)[:MAX_ERROR_CHARS]
        log.debug("sms %s: %s (%d messages)", self.name, error, len(messages))
        return [Result(m.delivery_id, Status.TRANSIENT, error=error) for m in messages]


def parse_config(config: Mapping[str, Any]) -> HttpJsonSmsConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(HttpJsonSmsConfig, config, "http_json", "docs/channels.md")


def reference_of(message: Message) -> str:
    """The idempotency key sent with ``message`` (its delivery id when none was set)."""
    return message.idempotency_key or str(message.delivery_id)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds (also fractional) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - utcnow()).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _get(item: Any, path: str) -> Any:
    if isinstance(item, dict) and path in item:
        return item[path]
    current = item
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _describe(status: int, code: str, text: str) -> str:
    parts = [f"HTTP {status}"]
    if code:
        parts.append(code)
    head = " ".join(parts)
    return mask(f"{head}: {text}" if text else head)[:MAX_ERROR_CHARS]
