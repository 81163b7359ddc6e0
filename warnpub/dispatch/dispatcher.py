"""The dispatcher: planners, one worker per channel instance, and a sweeper, in one process.

``warnpub serve`` runs it beside the API. It is woken in-process when a warning is released
(approved or green channel) and polls the database as a fallback, so work released by
another process, or left behind by a crash, is picked up too.

On PostgreSQL (several processes, docs/operations.md) it is also a member of the cluster
(warnpub.cluster): it registers in the workers table and sizes its gateway rate windows to its
share, LISTENs for work that other processes queue (polling then only every ``[cluster]
poll_s``), and its workers extend the leases of the rows they hold in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select, update

from warnpub.audit.log import append as audit
from warnpub.channels.base import (
    Channel,
    ChannelError,
    PushesReceipts,
    Receipt,
    ReceiptSink,
    UsesDatabase,
    UsesSettings,
)
from warnpub.clock import utcnow
from warnpub.cluster.node import ClusterNode
from warnpub.cluster.notify import Listener, Work
from warnpub.cluster.planlock import plan_lock
from warnpub.cluster.shares import Shares
from warnpub.config import Settings
from warnpub.dispatch import broadcasts
from warnpub.dispatch.metrics import Metrics
from warnpub.dispatch.outbox import (
    AWAITING_RECEIPT,
    OPEN_STATES,
    PARTNER_CHANNELS,
    partner_id,
    release_expired_leases,
)
from warnpub.dispatch.planner import plan, unplanned
from warnpub.dispatch.receipts import apply_receipts
from warnpub.dispatch.render import MessageRenderer
from warnpub.dispatch.worker import IDLE_MAX_S, ChannelWorker
from warnpub.lastkm.ladder import audit_ladders
from warnpub.review import states
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, WarningRecord

log = logging.getLogger("warnpub.dispatch")
SWEEP_S = 2.0
PLAN_POLL_S = 2.0
# Every this many sweeps, warnings whose first speaker ack was missed get their re-broadcasts.
REBROADCAST_CHECK_EVERY = 30


def check_partners(instances: Sequence[Channel]) -> None:
    """Partner instances are told apart by :func:`~warnpub.dispatch.outbox.partner_id`; two
    names with the same number would take each other's rows."""
    seen: dict[int, str] = {}
    for channel in instances:
        number = partner_id(channel.name)
        if number in seen:
            raise ChannelError(
                f"channels.webhook: partners {seen[number]!r} and {channel.name!r} cannot be "
                "told apart (their names hash alike); rename one of them"
            )
        seen[number] = channel.name


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, channels: dict[str, list[Channel]]
    ) -> None:
        self.db, self.settings, self.channels = db, settings, channels
        # host:pid and a few random characters: a process restarted with the same pid (pid 1
        # in a container) is not mistaken for the one that died holding leases.
        self.owner = f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.renderer = MessageRenderer(settings)
        self.metrics = Metrics()
        self.workers: list[ChannelWorker] = []
        check_partners(channels.get("webhook", []))
        for kind, instances in channels.items():
            total = sum(max(c.weight, 0.0) for c in instances) or 1.0
            if kind in PARTNER_CHANNELS:
                total = 0.0  # each partner has rows of its own: no sharing by weight
            for channel in instances:
                self.workers.append(
                    ChannelWorker(
                        db,
                        settings,
                        channel,
                        self.renderer,
                        self.owner,
                        share=max(channel.weight, 0.0) / total if total else 1.0,
                        metrics=self.metrics,
                    )
                )
        for w in self.workers:
            # A partner's rows are its own: no other instance can take them over.
            if w.pin is None:
                w.siblings = [o for o in self.workers if o.kind == w.kind and o is not w]
        self._stopping = asyncio.Event()
        self._plan_wake = asyncio.Event()
        self._plan_poll_s = PLAN_POLL_S
        # Called when a timer is due now (a notification): the timer runners of this process.
        self.timer_pokes: list[Callable[[], None]] = []
        self.node: ClusterNode | None = None
        self.listener: Listener | None = None
        if db.dialect == "postgresql":
            self._join_cluster()
        self._tasks: list[asyncio.Task[None]] = []
        self._planning: dict[str, asyncio.Task[int]] = {}
        self._sweeps = 0
        self._ladders_audited: datetime | None = None
        # Speaker instances for re-broadcasts and stop commands (the timers find them here).
        self.broadcaster = broadcasts.Broadcaster(
            settings,
            self.renderer,
            {
                c.name: c
                for c in channels.get(broadcasts.CHANNEL, [])
                if isinstance(c, broadcasts.Speaker)
            },
        )

    def _join_cluster(self) -> None:
        """PostgreSQL: membership and rate shares, the LISTEN connection, lease heartbeats."""
        c = self.settings.cluster
        shares = Shares({w.owner: w.rate for w in self.workers}, on_change=self._shares_changed)
        self.node = ClusterNode(self.db, c, self.owner, shares)
        lease_every = c.lease_heartbeat_s or self.settings.dispatch.lease_seconds / 3
        for w in self.workers:
            w.lease_every = lease_every
        if c.listen:
            self.listener = Listener(
                self.settings.database.url,
                self.settings.database.schema_name,
                self._heard,
                self._listening,
                check_s=c.poll_s,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        for instances in self.channels.values():
            for channel in instances:
                if isinstance(channel, PushesReceipts):
                    channel.bind_receipts(self._receipt_sink(channel.name))
                if isinstance(channel, UsesDatabase):
                    channel.bind_database(self.db)
                if isinstance(channel, UsesSettings):
                    channel.bind_settings(self.settings)
                await channel.start()
        broadcasts.register(self.broadcaster)
        if self.node is not None:
            # Registered, and the rate windows sized to this worker's share, before any sends.
            await self.node.start()
        self._tasks = [
            asyncio.create_task(w.run(self._stopping), name=w.owner) for w in self.workers
        ]
        self._tasks.append(asyncio.create_task(self._plan_loop(), name="planner"))
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="sweeper"))
        if self.listener is not None:
            await self.listener.start()
        log.info(
            "dispatcher started",
            extra={"owner": self.owner, "workers": [w.owner for w in self.workers]},
        )

    async def stop(self) -> None:
        """Stop claiming; rows claimed but not sent go back to the queue at once, calls in
        flight finish and are recorded; close the channels; leave the cluster."""
        self._stopping.set()
        self._plan_wake.set()
        if self.listener is not None:
            await self.listener.stop()
        for w in self.workers:
            w.wake.set()
        for task in self._planning.values():
            task.cancel()
        await asyncio.gather(*self._tasks, *self._planning.values(), return_exceptions=True)
        broadcasts.unregister(self.broadcaster)
        for instances in self.channels.values():
            for channel in instances:
                await channel.close()
        if self.node is not None:
            await self.node.stop()
        log.info("dispatcher stopped", extra={"owner": self.owner})

    # -- the cluster (PostgreSQL) ---------------------------------------------------------------

    def _shares_changed(self) -> None:
        for w in self.workers:
            w.nudge()

    def _heard(self, work: Work) -> None:
        """A notification: wake whatever it concerns."""
        if work.topic == "deliveries":
            self.poke(work.kinds or None)
        elif work.topic == "plan":
            self.released()
        elif work.topic == "timers":
            self._poke_timers()

    def _listening(self, connected: bool) -> None:
        """With the LISTEN connection up, polling is only a slow fallback; while it is down,
        the usual fast polling. Notifications may have been missed: look for everything."""
        poll_s = self.settings.cluster.poll_s
        self._plan_poll_s = max(poll_s, PLAN_POLL_S) if connected else PLAN_POLL_S
        for w in self.workers:
            w.idle_max_s = max(poll_s, IDLE_MAX_S) if connected else IDLE_MAX_S
        if connected:
            self.released()
            self.poke()
            self._poke_timers()

    def _poke_timers(self) -> None:
        for poke in self.timer_pokes:
            poke()

    def _receipt_sink(self, gateway: str) -> ReceiptSink:
        async def sink(receipts: Sequence[Receipt]) -> None:
            rounds, receipts = broadcasts.split_rounds(receipts)
            async with self.db.session() as session:
                if receipts:
                    available = frozenset(self.settings.channels)
                    await apply_receipts(session, gateway, receipts, available)
                    if gateway in self.broadcaster.speakers:  # a play heard: round 2 due
                        played = await broadcasts.warnings_of(session, receipts)
                        await broadcasts.start_rebroadcasts(
                            session, self.settings, utcnow(), warning_ids=played
                        )
                if rounds:  # acks of re-broadcasts: speaker_rounds, never the deliveries
                    await broadcasts.record_round_acks(session, rounds)
            self.poke()

        return sink

    # -- events ----------------------------------------------------------------------------------

    def released(self, warning_id: str | None = None) -> None:
        """A warning was released (or cancelled): plan now instead of at the next poll."""
        self._plan_wake.set()

    def poke(self, kinds: Iterable[str] | None = None) -> None:
        wanted = set(kinds) if kinds is not None else None
        for w in self.workers:
            if wanted is None or w.kind in wanted:
                w.wake.set()

    # -- loops -----------------------------------------------------------------------------------

    async def _plan_loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before looking, so that a release during the look is not missed.
            self._plan_wake.clear()
            try:
                for warning_id in await unplanned(self.db):
                    if warning_id not in self._planning:
                        self._planning[warning_id] = asyncio.create_task(self._plan(warning_id))
            except Exception:
                log.exception("planner poll failed")
            try:
                await asyncio.wait_for(self._plan_wake.wait(), timeout=self._plan_poll_s)
            except TimeoutError:
                pass

    async def _plan(self, warning_id: str) -> int:
        try:
            async with plan_lock(self.db, warning_id) as mine:
                if not mine:  # another process plans it (PostgreSQL)
                    return 0
                return await plan(self.db, self.settings, warning_id, self.poke)
        except Exception:
            log.exception("planning failed; it will be retried", extra={"warning_id": warning_id})
            return 0
        finally:
            self._planning.pop(warning_id, None)

    async def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=SWEEP_S)
            except TimeoutError:
                pass

    async def receipt_health(self) -> None:
        """Demote gateways whose receipts are late: of the messages each sent in the last few
        receipt periods, most still wait past ``demote_receipt_s`` (or the instance's own
        ``receipt_late_s``: a voice call rings and is retried for minutes by design); restore
        them when not."""
        by_limit: dict[float, list[ChannelWorker]] = {}
        for w in self.workers:
            if w.channel.limits.receipts:
                limit = w.channel.limits.receipt_late_s or self.settings.dispatch.demote_receipt_s
                by_limit.setdefault(limit, []).append(w)
        now = utcnow()
        for late_after, workers in by_limit.items():
            late = await self._late_receipts(now, late_after, workers)
            for w in workers:
                total, overdue = late.get((w.kind, w.name), (0, 0))
                w.health.slow_receipts = total >= 20 and overdue * 2 > total

    async def _late_receipts(
        self, now: datetime, late_after: float, workers: list[ChannelWorker]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(channel, instance) → (messages sent lately, of them still waiting or given up)."""
        since = now - timedelta(seconds=max(late_after * 5, 60.0))
        overdue = or_(
            Delivery.state == "expired",
            and_(Delivery.state == "sent", Delivery.sent_at < now - timedelta(seconds=late_after)),
        )
        # Grouped by expressions, not the bare columns: otherwise SQLite (without statistics)
        # walks the claim index, which delivers that order, over every row ever written,
        # instead of reading the rows sent lately from ix_deliveries_sent_at.
        kind, gateway = Delivery.channel.concat(""), Delivery.gateway.concat("")
        async with self.db.reader() as session:
            rows = (
                await session.execute(
                    select(kind, gateway, func.count(), func.sum(case((overdue, 1), else_=0)))
                    .where(
                        Delivery.sent_at >= since,
                        Delivery.gateway.in_(sorted({w.name for w in workers})),
                        Delivery.state.in_(("sent", "delivered", "expired")),
                    )
                    .group_by(kind, gateway)
                )
            ).all()
        return {(kind, gw): (total, int(n or 0)) for kind, gw, total, n in rows}

    def _receipt_overdue(self, now: datetime) -> ColumnElement[bool]:
        """Sent rows whose receipt is overdue: ``[dispatch] receipt_timeout_s``, or the
        instance's own shorter ``receipt_timeout_s`` (a board that has not shown a warning in
        half an hour is unreached long before an SMS receipt is given up on)."""
        default = self.settings.dispatch.receipt_timeout_s
        known, overdue = [], []
        for w in self.workers:
            seconds = min(default, w.channel.limits.receipt_timeout_s)
            mine = and_(Delivery.channel == w.kind, Delivery.gateway == w.name)
            known.append(mine)
            overdue.append(and_(mine, Delivery.sent_at < now - timedelta(seconds=seconds)))
        cutoff = now - timedelta(seconds=default)
        others = (
            and_(not_(or_(*known)), Delivery.sent_at < cutoff)
            if known
            else (Delivery.sent_at < cutoff)
        )
        return or_(*overdue, others)

    async def sweep(self) -> None:
        """Reclaim dead workers' leases, end receipts that never came, complete finished warnings."""
        await self.receipt_health()
        if await release_expired_leases(self.db):
            self.poke()
        now = utcnow()
        async with self.db.session() as session:
            # Silent speaker groups are played again, then unreached (before they expire).
            requeued, _ = await broadcasts.retry_silent(
                session, self._silent_policies(), now, frozenset(self.settings.channels)
            )
            await session.execute(
                update(Delivery)
                .where(AWAITING_RECEIPT, self._receipt_overdue(now))
                .values(state="expired", final_at=now, last_error="no delivery receipt in time")
            )
            # A warning is complete when every row is final: nothing waits to be sent, and
            # nothing sent waits for its receipt (those end by receipt or by the timeout above).
            # Asked per dispatching warning, each through an index on its own rows.
            mine = Delivery.warning_id == WarningRecord.id
            open_rows = select(Delivery.id).where(mine, Delivery.state.in_(OPEN_STATES))
            awaiting = select(Delivery.id).where(mine, AWAITING_RECEIPT)
            done = (
                (
                    await session.execute(
                        select(WarningRecord)
                        .where(
                            WarningRecord.state == states.DISPATCHING,
                            WarningRecord.planned_at.is_not(None),
                            ~open_rows.exists(),
                            ~awaiting.exists(),
                        )
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            for warning in done:
                states.move(warning, states.COMPLETED)
                warning.completed_at = now
                count = (
                    await session.execute(
                        select(func.count())
                        .select_from(Delivery)
                        .where(Delivery.warning_id == warning.id)
                    )
                ).scalar_one()
                await audit(
                    session,
                    "system",
                    "warning.completed",
                    f"warning:{warning.id}",
                    deliveries=count,
                )
        if requeued:
            self.poke([broadcasts.CHANNEL])
        self._sweeps += 1
        if self.broadcaster.speakers and self._sweeps % REBROADCAST_CHECK_EVERY == 1:
            await broadcasts.start_missed_rebroadcasts(self.db, self.settings, now)
        await self._audit_ladders(now)

    async def _audit_ladders(self, now: datetime) -> None:
        """Resume escalation ladders that stalled (warnpub.lastkm.ladder.audit_ladders)."""
        every = self.settings.escalation.auditor_every_s
        if self._ladders_audited is not None and (now - self._ladders_audited).total_seconds() < every:
            return
        self._ladders_audited = now
        async with self.db.session() as session:
            await audit_ladders(session, now)

    def _silent_policies(self) -> dict[str, broadcasts.SilentPolicy]:
        """Speaker instances that play a silent group again: name → (ack timeout, retries)."""
        default = self.settings.dispatch.receipt_timeout_s
        return {
            w.name: broadcasts.SilentPolicy(
                min(default, w.channel.limits.receipt_timeout_s), w.channel.ack_retries
            )
            for w in self.workers
            if w.kind == broadcasts.CHANNEL
            and isinstance(w.channel, broadcasts.RetriesSilentGroups)
        }
