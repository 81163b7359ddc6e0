"""One worker per channel instance: claim the highest-priority due rows, send, record.

The worker is a small pipeline, so the next round is claimed while the current one is sent:

- Its loop runs one database transaction at a time. Each records every outcome that came
  back since the last one (a group commit) and, when the pipeline has room, claims a round:
  the highest-priority due rows, as many as the rate window, the instance's share by weight
  (``claim_batch`` × weight) and the pipeline allow. In the same transaction the rows whose
  warning was cancelled or has expired are ended unsent, and the addresses are read.
- The round is rendered (once per warning, channel and language) and queued, in claim order,
  as calls of ``max_batch`` messages. ``concurrency`` senders take the calls first in, first
  out, so rows leave in the order they were claimed.
- A sender sends a call only while its rows are surely still leased (at least half the lease
  left), the peer has not asked it to wait, and the circuit breaker and health score let the
  instance take work (when they do not, only a probe call goes). Otherwise the rows go back to
  the queue unsent, the attempt not counted, for this or another instance to take.

"send_by" is that rule on the monotonic clock: half the lease after the transaction that
leased the rows began (the lease runs from that transaction's ``now``). On PostgreSQL, where
other workers' sweepers take over rows whose lease ran out, the loop also extends the leases
of every row it holds (claimed and not yet recorded) every ``lease_every`` seconds, in a
transaction of its own loop, so it never races its own records; a call's ``send_by`` then
moves to half a lease after the start of the last transaction that extended all of the call's
rows. A slow gateway (a call queued behind others, or waiting for the rate window) thus keeps
its rows, while a worker that dies stops extending and its rows return to the queue once the
lease has run out. A call is checked again just before it goes, after any wait for the rate
window: its rows are sent only while surely still leased to this worker.

On PostgreSQL the rate window is this process's share of the instance's limit
(warnpub.cluster.shares); a call larger than a share that shrank goes back unsent.

The next round is claimed when fewer rows wait for a sender than the senders carry at once,
so at most about two rounds are ahead of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Channel, Message, Result, Status
from warnpub.clock import utcnow
from warnpub.cluster.leases import extend_leases
from warnpub.config import Settings
from warnpub.dispatch.addresses import addresses
from warnpub.dispatch.limits import CircuitBreaker, Health, RateWindow
from warnpub.dispatch.metrics import Metrics
from warnpub.dispatch.outbox import PARTNER_CHANNELS, Claimed, WarningStop, claim, partner_id
from warnpub.dispatch.render import MessageRenderer
from warnpub.dispatch.results import end_unsent, give_back, record
from warnpub.dispatch.retry import RetryPolicy
from warnpub.lastkm.notices import NOTICE
from warnpub.render.templates import Rendered
from warnpub.storage.engine import Database

log = logging.getLogger("warnpub.dispatch")
SENDABLE = ("approved", "dispatching")
IDLE_S = 0.05  # first wait when nothing is due; doubles up to IDLE_MAX_S
IDLE_MAX_S = 1.0
RECORD_AFTER_S = 0.2  # outcomes wait at most this long for the next transaction
GAUGES_EVERY_S = 0.1
DEMOTED_FOR_S = 0.01  # how long a reading of the health score is used
PROBE_GAP_S = 0.1  # a demoted instance (or one whose breaker is open) sends one call this often
SENT_OK = frozenset({Status.SENT, Status.DELIVERED, Status.PERMANENT})


@dataclass
class WorkerStats:
    claimed: int = 0
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0
    calls_failed: int = 0
    handed_back: int = 0


@dataclass(slots=True)
class _Call:
    """Messages for one ``Channel.send`` and the rows they came from, in claim order."""

    rows: list[Claimed]
    messages: list[Message]
    send_by: float  # monotonic clock: after this the lease is too short to send
    probe: bool = False


class ChannelWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        channel: Channel,
        renderer: MessageRenderer,
        owner: str,
        share: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        d = settings.dispatch
        self.db, self.settings, self.channel, self.renderer = db, settings, channel, renderer
        self.kind, self.name = channel.kind, channel.name
        self.owner = f"{owner}/{channel.kind}/{channel.name}"
        self.share = share
        # The other instances of the same channel kind (set by the dispatcher).
        self.siblings: list[ChannelWorker] = []
        self.rate = RateWindow(channel.limits.rate_per_s)
        self.breaker = CircuitBreaker(d.breaker_failures, d.breaker_open_s)
        self.health = Health(d.demote_error_rate)
        self.retry = RetryPolicy(d.retry_base_s, d.retry_max_s, d.retry_deadline_s)
        self.stats = WorkerStats()
        self.metrics = metrics or Metrics()
        self.wake = asyncio.Event()  # new work may be due (set by the dispatcher)
        # Longest nap without work (longer when a LISTEN connection wakes the dispatcher).
        self.idle_max_s = IDLE_MAX_S
        # Lease heartbeats (PostgreSQL): extend the leases of held rows this often; None: off.
        self.lease_every: float | None = None
        self._held: dict[int, _Call] = {}  # claimed rows not yet recorded → their call
        self._leases_at = 0.0  # monotonic start of the last lease extension (or claim)
        # A partner's instance takes only its own rows (see outbox.claim).
        self.pin = partner_id(self.name) if self.kind in PARTNER_CHANNELS else None
        # A peer that said "retry after N s" (HTTP 429/503) gets nothing until then.
        self.paused_until = 0.0
        limits = channel.limits
        self.concurrency = max(1, limits.concurrency)
        self.per_call = max(1, limits.max_batch)
        # Rows all senders carry at once; a new round is claimed when fewer than this wait.
        self.wave = self.per_call * self.concurrency
        self._share_rows = max(1, int(settings.dispatch.claim_batch * share))
        # Outcomes are written with the next claim, or sooner when this many are waiting.
        self._record_max = 2 * max(self.wave, self._share_rows)
        self._calls: asyncio.Queue[_Call | None] = asyncio.Queue()
        self._waiting = 0  # rows in calls no sender has taken yet
        self._reserved = 0  # claimed rows not yet counted by the rate window (or handed back)
        self._unrecorded = 0  # claimed rows whose outcome is not committed yet
        self._outcomes: list[tuple[list[Claimed], list[Result]]] = []
        self._outcome_rows = 0
        self._outcomes_since = 0.0
        self._handed_back: list[Claimed] = []
        self._progress = asyncio.Event()  # the loop has something to do (room, outcomes)
        self._closing = asyncio.Event()
        self._gauges_at = 0.0
        self._probe_at = 0.0  # when the last probe call was claimed
        self._demoted = False
        self._demoted_until = 0.0
        labels = (self.kind, self.name)
        m = self.metrics
        self._m_seconds = m.send_seconds.labels(*labels)
        self._m_messages = {s: m.messages.labels(*labels, s.value) for s in Status}
        self._m_error_rate = m.error_rate.labels(*labels)
        self._m_demoted = m.demoted.labels(*labels)
        self._m_breaker = m.breaker_open.labels(*labels)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        senders = [
            asyncio.create_task(self._sender(), name=f"{self.owner} sender {i}")
            for i in range(self.concurrency)
        ]
        idle_s = IDLE_S
        empty_until = 0.0  # after a claim found nothing: no claim before this unless woken
        try:
            while not stopping.is_set():
                if self.wake.is_set():  # new rows may be due
                    self.wake.clear()
                    idle_s, empty_until = IDLE_S, 0.0
                now = time.monotonic()
                want = self.capacity() if now >= empty_until else 0
                extend = self._leases_due(now)
                if want <= 0 and not self._record_due(now) and not extend:
                    await self._nap(self._next_check(now, empty_until))
                    continue
                try:
                    took = await self.step(want, extend=extend)
                except Exception:
                    log.exception(
                        "dispatch round failed", extra={"channel": self.kind, "instance": self.name}
                    )
                    empty_until = time.monotonic() + idle_s
                    idle_s = min(idle_s * 2, self.idle_max_s)
                    continue
                if want > 0:
                    if took:
                        idle_s, empty_until = IDLE_S, 0.0
                    else:
                        empty_until = time.monotonic() + idle_s
                        idle_s = min(idle_s * 2, self.idle_max_s)
        finally:
            await self._shut_down(senders)

    def capacity(self) -> int:
        """How many rows the next round may claim."""
        if not self.breaker.allows() or time.monotonic() < self.paused_until:
            return 0
        room = self.rate.available() - self._reserved
        if self._probing():
            # A probe, not a share: one call now and then, and only when nothing else is out.
            if self._unrecorded or time.monotonic() < self._probe_at + PROBE_GAP_S:
                return 0
            return min(self.per_call, room)
        if self._waiting >= self.wave:
            return 0
        return min(room, self._share_rows)

    def _record_due(self, now: float) -> bool:
        """Whether outcomes should be written without waiting for the next claim."""
        if not self._outcome_rows and not self._handed_back:
            return False
        settled = self._outcome_rows + len(self._handed_back)
        return (
            settled >= self._unrecorded  # nothing else is out: write it all now
            or settled >= self._record_max
            or now - self._outcomes_since >= RECORD_AFTER_S
        )

    def _leases_due(self, now: float) -> bool:
        """Whether the leases of the rows held should be extended now."""
        return (
            self.lease_every is not None
            and bool(self._held)
            and now >= self._leases_at + self.lease_every
        )

    def nudge(self) -> None:
        """Look again now (the rate share changed)."""
        self._nudge()

    def _next_check(self, now: float, empty_until: float) -> float:
        """Seconds until the loop must look again by itself (events may wake it sooner)."""
        waits = [self.idle_max_s]
        if self._outcome_rows or self._handed_back:
            waits.append(self._outcomes_since + RECORD_AFTER_S - now)
        if self.lease_every is not None and self._held:
            waits.append(self._leases_at + self.lease_every - now)
        if empty_until > now:
            waits.append(empty_until - now)
        elif self.breaker.opened_at is not None and not self.breaker.allows():
            waits.append(self.breaker.opened_at + self.breaker.open_s - now)
        elif self.paused_until > now:
            waits.append(self.paused_until - now)
        elif self._probing():
            waits.append(self._probe_at + PROBE_GAP_S - now)
        elif self._waiting < self.wave and self.rate.limit > 0:
            waits.append(max(self.rate.wait_for(1 + self._reserved), 0.002))
        return max(0.001, min(waits))

    async def _nap(self, seconds: float) -> None:
        self._progress.clear()
        wake, progress = (
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(self._progress.wait()),
        )
        try:
            await asyncio.wait((wake, progress), timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            wake.cancel()
            progress.cancel()

    def _nudge(self) -> None:
        if not self._progress.is_set():
            self._progress.set()

    # -- one transaction: record what came back, claim the next round ---------------------

    async def step(self, want: int, *, extend: bool = False) -> int:
        """Record every outcome and hand-back so far and claim up to ``want`` rows, in one
        transaction (with ``extend``, also extend the leases of the rows still held); queue
        the claimed rows' calls. Returns the number of rows claimed."""
        outcomes, self._outcomes, self._outcome_rows = self._outcomes, [], 0
        handed_back, self._handed_back = self._handed_back, []
        settled = sum(len(rows) for rows, _ in outcomes) + len(handed_back)
        for part, _ in outcomes:
            for c in part:
                self._held.pop(c.id, None)
        for c in handed_back:
            self._held.pop(c.id, None)
        began = time.monotonic()
        now = utcnow()
        lease_s = self.settings.dispatch.lease_seconds
        extended: set[int] = set()
        if extend:
            self._leases_at = began
        counts = {"sent": 0, "delivered": 0, "retried": 0, "failed": 0}
        claimed: list[Claimed] = []
        warnings: dict[str, WarningStop] = {}
        dropped: dict[int, str] = {}
        calls: list[_Call] = []
        try:
            async with self.db.session() as session:
                if outcomes:
                    rows = [c for part, _ in outcomes for c in part]
                    results = {r.delivery_id: r for _, out in outcomes for r in out}
                    counts = await self._record(session, rows, results, now)
                if handed_back:
                    await give_back(session, self.owner, handed_back, now)
                if extend and self._held:
                    extended = await extend_leases(
                        session, self.owner, list(self._held), now + timedelta(seconds=lease_s)
                    )
                if want > 0:
                    claimed, warnings = await claim(
                        session,
                        self.kind,
                        self.owner,
                        self.name,
                        want,
                        self.settings.dispatch.lease_seconds,
                        now,
                        pin=self.pin,
                    )
                if claimed:
                    sendable, dropped = self._check_warnings(claimed, warnings, now)
                    if dropped:
                        await end_unsent(session, self.owner, dropped, now)
                    calls, unsendable = await self._prepare(session, sendable, began)
                    if unsendable:
                        more = await self._record(
                            session, [c for c, _ in unsendable], dict(unsendable), now
                        )
                        for key, n in more.items():
                            counts[key] += n
        finally:
            # Committed or not, these outcomes are done with: rows whose outcome was lost
            # stay leased until the lease runs out, then go back to the queue and are sent
            # again under the same idempotency key.
            self._unrecorded -= settled
        self.stats.handed_back += len(handed_back)
        self._count(counts, len(dropped))
        if extended:
            # Committed: these rows are leased until now + lease_s. A call may go while at
            # least half of that is left for every one of its rows.
            send_by = began + lease_s / 2
            for call in {id(c): c for i in extended if (c := self._held.get(i))}.values():
                if all(r.id in extended for r in call.rows if r.id in self._held):
                    call.send_by = max(call.send_by, send_by)
        if not claimed:
            return 0
        self.stats.claimed += len(claimed)
        queued = sum(len(call.rows) for call in calls)
        self._unrecorded += queued
        self._reserved += queued
        self._waiting += queued
        if self.lease_every is not None:
            if not self._held:
                self._leases_at = began  # the claim itself started these leases
            for call in calls:
                for c in call.rows:
                    self._held[c.id] = call
        for call in calls:
            self._calls.put_nowait(call)
        return len(claimed)

    async def _record(
        self,
        session: AsyncSession,
        rows: Sequence[Claimed],
        results: dict[int, Result],
        now: datetime,
    ) -> dict[str, int]:
        # Rows in id order, as receipts lock them (dispatch.receipts): no deadlock between the two.
        return await record(
            session,
            self.owner,
            sorted(rows, key=lambda r: r.id),
            results,
            receipts=self.channel.limits.receipts,
            retry=self.retry,
            now=now,
            available=frozenset(self.settings.channels),
        )

    def _count(self, counts: dict[str, int], dropped: int) -> None:
        s = self.stats
        s.sent += counts["sent"]
        s.delivered += counts["delivered"]
        s.retried += counts["retried"]
        s.failed += counts["failed"]
        s.dropped += dropped

    @staticmethod
    def _check_warnings(
        claimed: list[Claimed], warnings: dict[str, WarningStop], now: datetime
    ) -> tuple[list[Claimed], dict[int, str]]:
        """Rows whose warning may still be sent, and the others with the state they end in."""
        stop: dict[str, str] = {}
        for wid, (state, expires) in warnings.items():
            if expires is not None and expires <= now:
                stop[wid] = "expired"
            elif state not in SENDABLE:
                stop[wid] = "cancelled" if state == "cancelled" else "expired"
        if not stop:
            return claimed, {}
        # Notices (escalation alerts, answers) go whatever their warning's state: a review
        # alert is about a pending warning.
        dropped = {
            c.id: stop[c.warning_id]
            for c in claimed
            if c.warning_id in stop and c.target_kind != NOTICE
        }
        return [c for c in claimed if c.id not in dropped], dropped

    async def _prepare(
        self, session: AsyncSession, rows: list[Claimed], began: float
    ) -> tuple[list[_Call], list[tuple[Claimed, Result]]]:
        """Address and render the rows; the calls to make (in claim order) and the rows
        that cannot be sent at all (no address: a permanent failure)."""
        where = await addresses(session, rows, None if self.pin is None else {self.pin: self.name})
        rendered: dict[tuple[str, str, str], Rendered] = {}
        sendable: list[Claimed] = []
        messages: list[Message] = []
        unsendable: list[tuple[Claimed, Result]] = []
        for c in rows:
            address = where.get(c.id)
            if not address:
                error = f"no address for {c.channel}"
                unsendable.append((c, Result(c.id, Status.PERMANENT, error=error)))
                continue
            own = await self.renderer.personal(session, c) if c.ack_required or (
                c.target_kind == NOTICE
            ) else None
            key = (c.warning_id, c.channel, c.language)
            text = own or rendered.get(key)
            if text is None:
                text = rendered[key] = await self.renderer.rendered(session, c)
            sendable.append(c)
            messages.append(
                Message(
                    delivery_id=c.id,
                    address=address,
                    text=text.text,
                    subject=text.subject or "",
                    html=text.html,
                    language=c.language,
                    priority=c.priority,
                    idempotency_key=f"wp-{c.id}",
                )
            )
        # The leases run from the claim transaction's ``now``, taken when it began.
        send_by = began + self.settings.dispatch.lease_seconds / 2
        probe = self._probing()
        if probe:
            self._probe_at = time.monotonic()
        size = self.per_call
        if size == 1:
            calls = [
                _Call([c], [m], send_by, probe) for c, m in zip(sendable, messages, strict=True)
            ]
        else:
            calls = [
                _Call(sendable[i : i + size], messages[i : i + size], send_by, probe)
                for i in range(0, len(sendable), size)
            ]
        return calls, unsendable

    # -- senders ----------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            call = await self._calls.get()
            if call is None:
                return
            n = len(call.rows)
            self._waiting -= n
            if self._waiting < self.wave <= self._waiting + n:
                self._nudge()  # room for the next round
            try:
                await self._send(call)
            except Exception:
                # Nothing may leak a claimed row: whatever went wrong, the rows are settled
                # (recorded as a transient failure: no result from the channel).
                log.exception("sender failed", extra={"channel": self.kind, "instance": self.name})
                self._settle(call.rows, [])

    async def _send(self, call: _Call) -> None:
        n = len(call.rows)
        self._reserved -= n
        if not self._may_send(call) or not await self._wait_pause(call):
            self._hand_back(call.rows)
            return
        if self.rate.available() >= n:
            self.rate.start(n)
        elif not await self.rate.acquire(n, self._closing):
            self._hand_back(call.rows)  # stopping, or the cluster share shrank below the call
            return
        elif time.monotonic() >= call.send_by:
            self.rate.cancel(n)  # the wait for the window took too much of the lease
            self._hand_back(call.rows)
            return
        started = time.perf_counter()
        try:
            out = await self.channel.send(call.messages)
        except Exception as exc:
            self.stats.calls_failed += 1
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning(
                "channel call failed",
                extra={"channel": self.kind, "instance": self.name, "error": error},
            )
            out = [Result(m.delivery_id, Status.TRANSIENT, error=error) for m in call.messages]
        finally:
            self.rate.finish(n)
        ok = 0
        wait = 0.0
        for r in out:
            if r.status in SENT_OK:
                ok += 1
            if r.retry_after_s and r.retry_after_s > wait:
                wait = r.retry_after_s
        self.breaker.record(ok > 0 or not out)
        self.health.record(True, ok)
        self.health.record(False, len(out) - ok)
        self._observe(time.perf_counter() - started, out)
        if wait:
            pause = min(wait, self.settings.dispatch.retry_max_s)
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
        self._settle(call.rows, out)

    def _may_send(self, call: _Call) -> bool:
        """Whether the instance takes work now: a demoted instance, or one whose breaker is
        open, sends only its probe; the rows of other calls go back to the queue."""
        if self._closing.is_set() or time.monotonic() >= call.send_by:
            return False
        if call.probe:
            return self.breaker.allows()
        return not self._probing()

    def _probing(self) -> bool:
        """Whether the instance only sends probes: its breaker is open or it is demoted.
        (The health score is summed over its recent outcomes: read at most every few ms.)"""
        if self.breaker.is_open:
            return True
        now = time.monotonic()
        if now >= self._demoted_until:
            # Demotion moves work to the other instances of the kind; an instance that has
            # none able to take it (the only SMS gateway, slow receipts and all) keeps sending.
            self._demoted = self.health.demoted and any(
                not s.health.demoted and not s.breaker.is_open for s in self.siblings
            )
            self._demoted_until = now + DEMOTED_FOR_S
        return self._demoted

    async def _wait_pause(self, call: _Call) -> bool:
        """Wait while the peer asked to; False when the lease would run short meanwhile."""
        while (pause := self.paused_until - time.monotonic()) > 0:
            if time.monotonic() + pause >= call.send_by:
                return False
            try:
                await asyncio.wait_for(self._closing.wait(), timeout=pause)
                return False  # stopping: the rows go back unsent
            except TimeoutError:
                pass
        return True

    def _settle(self, rows: list[Claimed], out: list[Result]) -> None:
        if not self._outcome_rows and not self._handed_back:
            self._outcomes_since = time.monotonic()
        self._outcomes.append((rows, out))
        self._outcome_rows += len(rows)
        self._wake_to_record()

    def _hand_back(self, rows: list[Claimed]) -> None:
        if not self._outcome_rows and not self._handed_back:
            self._outcomes_since = time.monotonic()
        self._handed_back.extend(rows)
        self._wake_to_record()

    def _wake_to_record(self) -> None:
        settled = self._outcome_rows + len(self._handed_back)
        if settled >= self._unrecorded or settled >= self._record_max:
            self._nudge()

    def _observe(self, seconds: float, out: list[Result]) -> None:
        self._m_seconds.observe(seconds)
        if len(out) == 1:
            self._m_messages[out[0].status].inc()
        else:
            by_status: dict[Status, int] = {}
            for r in out:
                by_status[r.status] = by_status.get(r.status, 0) + 1
            for status, n in by_status.items():
                self._m_messages[status].inc(n)
        now = time.monotonic()
        if now - self._gauges_at >= GAUGES_EVERY_S or self.breaker.is_open:
            self._gauges_at = now
            self._m_error_rate.set(self.health.error_rate)
            self._m_demoted.set(1 if self.health.demoted else 0)
            self._m_breaker.set(1 if self.breaker.is_open else 0)

    # -- stopping -------------------------------------------------------------------------

    async def _shut_down(self, senders: list[asyncio.Task[None]]) -> None:
        """Stop claiming; calls not yet started go back to the queue unsent; calls in flight
        finish; everything that came back is recorded."""
        self._closing.set()
        while not self._calls.empty():
            call = self._calls.get_nowait()
            if call is not None:
                self._waiting -= len(call.rows)
                self._reserved -= len(call.rows)
                self._hand_back(call.rows)
        for _ in senders:
            self._calls.put_nowait(None)
        try:
            await asyncio.gather(*senders)
        finally:
            for task in senders:
                task.cancel()
            if self._outcomes or self._handed_back:
                try:
                    await self.step(0)
                except Exception:
                    log.exception(
                        "recording the last outcomes failed; their leases will run out",
                        extra={"channel": self.kind, "instance": self.name},
                    )
