"""Loudspeakers after the first play: re-broadcast rounds, stop on Cancel, silent groups.

Three jobs, each durable (a timer row or a delivery row says what is left to do):

- **Re-broadcasts.** Once a warning in force has its first acknowledged speaker play, the
  sweeper schedules a ``speaker.rebroadcast`` timer ``[speakers] rebroadcast_every_s`` (per
  level) after that play. When it fires, and the warning is still in force (approved,
  dispatching or completed, not past ``expires_at``, not replaced by an approved Update), the
  play command goes again to every speaker group that got one, with the reference
  ``wp-<delivery id>-r<round>``; each group's round is a row of ``speaker_rounds`` (acks of
  that reference mark it acknowledged), and the next round's timer is written in the same
  transaction. The timer store fires each timer once, so each round is published once.
- **Stop on Cancel.** Cancelling a warning (an operator, or an approved CAP Cancel) schedules a
  ``speaker.stop`` timer in the cancel's own transaction. It publishes a stop command for
  every reference a group was given (the delivery's and its latest round's); a publish that
  fails makes the timer fail, and the timer store tries it again with backoff.
- **Silent groups.** A speaker delivery still unacknowledged after the instance's
  ``ack_timeout_s`` is queued again (same reference: a group that did play only answers again)
  while it has been played fewer than ``1 + ack_retries`` times; then it fails as
  ``unreached: no acknowledgement after N plays`` and the route moves on.

Timer handlers need the speaker channel instances, which live in the dispatcher: a running
:class:`~warnpub.dispatch.dispatcher.Dispatcher` registers a :class:`Broadcaster` here. A process
that runs timers without one (``warnpub serve --no-dispatch``) hands each speaker timer on: it
writes a copy due a few seconds later for a process that has the channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audit.log import append as audit
from warnpub.channels.base import Limits, Message, Receipt, Result, Status
from warnpub.channels.speaker_wire import round_of, round_reference
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.dispatch.addresses import addresses
from warnpub.dispatch.outbox import Claimed
from warnpub.dispatch.render import MessageRenderer
from warnpub.dispatch.results import advance
from warnpub.review import states
from warnpub.speakers.tables import SpeakerRound
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, Timer, WarningRecord, WarningReference
from warnpub.timers import store as timers

log = logging.getLogger("warnpub.dispatch.broadcasts")

REBROADCAST = "speaker.rebroadcast"
STOP = "speaker.stop"
CHANNEL = "speaker"
IN_FORCE = (states.APPROVED, states.DISPATCHING, states.COMPLETED)
# A timer taken by a process without speaker channels is handed on after this (doubling).
DEFER_S = 5.0
DEFER_MAX_S = 60.0
# A cancelled warning's rows still being sent get another stop this much later (at most
# STOP_PASSES stops in all).
STOP_AGAIN_S = 10.0
STOP_PASSES = 30
STOP_CONCURRENCY = 100  # stop commands awaiting the broker's PUBACK at once
MAX_ERROR_CHARS = 500


class NotPublished(Exception):
    """A round or stop could not be published now; the timer store tries again later."""


@runtime_checkable
class Speaker(Protocol):
    """What re-broadcasts and stops need of a speaker channel instance (``MqttSpeaker``)."""

    kind: ClassVar[str]
    name: str
    limits: Limits

    @property
    def connected(self) -> bool: ...

    async def send(self, messages: Sequence[Message]) -> list[Result]: ...

    async def stop(self, address: str, reference: str) -> Result: ...


@runtime_checkable
class RetriesSilentGroups(Protocol):
    """A channel whose silent targets are played again ``ack_retries`` times."""

    ack_retries: int


@dataclass
class Broadcaster:
    """One dispatcher's speaker instances (by name), its settings and its renderer."""

    settings: Settings
    renderer: MessageRenderer
    speakers: dict[str, Speaker]

    def speaker_for(self, gateway: str | None) -> Speaker | None:
        """The instance that sent a delivery, or else any speaker instance."""
        if gateway is not None and gateway in self.speakers:
            return self.speakers[gateway]
        return next(iter(self.speakers.values()), None)


_ACTIVE: list[Broadcaster] = []


def register(broadcaster: Broadcaster) -> None:
    _ACTIVE.append(broadcaster)


def unregister(broadcaster: Broadcaster) -> None:
    if broadcaster in _ACTIVE:
        _ACTIVE.remove(broadcaster)


def active() -> Broadcaster | None:
    """The broadcaster of this process's running dispatcher (the latest started)."""
    for b in reversed(_ACTIVE):
        if b.speakers:
            return b
    return None


# -- is the warning still in force? ---------------------------------------------------------


async def not_in_force(session: AsyncSession, warning: WarningRecord, now: datetime) -> str | None:
    """Why ``warning`` must not be broadcast any more; None while it is in force."""
    if warning.state not in IN_FORCE:
        return f"it is {warning.state}"
    if warning.expires_at is not None and warning.expires_at <= now:
        return "it has expired"
    newer = (
        await session.execute(
            select(WarningRecord.id)
            .join(WarningReference, WarningReference.warning_id == WarningRecord.id)
            .where(
                WarningReference.referenced_id == warning.id,
                WarningRecord.msg_type == "Update",
                WarningRecord.state.in_(IN_FORCE),
            )
            .limit(1)
        )
    ).scalar()
    if newer is not None:
        return f"it was updated by warning {newer}"
    return None


# -- starting the rounds (the sweeper) -------------------------------------------------------


async def start_rebroadcasts(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    *,
    warning_ids: Sequence[str] | None = None,
) -> int:
    """Schedule the first re-broadcast (round 2) of each warning in force whose level
    re-broadcasts, that has an acknowledged speaker play and no re-broadcast timer yet (of
    ``warning_ids``, or of every warning in force); returns how many. Due
    ``rebroadcast_every_s`` after the warning's first acknowledged play.

    The receipt sink calls it in the transaction that records the acks, so a delivered
    speaker play and its first round are committed together; the sweeper calls it now and
    then for anything missed. Two processes scheduling the same first round collide on the
    timer's dedupe key (IntegrityError): the caller's transaction is retried or dropped."""
    every = settings.speakers.rebroadcast_every_s
    if not every or (warning_ids is not None and not warning_ids):
        return 0
    q = select(WarningRecord.id, WarningRecord.level, WarningRecord.expires_at).where(
        WarningRecord.state.in_(IN_FORCE),
        WarningRecord.level.in_(sorted(every)),
        or_(WarningRecord.expires_at.is_(None), WarningRecord.expires_at > now),
    )
    if warning_ids is not None:
        q = q.where(WarningRecord.id.in_(sorted(set(warning_ids))))
    candidates = {c.id: c for c in (await session.execute(q)).all()}
    if not candidates:
        return 0
    started = set(
        (
            await session.execute(
                select(Timer.warning_id)
                .where(Timer.warning_id.in_(sorted(candidates)), Timer.kind == REBROADCAST)
                .distinct()
            )
        ).scalars()
    )
    waiting = sorted(set(candidates) - started)
    if not waiting:
        return 0
    first = (
        await session.execute(
            select(Delivery.warning_id, func.min(Delivery.final_at))
            .where(
                Delivery.warning_id.in_(waiting),
                Delivery.channel == CHANNEL,
                Delivery.state == "delivered",
            )
            .group_by(Delivery.warning_id)
        )
    ).all()
    n = 0
    for warning_id, played in first:
        c = candidates[warning_id]
        if played is None:
            continue
        due = played + timedelta(seconds=every[c.level])
        if c.expires_at is not None and due >= c.expires_at:
            continue
        await timers.schedule(
            session,
            REBROADCAST,
            max(due, now),
            warning_id=c.id,
            dedupe_key=f"{REBROADCAST}:{c.id}:2",
            payload={"round": 2},
        )
        log.info(
            "speaker re-broadcasts scheduled",
            extra={"warning_id": c.id, "level": c.level, "first_due": due.isoformat()},
        )
        n += 1
    return n


async def start_missed_rebroadcasts(db: Database, settings: Settings, now: datetime) -> int:
    """The sweeper's fallback of :func:`start_rebroadcasts` over every warning in force."""
    try:
        async with db.session() as session:
            return await start_rebroadcasts(session, settings, now)
    except IntegrityError:
        # Another process scheduled the same first round at the same moment: it stands.
        log.debug("speaker re-broadcast already scheduled by another process")
        return 0


async def warnings_of(session: AsyncSession, receipts: Sequence[Receipt]) -> list[str]:
    """The warnings of the speaker deliveries that ``receipts`` report played."""
    ids = sorted(
        {r.delivery_id for r in receipts if r.delivery_id and r.status is Status.DELIVERED}
    )
    refs = sorted(
        {r.provider_ref for r in receipts if r.provider_ref and r.status is Status.DELIVERED}
    )
    if not ids and not refs:
        return []
    q = (
        select(Delivery.warning_id)
        .where(
            Delivery.channel == CHANNEL,
            or_(Delivery.id.in_(ids), Delivery.provider_ref.in_(refs)),
        )
        .distinct()
    )
    return list((await session.execute(q)).scalars())


# -- the timers -------------------------------------------------------------------------------


async def on_rebroadcast(session: AsyncSession, timer: Timer) -> None:
    """Fire one re-broadcast round and schedule the next (timer kind ``speaker.rebroadcast``)."""
    assert timer.warning_id is not None
    round_no = int(timer.payload.get("round", 2))
    b = active()
    if b is None:
        await _defer(session, timer)
        return
    warning = (
        (
            await session.execute(
                select(WarningRecord).where(WarningRecord.id == timer.warning_id).with_for_update()
            )
        )
        .scalars()
        .first()
    )
    if warning is None:
        return
    now = utcnow()
    cfg = b.settings.speakers
    every = cfg.rebroadcast_every_s.get(warning.level)  # type: ignore[call-overload]
    why = await not_in_force(session, warning, now)
    if why is None and every is None:
        why = f"[speakers] rebroadcast_every_s names no interval for {warning.level} warnings"
    if why is None and cfg.max_rounds and round_no - 1 > cfg.max_rounds:
        why = f"[speakers] max_rounds ({cfg.max_rounds}) re-broadcasts were made"
    targets = [] if why else await _played(session, warning.id)
    if why is None and not targets:
        why = "no speaker group was played"
    if why is not None:
        log.info(
            "speaker re-broadcasts end",
            extra={"warning_id": warning.id, "round": round_no, "reason": why},
        )
        await audit(
            session,
            "system",
            "speaker.rebroadcasts_ended",
            f"warning:{warning.id}",
            round=round_no,
            reason=why,
        )
        return
    assert every is not None
    outcome = await _publish_round(session, b, targets, round_no, now)
    await _record_round(session, warning.id, targets, round_no, outcome, now)
    failed = {d: e for d, (ok, e) in outcome.items() if not ok}
    await audit(
        session,
        "system",
        "speaker.rebroadcast",
        f"warning:{warning.id}",
        round=round_no,
        groups=len(targets),
        published=len(targets) - len(failed),
        failed=len(failed),
    )
    log.info(
        "speaker re-broadcast published",
        extra={
            "warning_id": warning.id,
            "round": round_no,
            "groups": len(targets),
            "failed": len(failed),
        },
    )
    due = timer.due_at + timedelta(seconds=every)
    if due <= now:
        due = now + timedelta(seconds=every)
    if warning.expires_at is not None and due >= warning.expires_at:
        return
    if cfg.max_rounds and round_no - 1 >= cfg.max_rounds:
        return
    await timers.schedule(
        session, REBROADCAST, due, warning_id=warning.id, payload={"round": round_no + 1}
    )


async def on_stop(session: AsyncSession, timer: Timer) -> None:
    """Publish stop commands for a cancelled warning's speaker groups (``speaker.stop``)."""
    assert timer.warning_id is not None
    stop_pass = int(timer.payload.get("pass", 1))
    b = active()
    if b is None:
        await _defer(session, timer)
        return
    rows = await _played(session, timer.warning_id, states_=None)
    claimed = [_claimed(d) for d in rows]
    where = await addresses(session, claimed) if claimed else {}
    latest = dict(
        (
            await session.execute(
                select(SpeakerRound.delivery_id, func.max(SpeakerRound.round))
                .where(
                    SpeakerRound.warning_id == timer.warning_id,
                    SpeakerRound.published_at.is_not(None),
                )
                .group_by(SpeakerRound.delivery_id)
            )
        ).all()
    )
    commands: list[tuple[Speaker, str, str]] = []
    no_address = 0
    for d in rows:
        address = where.get(d.id or 0)
        channel = b.speaker_for(d.gateway)
        if not address or channel is None:
            no_address += 1
            continue
        references = [f"wp-{d.id}"]
        if d.id in latest:
            references.append(round_reference(d.id or 0, latest[d.id]))
        commands.extend((channel, address, ref) for ref in references)
    for channel in {id(c): c for c, _, _ in commands}.values():
        if not channel.connected:
            raise NotPublished(f"speaker instance {channel.name} is not connected to its broker")
    results: list[Result] = []
    for i in range(0, len(commands), STOP_CONCURRENCY):
        results.extend(
            await asyncio.gather(
                *(ch.stop(address, ref) for ch, address, ref in commands[i : i + STOP_CONCURRENCY])
            )
        )
    transient = [r for r in results if r.status is Status.TRANSIENT]
    if transient:
        raise NotPublished(
            f"{len(transient)} of {len(results)} stop commands not published: {transient[0].error}"
        )
    refused = [
        f"{address} {ref}: {r.error}"
        for (_, address, ref), r in zip(commands, results, strict=True)
        if r.status is Status.PERMANENT
    ]
    sending = (
        await session.execute(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.warning_id == timer.warning_id,
                Delivery.channel == CHANNEL,
                Delivery.state == "sending",
            )
        )
    ).scalar_one()
    await audit(
        session,
        "system",
        "speaker.stopped",
        f"warning:{timer.warning_id}",
        groups=len(rows) - no_address,
        commands=len(commands) - len(refused),
        refused=refused[:20],
        without_address=no_address,
        still_sending=sending,
        stop_pass=stop_pass,
    )
    log.info(
        "speaker stop commands published",
        extra={
            "warning_id": timer.warning_id,
            "groups": len(rows) - no_address,
            "commands": len(commands),
            "refused": len(refused),
            "still_sending": sending,
        },
    )
    if sending and stop_pass < STOP_PASSES:
        # Rows claimed before the cancel are still being sent: stop those groups too.
        await timers.schedule(
            session,
            STOP,
            utcnow() + timedelta(seconds=STOP_AGAIN_S),
            warning_id=timer.warning_id,
            payload={"pass": stop_pass + 1},
        )


async def schedule_stop(session: AsyncSession, warning_id: str) -> bool:
    """On cancel (in its transaction): stop the warning's speaker groups, if any was played
    or is being played. True when a ``speaker.stop`` timer was written."""
    played = (
        await session.execute(
            select(Delivery.id)
            .where(
                Delivery.warning_id == warning_id,
                Delivery.channel == CHANNEL,
                or_(Delivery.sent_at.is_not(None), Delivery.state == "sending"),
            )
            .limit(1)
        )
    ).scalar()
    if played is None:
        return False
    await timers.schedule(
        session,
        STOP,
        utcnow(),
        warning_id=warning_id,
        dedupe_key=f"{STOP}:{warning_id}",
        payload={"pass": 1},
    )
    return True


async def _defer(session: AsyncSession, timer: Timer) -> None:
    """No speaker channel in this process: a copy of the timer for a process that has one."""
    handed = int(timer.payload.get("handed_on", 0))
    delay = min(DEFER_MAX_S, DEFER_S * 2**handed)
    log.warning(
        "speaker timer handed on: this process has no speaker channel",
        extra={"timer_id": timer.id, "kind": timer.kind, "warning_id": timer.warning_id},
    )
    await timers.schedule(
        session,
        timer.kind,
        utcnow() + timedelta(seconds=delay),
        warning_id=timer.warning_id,
        payload={**timer.payload, "handed_on": handed + 1},
    )


async def _played(
    session: AsyncSession, warning_id: str, states_: tuple[str, ...] | None = ("cancelled",)
) -> list[Delivery]:
    """The warning's speaker deliveries that got a play command (``sent_at`` set), without
    those in ``states_`` (by default: cancelled ones). ``None``: all of them."""
    q = select(Delivery).where(
        Delivery.warning_id == warning_id,
        Delivery.channel == CHANNEL,
        Delivery.target_kind == "device",
        Delivery.sent_at.is_not(None),
    )
    if states_:
        q = q.where(Delivery.state.not_in(states_))
    return list((await session.execute(q.order_by(Delivery.priority, Delivery.id))).scalars())


async def _publish_round(
    session: AsyncSession,
    b: Broadcaster,
    targets: Sequence[Delivery],
    round_no: int,
    now: datetime,
) -> dict[int, tuple[bool, str]]:
    """Publish round ``round_no`` to ``targets``: delivery id → (published, error). Raises
    :class:`NotPublished` when any group could not be reached for now (the whole round is
    tried again; a group plays each reference once, so a second publish is harmless)."""
    claimed = [_claimed(d) for d in targets]
    where = await addresses(session, claimed)
    outcome: dict[int, tuple[bool, str]] = {}
    batches: dict[str, tuple[Speaker, list[Message]]] = {}
    for d, c in zip(targets, claimed, strict=True):
        address = where.get(c.id)
        channel = b.speaker_for(d.gateway)
        if not address or channel is None:
            outcome[c.id] = (False, "the speaker group has no address")
            continue
        message = await b.renderer.message(session, c, address)
        message = replace(message, idempotency_key=round_reference(c.id, round_no))
        batches.setdefault(channel.name, (channel, []))[1].append(message)
    for channel, messages in batches.values():
        if not channel.connected:
            raise NotPublished(f"speaker instance {channel.name} is not connected to its broker")
        size = max(1, channel.limits.max_batch)
        for i in range(0, len(messages), size):
            for r in await channel.send(messages[i : i + size]):
                if r.status is Status.TRANSIENT:
                    raise NotPublished(f"round {round_no} not published: {r.error}")
                ok = r.status in (Status.SENT, Status.DELIVERED)
                outcome[r.delivery_id] = (ok, "" if ok else r.error[:MAX_ERROR_CHARS])
    return outcome


async def _record_round(
    session: AsyncSession,
    warning_id: str,
    targets: Sequence[Delivery],
    round_no: int,
    outcome: dict[int, tuple[bool, str]],
    now: datetime,
) -> None:
    rows = []
    for d in targets:
        ok, error = outcome.get(d.id or 0, (False, "no result from the channel"))
        rows.append(
            {
                "warning_id": warning_id,
                "device_id": d.target_id,
                "round": round_no,
                "delivery_id": d.id,
                "reference": round_reference(d.id or 0, round_no),
                "published_at": now if ok else None,
                "acknowledged_at": None,
                "error": error,
            }
        )
    # An ack may have been recorded before this commits (a fast group): keep it.
    await _upsert(session, rows, ("published_at", "error"))


# -- acknowledgements of rounds (the receipt sink) -------------------------------------------


def split_rounds(receipts: Sequence[Receipt]) -> tuple[list[Receipt], list[Receipt]]:
    """(acks of re-broadcast rounds, every other receipt). Round acks never touch deliveries."""
    rounds, others = [], []
    for r in receipts:
        (rounds if r.provider_ref and round_of(r.provider_ref) else others).append(r)
    return rounds, others


async def record_round_acks(session: AsyncSession, receipts: Sequence[Receipt]) -> int:
    """Mark rounds acknowledged (``played``) or failed; returns how many were recorded. An ack
    for a delivery that is not a speaker group's, or for a round later than the next one due,
    is ignored (logged)."""
    parsed = [
        (r, found) for r in receipts if r.provider_ref and (found := round_of(r.provider_ref))
    ]
    if not parsed:
        return 0
    ids = sorted({d for _, (d, _) in parsed})
    owners = {
        did: (wid, device)
        for did, wid, device in (
            await session.execute(
                select(Delivery.id, Delivery.warning_id, Delivery.target_id).where(
                    Delivery.id.in_(ids),
                    Delivery.channel == CHANNEL,
                    Delivery.target_kind == "device",
                )
            )
        ).all()
    }
    latest = dict(
        (
            await session.execute(
                select(SpeakerRound.warning_id, func.max(SpeakerRound.round))
                .where(SpeakerRound.warning_id.in_(sorted({w for w, _ in owners.values()})))
                .group_by(SpeakerRound.warning_id)
            )
        ).all()
    )
    now = utcnow()
    acked, failed = [], []
    for r, (delivery_id, round_no) in parsed:
        owner = owners.get(delivery_id)
        if owner is None or round_no > latest.get(owner[0], 1) + 1:
            log.warning(
                "speaker ack for an unknown round ignored",
                extra={"reference": r.provider_ref, "delivery_id": delivery_id},
            )
            continue
        row = {
            "warning_id": owner[0],
            "device_id": owner[1],
            "round": round_no,
            "delivery_id": delivery_id,
            "reference": round_reference(delivery_id, round_no),
            "published_at": None,
            "acknowledged_at": None,
            "error": "",
        }
        if r.status is Status.DELIVERED:
            acked.append({**row, "acknowledged_at": r.at or now})
        else:
            failed.append({**row, "error": (r.error or "the group could not play it")[:500]})
    if acked:
        await _upsert(session, acked, ("acknowledged_at",), keep_first=True)
    if failed:
        await _upsert(session, failed, ("error",))
    return len(acked) + len(failed)


async def _upsert(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    columns: tuple[str, ...],
    *,
    keep_first: bool = False,
) -> None:
    """Insert ``rows`` into speaker_rounds; on an existing (warning, device, round) set only
    ``columns`` (with ``keep_first``: only where the stored value is still NULL)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(SpeakerRound).values(rows)
    table = SpeakerRound.__table__  # type: ignore[attr-defined]
    values = {
        c: func.coalesce(table.c[c], stmt.excluded[c]) if keep_first else stmt.excluded[c]
        for c in columns
    }
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["warning_id", "device_id", "round"], set_=values)
    )


# -- silent groups (the sweeper) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SilentPolicy:
    """A speaker instance's patience: wait ``timeout_s`` for an ack, play ``retries`` more times."""

    timeout_s: float
    retries: int


async def retry_silent(
    session: AsyncSession,
    policies: dict[str, SilentPolicy],
    now: datetime,
    available: frozenset[str] | None = None,
) -> tuple[int, int]:
    """Speaker deliveries sent by these instances whose ack is overdue: queued again (same
    reference) while played fewer than ``1 + retries`` times and the warning is in force;
    failed as unreached (route's next step) once every play went unanswered. Returns
    (queued again, failed). Rows of warnings no longer in force are left to the receipt
    timeout (expired)."""
    if not policies:
        return 0, 0
    overdue = or_(
        *(
            and_(Delivery.gateway == name, Delivery.sent_at < now - timedelta(seconds=p.timeout_s))
            for name, p in policies.items()
        )
    )
    rows = (
        await session.execute(
            select(Delivery, WarningRecord.state, WarningRecord.expires_at)
            .join(WarningRecord, WarningRecord.id == Delivery.warning_id)
            .where(
                Delivery.channel == CHANNEL,
                Delivery.state == "sent",
                Delivery.final_at.is_(None),
                overdue,
            )
            .with_for_update(of=Delivery)
        )
    ).all()
    again: list[tuple[int, str]] = []
    gave_up: list[Delivery] = []
    for d, state, expires_at in rows:
        policy = policies[d.gateway or ""]
        plays = 1 + policy.retries
        if d.attempts >= plays:
            gave_up.append(d)
        elif state in (states.APPROVED, states.DISPATCHING) and (
            expires_at is None or expires_at > now
        ):
            again.append(
                (
                    d.id or 0,
                    f"no acknowledgement within {policy.timeout_s:g} s; playing again "
                    f"(play {d.attempts + 1} of {plays})",
                )
            )
    for delivery_id, note in again:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == "sent")
            .values(
                state="queued",
                next_attempt_at=now,
                lease_owner=None,
                lease_until=None,
                gateway=None,
                provider_ref=None,
                last_error=note,
            )
        )
    for d in gave_up:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == d.id, Delivery.state == "sent")
            .values(
                state="failed",
                final_at=now,
                lease_owner=None,
                last_error=f"unreached: no acknowledgement after {d.attempts} plays",
            )
        )
    if gave_up:
        await advance(session, [_claimed(d) for d in gave_up], now, available)
    if again or gave_up:
        log.info(
            "silent speaker groups",
            extra={"played_again": len(again), "unreached": len(gave_up)},
        )
    return len(again), len(gave_up)


def _claimed(d: Delivery) -> Claimed:
    return Claimed(
        d.id or 0,
        d.warning_id,
        d.target_kind,
        d.target_id,
        d.channel,
        d.stage,
        d.route,
        d.tier,
        d.priority,
        d.area_code,
        d.language,
        d.ack_required,
        d.attempts,
        d.created_at,
    )
