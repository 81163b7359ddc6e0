"""Wake-ups by LISTEN/NOTIFY: the triggers announce queued rows, due timers and approved
warnings to the listener of the same schema; the listener comes back after its connection is
killed; and a dispatcher that polls only every 30 s plans and sends a warning approved by
another process (the API) at once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import func, select, text

from tests.cluster.conftest import county, release, until
from tests.dispatch.conftest import sms_config, start_sim
from warnpub.channels.registry import build_channels
from warnpub.clock import utcnow
from warnpub.cluster.notify import Listener, Work, parse
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.storage.tables import Delivery
from warnpub.timers import store


def test_payloads_name_their_schema():
    assert parse("s1:deliveries:sms,voice", "s1") == Work("deliveries", ("sms", "voice"))
    assert parse("s1:timers", "s1") == Work("timers")
    assert parse("s1:plan", "s1") == Work("plan")
    assert parse("s2:plan", "s1") is None and parse("s1:other", "s1") is None


async def test_triggers_notify_the_listener_and_it_reconnects(settings, db):
    world, client = await county(settings, db, people=30)
    heard: list[Work] = []
    states: list[bool] = []
    listener = Listener(
        settings.database.url,
        settings.database.schema_name,
        heard.append,
        states.append,
        check_s=0.5,
    )
    await listener.start()
    try:
        await until(lambda: _true(listener.connected), "the listener is connected")
        warning = await release(client, world)  # approved by the API: "plan"
        await until(lambda: _true(Work("plan") in heard), "plan heard")
        async with db.session() as s:  # a row queued by any writer: its kind
            await s.execute(
                text(
                    "INSERT INTO deliveries (warning_id, target_kind, target_id, channel, stage,"
                    " route, tier, priority, area_code, language, ack_required, state, attempts,"
                    " next_attempt_at, last_error, created_at) VALUES (:w, 'person', 999999,"
                    " 'voice', 0, 'voice', 0, 0, '320481116200', 'zh-CN', false, 'queued', 0,"
                    " now(), '', now())"
                ),
                {"w": warning},
            )
        await until(lambda: _true(Work("deliveries", ("voice",)) in heard), "voice rows heard")
        async with db.session() as s:  # a timer due in an hour: nobody is woken
            await store.schedule(s, "count", utcnow() + timedelta(hours=1))
        async with db.session() as s:  # a timer due now
            await store.schedule(s, "count", utcnow())
        await until(lambda: _true(Work("timers") in heard), "timers heard")
        assert heard.count(Work("timers")) == 1

        # The connection is killed (a failover, an idle-connection reaper): it comes back.
        async with db.session() as s:
            await s.execute(select(func.pg_terminate_backend(listener.connection_pid())))
        await until(
            lambda: _true(states[-2:] == [False, True] or states.count(True) >= 2),
            "the listener reconnected",
            timeout=10,
        )
        heard.clear()
        async with db.session() as s:
            await store.schedule(s, "count", utcnow())
        await until(lambda: _true(Work("timers") in heard), "heard after reconnecting")
    finally:
        await listener.stop()
        await client.close()


async def test_a_listening_dispatcher_plans_and_sends_at_once(settings, db):
    settings.cluster.poll_s = 30  # without a notification nothing would happen for 30 s
    settings.cluster.heartbeat_s = 0.2
    settings.cluster.dead_after_s = 2
    sim, sim_runner = await start_sim(receipts="none")
    world, client = await county(settings, db, people=40)
    settings.channels = {"sms": [sms_config(sim)]}
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    await dispatcher.start()
    try:
        await until(lambda: _true(dispatcher.listener.connected), "the dispatcher listens")
        await asyncio.sleep(0.5)  # its first looks found nothing; now it would wait 30 s
        started = time.monotonic()
        warning = await release(client, world)

        async def all_sent():
            async with db.reader() as s:
                states = dict(
                    (
                        await s.execute(
                            select(Delivery.state, func.count())
                            .where(Delivery.warning_id == warning, Delivery.channel == "sms")
                            .group_by(Delivery.state)
                        )
                    ).all()
                )
            return states and set(states) <= {"sent", "delivered", "failed"}

        await until(all_sent, "every SMS sent", timeout=10)
        assert time.monotonic() - started < 3.0, "woken by NOTIFY, not by the 30 s poll"
        assert sim.gateway.counts["messages"] > 0
    finally:
        await dispatcher.stop()
        await client.close()
        await sim_runner.cleanup()


async def _true(value: object) -> bool:
    return bool(value)
