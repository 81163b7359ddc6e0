"""The real SMTP peer of the e-mail tests and of the e-mail contract harness.

:class:`MailPeer` is a real aiosmtpd server on 127.0.0.1 (a port the OS picks), optionally with
STARTTLS or implicit TLS and AUTH. Its :class:`Mailbox` handler accepts mail and injects the
faults a real relay produces: 451 (try later), 550 (mailbox unavailable), 553 (bad address),
421 (closing), 554 for rejected content, a slow answer, a dropped connection.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from ssl import SSLContext
from typing import Any

from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

# Local parts that make the mailbox refuse a recipient (whatever the domain).
REFUSALS = {
    "busy": "451 4.3.0 Mailbox busy, try again later",
    "gone": "550 5.1.1 Mailbox unavailable",
    "bad": "553 5.1.3 Bad destination mailbox address",
    "closing": "421 4.3.2 Service shutting down",
}
# Subjects (ASCII, so they appear as written in the raw message) that make DATA fail.
CONTENT_REJECTED = "REJECT-CONTENT"
CONTENT_DEFERRED = "DEFER-CONTENT"


@dataclass(frozen=True)
class Accepted:
    """One message the mailbox accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool  # the session was upgraded with STARTTLS
    login: str | None  # who authenticated, if anyone

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return body.get_content()


@dataclass
class Mailbox:
    """The aiosmtpd handler: records accepted mail, refuses on demand."""

    accepted: list[Accepted] = field(default_factory=list)
    fault: str | None = None  # "transient" (451) or "permanent" (550) for every recipient
    rcpt_delay_s: float = 0.0  # for local parts starting with "slow"
    credentials: tuple[str, str] | None = None
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, user)
    refused: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SmtpServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        local = address.split("@", 1)[0]
        if self.fault == "transient":
            return self._refuse(address, REFUSALS["busy"])
        if self.fault == "permanent":
            return self._refuse(address, REFUSALS["gone"])
        for prefix, reply in REFUSALS.items():
            if local.startswith(prefix):
                return self._refuse(address, reply)
        if local.startswith("slow"):
            await asyncio.sleep(self.rcpt_delay_s)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _refuse(self, address: str, reply: str) -> str:
        self.refused.append(address)
        return reply

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if f"Subject: {CONTENT_REJECTED}".encode() in content:
            return "554 5.6.0 Message content rejected"
        if f"Subject: {CONTENT_DEFERRED}".encode() in content:
            return "451 4.7.1 Please try again later"
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.accepted.append(
            Accepted(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 2.0.0 Message accepted"

    def authenticate(
        self, server: SmtpServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        if ok:
            self.logins.append((mechanism, data.login.decode()))
            return AuthResult(success=True, auth_data=data.login)
        return AuthResult(success=False, handled=False)


class MailPeer:
    """A real aiosmtpd SMTP server on 127.0.0.1 at a free port."""

    def __init__(
        self,
        mailbox: Mailbox | None = None,
        *,
        starttls: SSLContext | None = None,  # offer STARTTLS with this server context
        require_starttls: bool = False,
        implicit_tls: SSLContext | None = None,  # speak TLS from the first byte
        credentials: tuple[str, str] | None = None,  # require AUTH with these
        exclude_mechanisms: tuple[str, ...] = (),
        port: int = 0,  # 0: a free port the OS picks
    ) -> None:
        self.mailbox = mailbox or Mailbox()
        self.mailbox.credentials = credentials
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.implicit_tls = implicit_tls
        self.auth_required = credentials is not None
        self.exclude_mechanisms = exclude_mechanisms
        self.connections = 0
        self.port = port
        self._sessions: list[SmtpServer] = []
        self._server: asyncio.Server | None = None

    def _protocol(self) -> SmtpServer:
        self.connections += 1
        session = SmtpServer(
            self.mailbox,
            hostname="mail.warnpub.test",
            tls_context=self.starttls,
            require_starttls=self.require_starttls,
            auth_required=self.auth_required,
            # Over implicit TLS the whole session is encrypted already.
            auth_require_tls=self.implicit_tls is None,
            auth_exclude_mechanism=self.exclude_mechanisms,
            authenticator=self.mailbox.authenticate,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.append(session)
        return session

    async def start(self) -> MailPeer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, "127.0.0.1", self.port, ssl=self.implicit_tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def open_sessions(self) -> int:
        """Sessions whose connection the client has not closed yet."""
        return sum(
            1 for s in self._sessions if s.transport is not None and not s.transport.is_closing()
        )

    def drop_connections(self) -> None:
        """Close every open session from the server side (as a relay's idle timeout does)."""
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        self._sessions.clear()

    async def stop(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MailPeer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
