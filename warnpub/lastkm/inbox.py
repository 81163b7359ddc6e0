"""Inbound SMS applied in batches: the gateways' inbound callbacks that arrive together share
one write transaction.

During a drill or a flood hundreds of village contacts answer within seconds. Each reply is
a small write (the message, an acknowledgement, a visit report, an answer), but on SQLite
every write transaction waits its turn for the one write lock and costs a sync to disk, so a
transaction per callback took the lock from the dispatcher for most of a second at a time.
Here every callback puts its messages in a queue and waits; one task takes what has queued
up and applies it in one transaction — taking callbacks until ``budget_s`` (0.1 s) has passed,
so the lock is never held long, and as a background writer, so the dispatcher's claims and
records go first — each callback's messages inside a savepoint of their own: a callback whose
reply fails is rolled back alone and gets its error, the others are kept. A callback is answered only after the commit, so a
gateway that got its 200 never loses a message, and one that did not sends it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.callbacks.sms_receipts import InboundSms
from warnpub.clock import utcnow
from warnpub.lastkm.replies import handle_reply
from warnpub.storage.engine import Database
from warnpub.storage.tables import InboundMessage

log = logging.getLogger("warnpub.lastkm")

MAX_MESSAGES = 500  # messages per transaction at most
BUDGET_S = 0.1  # no more callbacks are taken into a transaction after this


@dataclass(slots=True)
class _Waiting:
    gateway: str
    messages: Sequence[InboundSms]
    answer: asyncio.Future[list[str]]


class ReplyInbox:
    """The queue of one process's inbound callbacks over ``db``."""

    def __init__(
        self, db: Database, max_messages: int = MAX_MESSAGES, budget_s: float = BUDGET_S
    ) -> None:
        self.db = db
        self.max_messages = max_messages
        self.budget_s = budget_s
        self._queue: deque[_Waiting] = deque()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for tests and metrics)

    async def apply(self, gateway: str, messages: Sequence[InboundSms]) -> list[str]:
        """Store ``messages`` from ``gateway`` and act on them; what each did (the kinds of
        :class:`warnpub.lastkm.replies.Outcome`), once committed."""
        answer: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        # A caller that went away (the gateway hung up) leaves its outcome unread: read it here.
        answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(_Waiting(gateway, messages, answer))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="warnpub-reply-inbox")
        # The batch is applied whether or not this caller is still waiting for it.
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        while self._queue:
            await self._apply()

    async def _apply(self) -> None:
        """One transaction: callbacks taken from the queue until ``budget_s`` has passed (at
        least one), so the write lock is never held long; a background writer's turn, after
        the dispatcher's claims and records."""
        loop = asyncio.get_running_loop()
        taken: list[tuple[_Waiting, list[str] | BaseException]] = []
        try:
            async with self.db.session(background=True) as session:
                started, size = loop.time(), 0
                while self._queue and (not taken or loop.time() - started < self.budget_s):
                    if taken and size + len(self._queue[0].messages) > self.max_messages:
                        break
                    waiting = self._queue.popleft()
                    size += len(waiting.messages)
                    try:
                        async with session.begin_nested():
                            taken.append((waiting, await _store_and_read(session, waiting)))
                    except Exception as exc:  # this callback alone is rolled back
                        log.warning(
                            "inbound messages not applied",
                            extra={"gateway": waiting.gateway, "error": type(exc).__name__},
                            exc_info=True,
                        )
                        taken.append((waiting, exc))
        except Exception as exc:  # the commit failed: nothing was kept, every caller is told
            failed = [waiting for waiting, _ in taken]
            if not failed:  # no transaction at all (the database is down): fail what waits
                failed, self._queue = list(self._queue), deque()
            for waiting in failed:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        self.batches += 1
        for waiting, outcome in taken:
            if waiting.answer.done():
                continue
            if isinstance(outcome, BaseException):
                waiting.answer.set_exception(outcome)
            else:
                waiting.answer.set_result(outcome)


async def _store_and_read(session: AsyncSession, waiting: _Waiting) -> list[str]:
    outcomes: list[str] = []
    for m in waiting.messages:
        received = m.at or utcnow()
        session.add(
            InboundMessage(
                gateway=waiting.gateway, sender=m.sender, text=m.text[:2000], received_at=received
            )
        )
        # Stored and read in one savepoint: a reply is never half-applied.
        outcomes.append((await handle_reply(session, m.sender, m.text, received)).kind)
    await session.flush()
    return outcomes
