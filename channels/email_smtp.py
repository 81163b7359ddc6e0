"""E-mail over SMTP with aiosmtplib (entry point ``smtp`` in ``warnpub.channels``).

One instance per configured relay. Connections are kept open and reused across ``send()``
calls: up to ``concurrency`` of them, each carrying one ``send()`` batch at a time (up to
``max_batch`` messages, one SMTP transaction each). A connection the server has dropped is
replaced and the message retried once on the fresh connection. STARTTLS (``starttls``) or
implicit TLS (``use_tls``) and AUTH (``username``/``password``) come from configuration; the
password is never logged or shown.

Every message has a text part and, when rendered, an HTML part (multipart/alternative), a
Message-ID derived from the idempotency key (the same on every retry of a delivery) and the
header ``X-Warnpub-Delivery``. Outcomes (see docs/channels.md, "E-mail"):

===============================================  ==========================================
what happened                                    Result
===============================================  ==========================================
250 after DATA                                   SENT, provider_ref = the Message-ID
RCPT or DATA refused with 5xx (550, 553, 554…)   PERMANENT (the address or the content)
RCPT or DATA refused with 4xx (450, 451, 452…)   TRANSIENT
MAIL FROM refused, AUTH refused, TLS failed,     TRANSIENT (our relay or our configuration,
connection refused or dropped, timeout           not the person: the circuit breaker acts)
address malformed (checked before sending), or   PERMANENT
server lacks SMTPUTF8 for a non-ASCII address
===============================================  ==========================================

SENT, not DELIVERED: a 250 reply means the relay took responsibility for the message
(RFC 5321 §4.1.1.4), not that it reached the mailbox — a bounce may still follow, and e-mail
has no delivery receipts (``Limits.receipts`` is False). The dispatcher records SENT of a
channel without receipts as final at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import re
from collections.abc import Mapping, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import aiosmtplib
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.clock import utcnow
from warnpub.logs import mask

log = logging.getLogger("warnpub.channels.email_smtp")

MAX_ERROR_CHARS = 300
DELIVERY_HEADER = "X-Warnpub-Delivery"
# A plain e-mail address: local@domain.tld, no spaces, brackets or control characters.
_ADDRESS = re.compile(
    r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\.]+(?:\.[^\s@<>()\[\],;:\"\\.]+)+"
)
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_SPACES = re.compile(r"\s+")


def valid_address(address: str) -> bool:
    """True for a plain ``local@domain.tld`` address (no display name, no control chars)."""
    return bool(_ADDRESS.fullmatch(address)) and address.isprintable()


class SmtpEmailConfig(BaseModel):
    """One ``[[channels.email]]`` entry with ``adapter = "smtp"`` (name and adapter aside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # default: 465 with use_tls, 587, or 25
    starttls: bool = False  # upgrade with STARTTLS after connecting (required when true)
    use_tls: bool = False  # implicit TLS from the first byte (port 465)
    verify_tls: bool = True  # check the server certificate and host name
    ca_file: str | None = None  # PEM bundle of CAs to trust instead of the system's
    username: str | None = None
    password: SecretStr | None = None
    from_address: str
    from_name: str = ""
    local_hostname: str | None = None  # the name we give in EHLO (default: this host's FQDN)
    timeout_s: float = Field(30.0, gt=0, le=600)  # per SMTP command
    rate_per_s: float = Field(10.0, gt=0)
    burst: int | None = Field(None, ge=1)  # default: one second's worth of rate_per_s
    concurrency: int = Field(2, ge=1, le=64)  # connections (and send() calls) at once
    max_batch: int = Field(50, ge=1, le=10_000)  # messages per send() over one connection
    weight: float = Field(1.0, ge=0)

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if not valid_address(value) or not value.isascii():
            raise ValueError(f"{value!r} is not a plain ASCII e-mail address like warn@example.cn")
        return value

    @field_validator("from_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpEmailConfig:
        if self.starttls and self.use_tls:
            raise ValueError(
                "set starttls (upgrade after connecting) or use_tls (port 465), not both"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together (or neither)")
        if self.username is not None and not (self.starttls or self.use_tls):
            if not _is_loopback(self.host):
                raise ValueError(
                    "username/password would cross the network unencrypted; "
                    "set starttls = true or use_tls = true"
                )
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.use_tls else 587 if self.starttls else 25)

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[1]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(config: Mapping[str, Any]) -> SmtpEmailConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(SmtpEmailConfig, config, "smtp", "docs/channels.md")


def message_id(message: Message, domain: str) -> str:
    """``<warnpub.KEY@domain>`` from the idempotency key (the delivery id when it has none);
    keys that are not a dot-atom are hashed, so the same key always gives the same id."""
    key = message.idempotency_key or f"delivery-{message.delivery_id}"
    if not _DOT_ATOM.fullmatch(key) or len(key) > 64:
        key = "k" + hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<warnpub.{key}@{domain}>"


class SmtpEmail:
    """An SMTP relay as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "email"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = cfg = parse_config(config)
        self.limits = Limits(
            max_batch=cfg.max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=cfg.burst or max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=False,
        )
        self.weight = cfg.weight
        self.connections_opened = 0  # for metrics and tests
        self._idle: list[aiosmtplib.SMTP] = []
        self._closing = False
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._sender = str(Address(display_name=cfg.from_name, addr_spec=cfg.from_address))

    def __repr__(self) -> str:
        cfg = self.config
        return f"SmtpEmail(name={self.name!r}, host={cfg.host!r}, port={cfg.effective_port})"

    async def start(self) -> None:
        """Connections open on first use, so a relay that is down at start-up only delays its
        messages."""
        self._closing = False

    async def close(self) -> None:
        """QUIT every idle connection; a connection busy in a send() is closed when it ends."""
        self._closing = True
        idle, self._idle = self._idle, []
        for smtp in idle:
            await self._discard(smtp, polite=True)

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        async with self._slots:
            smtp = self._idle.pop() if self._idle else None
            results: list[Result] = []
            unreachable = ""
            try:
                for m in messages:
                    if unreachable:
                        results.append(Result(m.delivery_id, Status.TRANSIENT, error=unreachable))
                        continue
                    result, smtp, unreachable = await self._send_one(smtp, m)
                    results.append(result)
            finally:
                if smtp is not None and smtp.is_connected and not self._closing:
                    self._idle.append(smtp)
                elif smtp is not None:
                    await self._discard(smtp, polite=True)
            return results

    # -- connections ---------------------------------------------------------------------

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.effective_port,
            use_tls=cfg.use_tls,
            start_tls=cfg.starttls,
            validate_certs=cfg.verify_tls,
            cert_bundle=cfg.ca_file,
            local_hostname=cfg.local_hostname,
            timeout=cfg.timeout_s,
        )
        try:
            await smtp.connect()
            if cfg.username is not None and cfg.password is not None:
                await smtp.login(cfg.username, cfg.password.get_secret_value())
        except BaseException:
            await self._discard(smtp)
            raise
        self.connections_opened += 1
        log.info(
            "email %s: connected to %s:%d%s%s",
            self.name,
            cfg.host,
            cfg.effective_port,
            " (STARTTLS)" if cfg.starttls else " (TLS)" if cfg.use_tls else "",
            " as " + cfg.username if cfg.username else "",
        )
        return smtp

    @staticmethod
    async def _discard(smtp: aiosmtplib.SMTP, *, polite: bool = False) -> None:
        if polite and smtp.is_connected:
            try:
                await smtp.quit(timeout=5)
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        smtp.close()

    # -- one message ---------------------------------------------------------------------

    async def _send_one(
        self, smtp: aiosmtplib.SMTP | None, m: Message
    ) -> tuple[Result, aiosmtplib.SMTP | None, str]:
        """(result, the connection to go on with, why the relay is unreachable or "")."""
        if not valid_address(m.address):
            error = mask(f"not an e-mail address: {m.address!r}")[:MAX_ERROR_CHARS]
            return Result(m.delivery_id, Status.PERMANENT, error=error), smtp, ""
        try:
            mime = self.build(m)
        except (ValueError, TypeError) as exc:
            error = mask(f"cannot build the message: {exc}")[:MAX_ERROR_CHARS]
            return Result(m.delivery_id, Status.PERMANENT, error=error), smtp, ""
        reused = smtp is not None and smtp.is_connected
        for attempt in (1, 2):
            if smtp is None or not smtp.is_connected:
                if smtp is not None:
                    await self._discard(smtp)
                try:
                    smtp = await self._connect()
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    error = self._unreachable(exc)
                    return Result(m.delivery_id, Status.TRANSIENT, error=error), None, error
            try:
                await smtp.send_message(
                    mime, sender=self.config.from_address, recipients=[m.address]
                )
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                # A reused connection the server had dropped: once more on a fresh one.
                await self._discard(smtp)
                smtp = None
                if attempt == 1 and reused:
                    continue
                return self._failed(m, exc), None, ""
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                result = self._failed(m, exc)
                if _breaks_connection(exc):
                    await self._discard(smtp)
                    smtp = None
                return result, smtp, ""
            return Result(m.delivery_id, Status.SENT, provider_ref=mime["Message-ID"]), smtp, ""
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def build(self, m: Message) -> EmailMessage:
        """The MIME message for ``m``: text (and HTML) part, Message-ID, delivery header."""
        cfg = self.config
        mime = EmailMessage(policy=SMTP_POLICY)
        mime["From"] = self._sender
        mime["To"] = m.address
        mime["Subject"] = _SPACES.sub(" ", m.subject or m.text[:60]).strip()
        mime["Date"] = format_datetime(utcnow())
        mime["Message-ID"] = message_id(m, cfg.domain)
        mime[DELIVERY_HEADER] = str(m.delivery_id)
        mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to warnings
        mime.set_content(m.text)
        if m.html:
            mime.add_alternative(m.html, subtype="html")
        if m.language:  # after the parts: set_content drops Content-* headers
            mime["Content-Language"] = m.language
        return mime

    # -- classification ------------------------------------------------------------------

    def _failed(self, m: Message, exc: BaseException) -> Result:
        status, error = classify(exc)
        error = mask(error)[:MAX_ERROR_CHARS]
        log.debug("email %s: delivery %s %s: %s", self.name, m.delivery_id, status.value, error)
        return Result(m.delivery_id, status, error=error)

    def _unreachable(self, exc: BaseException) -> str:
        cfg = self.config
        _, why = classify(exc)
        error = mask(f"cannot reach {cfg.host}:{cfg.effective_port}: {why}")[:MAX_ERROR_CHARS]
        log.warning("email %s: %s", self.name, error)
        return error


def _breaks_connection(exc: BaseException) -> bool:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421  # the server is closing the connection
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return any(e.code == 421 for e in exc.recipients)
    return not isinstance(exc, aiosmtplib.SMTPNotSupported | ValueError)


def _by_code(code: int, text: str) -> tuple[Status, str]:
    status = Status.PERMANENT if 500 <= code < 600 else Status.TRANSIENT
    return status, f"SMTP {code}: {text}".strip()


def classify(exc: BaseException) -> tuple[Status, str]:
    """The status and error text for an exception from connecting, AUTH or one transaction."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0]
        return _by_code(first.code, first.message)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return _by_code(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Status.TRANSIENT, (
            f"SMTP {exc.code}: the relay refused our sender {exc.sender} (check from_address): "
            f"{exc.message}"
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Status.TRANSIENT, (
            f"SMTP {exc.code}: the relay refused our login (check username and password)"
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Status.PERMANENT, f"the relay cannot take this message: {exc}"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return Status.TRANSIENT, f"timeout: {exc or 'no answer in time'}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Status.TRANSIENT, f"SMTP {exc.code}: {exc.message}"
    if isinstance(exc, ValueError):
        return Status.PERMANENT, f"refused before sending: {exc}"
    return Status.TRANSIENT, f"{type(exc).__name__}: {exc}"
