"""Contract harness for the ``smtp`` e-mail adapter (tests/channels/contract.py) against a real
aiosmtpd server on 127.0.0.1 (:class:`tests.channels.smtp_peer.MailPeer`)."""

from __future__ import annotations

from tests.channels.contract import Fault, Received
from tests.channels.smtp_peer import MailPeer
from warnpub.channels.base import Channel, Receipt
from warnpub.channels.email_smtp import SmtpEmail


class EmailHarness:
    name = "email-smtp"

    def __init__(self) -> None:
        self.peer = MailPeer()

    async def start(self) -> None:
        await self.peer.start()

    async def stop(self) -> None:
        await self.peer.stop()

    def build_channel(self) -> Channel:
        return SmtpEmail(
            "contract-smtp",
            {
                "host": "127.0.0.1",
                "port": self.peer.port,
                "from_address": "warn@warnpub.test",
                "from_name": "溧阳市预警信息发布中心",
                "timeout_s": 5,
                "max_batch": 50,
            },
        )

    def address(self, i: int) -> str:
        return f"resident{i}@village.example.cn"

    async def inject_fault(self, fault: Fault) -> None:
        self.peer.mailbox.fault = fault.value  # transient: 451, permanent: 550

    async def clear_faults(self) -> None:
        self.peer.mailbox.fault = None

    async def received(self) -> list[Received]:
        return [
            Received(address=to, text=mail.text, reference=str(mail.message["Message-ID"]))
            for mail in self.peer.mailbox.accepted
            for to in mail.rcpt_tos
        ]

    async def receipts(self) -> list[Receipt]:
        return []  # e-mail has no delivery receipts (limits.receipts is False)


HARNESS = EmailHarness
