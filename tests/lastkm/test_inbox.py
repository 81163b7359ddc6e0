"""Inbound SMS callbacks that arrive together are applied in one transaction
(warnpub.lastkm.inbox), each in a savepoint of its own, and answered after the commit."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
from sqlalchemy import select

from tests.lastkm.conftest import PHONES, Village
from warnpub.api.context import SERVICES
from warnpub.callbacks.sms_receipts import InboundSms
from warnpub.lastkm import inbox as inbox_module
from warnpub.lastkm.inbox import ReplyInbox
from warnpub.storage.engine import Database
from warnpub.storage.tables import InboundMessage

STRANGERS = [f"+86139100000{i:02d}" for i in range(30)]


async def _stored(village: Village) -> list[str]:
    async with village.db.session() as s:
        return list((await s.execute(select(InboundMessage.sender))).scalars())


async def _post_inbound(village: Village, sender: str, text: str) -> int:
    """Through the gateway simulator, which signs and forwards to the app; the app's status."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{village.sim.url}/inbound", json={"from": sender, "text": text}
    ) as r:
        body = await r.json()
    return int(body["status"] or 0)


async def test_callbacks_that_come_together_share_a_transaction(village: Village) -> None:
    senders = [*STRANGERS, PHONES["contact_a"], PHONES["resident"]]
    await asyncio.gather(*(village.reply("x", "1234", phone=p) for p in senders))
    stored = await _stored(village)
    assert sorted(stored) == sorted(senders)  # every message kept, none twice
    inbox = village.client.app[SERVICES].inbox
    assert inbox is not None
    assert 1 <= inbox.batches < len(senders), inbox.batches


async def test_a_failing_callback_is_rolled_back_alone(village: Village, monkeypatch) -> None:
    real = inbox_module.handle_reply
    bad = STRANGERS[0]

    async def failing(session, sender, text, at):  # a fault no real peer produces on demand
        if sender == bad:
            raise RuntimeError("simulated failure while reading the reply")
        return await real(session, sender, text, at)

    monkeypatch.setattr(inbox_module, "handle_reply", failing)
    before = len(await _stored(village))
    results = await asyncio.gather(
        *(village.reply("x", "1234", phone=p) for p in STRANGERS[1:6]),
        _post_inbound(village, bad, "1234"),
        return_exceptions=True,
    )
    good = results[:5]
    assert all(isinstance(r, dict) and r["forwarded"] for r in good), results
    stored = await _stored(village)
    assert len(stored) == before + 5
    assert bad not in stored  # the failed callback left nothing, so the gateway's retry is safe
    # ... and the failure was an error to its gateway (it sends again), not a silent success.
    assert results[5] == 500, results[5]

    monkeypatch.setattr(inbox_module, "handle_reply", real)
    await village.reply("x", "1234", phone=bad)  # the gateway's retry is taken
    assert (await _stored(village)).count(bad) == 1



async def test_a_database_that_is_down_fails_every_caller_at_once(tmp_path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    attempts = 0

    @asynccontextmanager
    async def down(*, background: bool = False):  # a fault no real peer produces on demand
        nonlocal attempts
        attempts += 1
        raise OSError("the database is not reachable")
        yield  # pragma: no cover

    db.session = down  # type: ignore[method-assign]
    inbox = ReplyInbox(db)
    message = InboundSms(sender=STRANGERS[0], text="1234", at=None)
    results = await asyncio.wait_for(
        asyncio.gather(*(inbox.apply("sim0", [message]) for _ in range(5)), return_exceptions=True),
        5,
    )
    assert all(isinstance(r, OSError) for r in results), results
    assert attempts <= 2  # every waiting caller is told; no retry loop against a dead database
    await db.dispose()
