"""Voice calls over an HTTP voice gateway (entry point ``http_voice`` in ``warnpub.channels``).

For people who cannot read an SMS (visually impaired, elderly): the gateway calls the number,
reads the speaker script (``render("voice", …)`` uses the speaker templates: numbers, times
and units written for the ear, the instruction said twice), then the confirmation prompt, and
collects one key. How the call ended arrives later, signed, at
``POST /api/v1/callbacks/voice/{name}/outcomes`` (``Limits.receipts`` is true):

- answered and the confirm digit pressed → delivered and acknowledged;
- answered without it → delivered;
- no answer, busy → called again ``retry_interval_s`` later, up to ``retries`` more times,
  then failed (the route's next step);
- the call failed (number not in service) → failed.

The call request (field names configurable, see docs/channels.md)::

    POST <url>   Idempotency-Key: wp-1042
    {"to": "+8613800138000", "text": "…", "prompt": "收到请按1。", "confirm_digit": "1",
     "language": "zh-CN", "reference": "wp-1042", "callback_url": "https://…/outcomes",
     "repeat": 2, "caller_id": "057187000000"}

==============================================  ===========================================
gateway answer                                  Result
==============================================  ===========================================
2xx with a call id                              SENT, provider_ref = the call id
429, 503                                        TRANSIENT, retry_after_s from Retry-After
other 5xx, 408, 425, timeout, network error     TRANSIENT
401 / 403                                       TRANSIENT (our credentials: not the person)
other 4xx                                       PERMANENT (bad number, refused content)
not an E.164 number, empty script               PERMANENT, without a request
==============================================  ===========================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
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

from warnpub.callbacks.voice_calls import CallFormat
from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.channels.sms_http import parse_retry_after, reference_of
from warnpub.logs import mask

log = logging.getLogger("warnpub.channels.voice_http")

MAX_ERROR_CHARS = 300
E164 = re.compile(r"\+[1-9]\d{6,14}")
_TRANSIENT_4XX = frozenset({401, 403, 408, 409, 425, 429})
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
DEFAULT_PROMPTS = {
    "zh": "收到预警请按1。",
    "en": "If you have heard this warning, press 1.",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _http_url(value: str | None) -> str | None:
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


class CallFields(_Strict):
    """Names of the JSON fields of a call request."""

    to: str = "to"
    text: str = "text"
    prompt: str = "prompt"
    confirm_digit: str = "confirm_digit"
    language: str = "language"
    reference: str = "reference"  # the idempotency key (wp-<delivery id>)
    callback_url: str = "callback_url"
    repeat: str = "repeat"
    caller_id: str = "caller_id"  # only sent when caller_id is set

    _check = field_validator(
        "to",
        "text",
        "prompt",
        "confirm_digit",
        "language",
        "reference",
        "callback_url",
        "repeat",
        "caller_id",
    )(_non_empty)

    @model_validator(mode="after")
    def _distinct(self) -> CallFields:
        names = list(self.model_dump().values())
        if len(set(names)) != len(names):
            raise ValueError(f"the field names must differ: {names}")
        return self


class CallResponse(_Strict):
    """Where the gateway's answer puts each part (a dotted path such as ``data.call_id``)."""

    id: str = "id"  # the gateway's call id, matched later by the outcome callback
    code: str = "code"
    error: str = "error"
    retry_after: str = "retry_after_s"

    _check = field_validator("id", "code", "error", "retry_after")(_non_empty)


class OutcomeFields(_Strict):
    """Field names of this gateway's call-outcome callbacks (warnpub.callbacks.voice_calls)."""

    list_field: str = "calls"
    id: str = "id"
    reference: str = "reference"
    status: str = "status"
    digits: str = "digits"
    error: str = "error"
    at: str = "at"

    _check = field_validator("list_field", "id", "reference", "status", "digits", "error", "at")(
        _non_empty
    )


class HttpVoiceConfig(_Strict):
    """One ``[[channels.voice]]`` entry with ``adapter = "http_voice"`` (name and adapter aside)."""

    url: str
    callback_url: str  # where the gateway posts call outcomes (warnpub's public address)
    callback_secret: SecretStr  # signs those outcomes (X-Warnpub-Signature)
    auth_header: str | None = None
    auth_value: SecretStr | None = None
    caller_id: str = ""
    confirm_digit: str = "1"
    prompts: dict[str, str] = dict(DEFAULT_PROMPTS)  # language (tag or primary subtag) → prompt
    repeat: int = Field(2, ge=1, le=5)  # times the gateway reads the script in one call
    retries: int = Field(2, ge=0, le=10)  # calls after the first when nobody answers / busy
    retry_interval_s: float = Field(300.0, gt=0, le=86_400)
    fields: CallFields = CallFields()
    response: CallResponse = CallResponse()
    outcome_fields: OutcomeFields = OutcomeFields()
    max_batch: int = Field(10, ge=1, le=1000)  # calls per send(), requested in parallel
    timeout_s: float = Field(10.0, gt=0, le=300)
    rate_per_s: float = Field(5.0, gt=0)
    burst: int | None = Field(None, ge=1)  # default: one second's worth of rate_per_s
    concurrency: int = Field(4, ge=1, le=1024)
    weight: float = Field(1.0, ge=0)
    # A call rings, is read (repeat times) and may be retried by the gateway itself: the
    # outcome comes minutes later, not seconds.
    receipt_timeout_s: float = Field(1800.0, gt=0)
    # A call's outcome later than this counts against the gateway's health (an SMS receipt's
    # limit, [dispatch] demote_receipt_s, would demote a voice gateway for ringing).
    receipt_late_s: float = Field(600.0, gt=0)

    _urls = field_validator("url", "callback_url")(_http_url)

    @field_validator("auth_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not set(value) <= _TOKEN_CHARS):
            raise ValueError(
                f"{value!r} is not an HTTP header name (e.g. Authorization, X-Api-Key)"
            )
        return value

    @field_validator("callback_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty: it signs the gateway's call outcomes")
        return value

    @field_validator("confirm_digit")
    @classmethod
    def _digit(cls, value: str) -> str:
        if len(value) != 1 or value not in "0123456789*#":
            raise ValueError(f"{value!r} is not one phone key (0-9, * or #)")
        return value

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: dict[str, str]) -> dict[str, str]:
        for language, prompt in value.items():
            if not language.strip() or not prompt.strip():
                raise ValueError("give each language a non-empty prompt")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> HttpVoiceConfig:
        if (self.auth_header is None) != (self.auth_value is None):
            raise ValueError("give auth_header and auth_value together (or neither)")
        if self.auth_value is not None and not self.auth_value.get_secret_value():
            raise ValueError("auth_value must not be empty")
        return self


class HttpVoice:
    """An HTTP voice gateway as a :class:`~warnpub.channels.base.Channel` (kind ``voice``)."""

    kind: ClassVar[str] = "voice"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = parse_config(config)
        cfg = self.config
        self._url = URL(cfg.url)
        self.limits = Limits(
            max_batch=cfg.max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=cfg.burst or max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=True,
            receipt_timeout_s=cfg.receipt_timeout_s,
            receipt_late_s=cfg.receipt_late_s,
        )
        self.weight = cfg.weight
        # The schedule for unanswered and busy calls, applied when their outcome arrives.
        self.retries = cfg.retries
        self.retry_interval_s = cfg.retry_interval_s
        self.outcome_format = CallFormat(**cfg.outcome_fields.model_dump())
        self._prompts = {k.lower(): v for k, v in cfg.prompts.items()}
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
        }
        if cfg.auth_header and cfg.auth_value is not None:
            self._headers[cfg.auth_header] = cfg.auth_value.get_secret_value()
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpVoice(name={self.name!r}, url={self.config.url!r})"

    @property
    def callback_secret(self) -> str:
        """The shared secret that signs this gateway's call outcomes."""
        return self.config.callback_secret.get_secret_value()

    @property
    def confirm_digit(self) -> str:
        return self.config.confirm_digit

    def prompt_for(self, language: str) -> str:
        """The confirmation prompt for a language tag (exact tag, then its primary subtag,
        then Mandarin, then any configured prompt)."""
        tag = language.lower()
        for key in (tag, tag.split("-")[0], "zh-cn", "zh"):
            if key in self._prompts:
                return self._prompts[key]
        return next(iter(self._prompts.values()), "")

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limits.concurrency * self.limits.max_batch, keepalive_timeout=30
            )
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
            return [await self._call(messages[0])]
        return list(await asyncio.gather(*(self._call(m) for m in messages)))

    # -- one call ------------------------------------------------------------------------

    def request_body(self, m: Message) -> dict[str, Any]:
        """The JSON body of the call request for ``m``."""
        f, cfg = self.config.fields, self.config
        body: dict[str, Any] = {
            f.to: m.address,
            f.text: m.text,
            f.prompt: self.prompt_for(m.language),
            f.confirm_digit: cfg.confirm_digit,
            f.language: m.language,
            f.reference: reference_of(m),
            f.callback_url: cfg.callback_url,
            f.repeat: cfg.repeat,
        }
        if cfg.caller_id:
            body[f.caller_id] = cfg.caller_id
        return body

    async def _call(self, m: Message) -> Result:
        if not E164.fullmatch(m.address):
            return Result(
                m.delivery_id,
                Status.PERMANENT,
                error=f"{mask(m.address)!r} is not a phone number in E.164 form (+86…)",
            )
        if not m.text.strip():
            return Result(m.delivery_id, Status.PERMANENT, error="the script to read is empty")
        body = json.dumps(self.request_body(m), ensure_ascii=False, separators=(",", ":"))
        headers = {**self._headers, "Idempotency-Key": reference_of(m)}
        assert self._session is not None
        try:
            async with self._session.post(self._url, data=body.encode(), headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                error = f"no answer within {self.config.timeout_s:g} s"
            else:
                error = f"cannot reach the voice gateway: {type(exc).__name__}: {exc}"
            error = mask(error)[:MAX_ERROR_CHARS]
            log.info(
                "voice call not requested",
                extra={"instance": self.name, "delivery_id": m.delivery_id, "error": error},
            )
            return Result(m.delivery_id, Status.TRANSIENT, error=error)
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        item = data if isinstance(data, dict) else {}
        text = "" if data is not None else raw[:200].decode("utf-8", "replace")
        return self._outcome(m, status, item, retry_after, text)

    def _outcome(
        self,
        m: Message,
        status: int,
        item: Mapping[str, Any],
        retry_after: float | None,
        text: str,
    ) -> Result:
        r = self.config.response
        call_id = _get(item, r.id)
        code = _text(_get(item, r.code))
        err = _text(_get(item, r.error)) or text
        if 200 <= status < 300 and call_id not in (None, "") and not code:
            return Result(m.delivery_id, Status.SENT, provider_ref=str(call_id))
        if 200 <= status < 300:
            # Accepted without a call id: the outcome could never be matched but by our
            # reference; call it again rather than wait blind (the reference stops a double).
            error = _describe(status, code, err or "the gateway answered without a call id")
            return self._transient(m, error, None)
        if status in (429, 503):
            wait = retry_after if retry_after is not None else _seconds(_get(item, r.retry_after))
            return self._transient(m, _describe(status, code, err), wait)
        if status >= 500 or status in _TRANSIENT_4XX:
            if status in (401, 403) and not err:
                err = "the gateway refused our credentials (check auth_header and auth_value)"
            return self._transient(m, _describe(status, code, err), retry_after)
        error = _describe(status, code, err)
        log.info(
            "voice call refused",
            extra={"instance": self.name, "delivery_id": m.delivery_id, "error": error},
        )
        return Result(m.delivery_id, Status.PERMANENT, error=error)

    def _transient(self, m: Message, error: str, retry_after: float | None) -> Result:
        log.info(
            "voice call to retry",
            extra={"instance": self.name, "delivery_id": m.delivery_id, "error": error},
        )
        return Result(m.delivery_id, Status.TRANSIENT, error=error, retry_after_s=retry_after)


def parse_config(config: Mapping[str, Any]) -> HttpVoiceConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(HttpVoiceConfig, config, "http_voice", "docs/channels.md")


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


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _describe(status: int, code: str, text: str) -> str:
    head = f"HTTP {status} {code}" if code else f"HTTP {status}"
    return mask(f"{head}: {text}" if text else head)[:MAX_ERROR_CHARS]
