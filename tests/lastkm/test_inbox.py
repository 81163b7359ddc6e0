"""Inbound SMS callbacks that arrive together are applied in one transaction
(warnpub.lastkm.inbox), each in a savepoint of its own, and answered after the commit."""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy import select

from tests.lastkm.conftest import PHONES, Village
from warnpub.api.context import SERVICES
from warnpub.lastkm import inbox as inbox_module
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

