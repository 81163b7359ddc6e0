"""Simulated village contacts (and town duty officers) for demos, drills and benchmarks.

A peer of the gateway simulator (:mod:`warnpub.gatewaysim`): it reads what the gateway
accepted (``GET /messages?since=N``, from where it last read) and answers as the people it
plays would, by SMS through the simulator's ``POST /inbound`` (signed and forwarded to the
app's inbound callback, ``POST /api/v1/callbacks/sms/{gateway}/inbound``):

- a message that asks for an acknowledgement (``收到请回复4821，或点击 …`` / ``Reply 4821 to
  confirm, …``) → after ``delay_s`` it replies ``4821`` (once per number and code);
- a visit list (``【上门告知】…[1]张三（无手机）[2]李四（视障）。告知后回复“4821 1 2”…`` /
  ``[VISIT] …``) → after the walk — ``visit_delay_s`` to the first person, then
  ``visit_per_person_s`` more for each further one — it replies ``4821 1 2`` with every
  number on the list; with ``report_each`` it reports each person as they are told
  (``4821 1`` after the first walk, ``4821 2`` after the next, …).

It plays the numbers in ``phones`` (every number when None) except those in ``silent``, which
read and never answer: a contact who does not respond, for the escalation ladder. Everything
else (residents' warnings, answers to replies, escalation alerts) is read and left alone.
The texts are read with the patterns of :mod:`warnpub.lastkm.texts`.

``stats`` counts what it did; ``replies`` lists every reply sent. Start and stop it like
:class:`warnpub.speakersim.SpeakerSim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import aiohttp

from warnpub.clock import utcnow
from warnpub.lastkm.texts import ACK_LINE_RE, VISIT_LIST_RE, VISIT_NUMBER_RE, VISIT_PREFIXES

log = logging.getLogger("warnpub.contactsim")

ReplyKind = Literal["ack", "visit"]


class ContactSimError(Exception):
    """The simulator could not start (bad option, gateway simulator unreachable)."""


@dataclass
class ContactSimOptions:
    gateway_url: str  # the gateway simulator, e.g. http://127.0.0.1:8025
    phones: set[str] | None = None  # the numbers played; None: every number
    silent: set[str] = field(default_factory=set)  # numbers that read and never answer
    delay_s: float = 2.0  # from the message to the acknowledgement
    visit_delay_s: float = 10.0  # the walk to the first person on a visit list
    visit_per_person_s: float = 0.0  # each further person on the list
    report_each: bool = False  # report each person when told (else one reply for the list)
    jitter_s: float = 0.0  # up to this much more on every delay (uniform, from ``seed``)
    seed: int | None = None
    poll_s: float = 0.5  # between reads of GET /messages when nothing new came
    page: int = 5000  # messages per read
    since: int = 0  # start reading here (0: every message the gateway accepted)
    retries: int = 4  # a reply the app did not take is sent again this many times
    concurrency: int = 8  # replies in flight
    timeout_s: float = 10.0

    def check(self) -> None:
        for name in ("delay_s", "visit_delay_s", "visit_per_person_s", "jitter_s"):
            if getattr(self, name) < 0:
                raise ContactSimError(f"{name} {getattr(self, name)}: must not be negative")
        if self.poll_s <= 0 or self.timeout_s <= 0:
            raise ContactSimError("poll_s and timeout_s must be positive")
        if not 1 <= self.page <= 100_000:
            raise ContactSimError(f"page {self.page}: give 1 to 100000")
        if self.concurrency < 1 or self.retries < 0 or self.since < 0:
            raise ContactSimError("concurrency ≥ 1, retries ≥ 0, since ≥ 0")
        if not self.gateway_url.startswith(("http://", "https://")):
            raise ContactSimError(f"gateway_url {self.gateway_url!r}: give http(s)://host:port")


@dataclass
class ContactSimStats:
    messages_read: int = 0  # every accepted message seen
    played: int = 0  # messages to a number this simulator plays (silent ones included)
    ignored_silent: int = 0  # acknowledgement requests and visit lists to silent numbers
    acks_sent: int = 0  # acknowledgement replies the app took
    visit_lists: int = 0  # visit lists read (to played, non-silent numbers)
    visit_replies: int = 0  # visit reports the app took
    visits_reported: int = 0  # people reported told, over those reports
    replies_failed: int = 0  # replies the app never took (after the retries)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SimReply:
    """One reply as it was sent."""

    phone: str
    text: str
    kind: ReplyKind
    at: datetime
    forwarded: bool
    numbers: tuple[int, ...] = ()

    def line(self) -> str:
        return f"reply {self.phone} {self.text!r} ({self.kind}) -> {'ok' if self.forwarded else 'LOST'}"


@dataclass(frozen=True, slots=True)
class VisitList:
    code: str
    numbers: tuple[int, ...]


def ack_code(text: str) -> str | None:
    """The reply code a message asks to be acknowledged with, None when it asks nothing."""
    if is_visit_list(text):
        return None
    found = ACK_LINE_RE.search(text)
    return found.group(1) if found else None


def is_visit_list(text: str) -> bool:
    return any(prefix in text[:40] for prefix in VISIT_PREFIXES)


def visit_list(text: str) -> VisitList | None:
    """A visit list's code and the numbers on it, None when ``text`` is not one."""
    if not is_visit_list(text):
        return None
    found = VISIT_LIST_RE.search(text)
    if found is None:
        return None
    listed = found.group("zh") if found.group("zh") is not None else found.group("en")
    code = found.group("zh_code") or found.group("en_code")
    numbers = tuple(dict.fromkeys(int(n) for n in VISIT_NUMBER_RE.findall(listed or "")))
    return VisitList(code, numbers) if numbers else None


class ContactSim:
    """The village contacts a gateway simulator's messages go to, answering by SMS."""

    def __init__(
        self,
        options: ContactSimOptions,
        *,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        options.check()
        self.options = options
        self.on_event = on_event
        self.stats = ContactSimStats()
        self.replies: list[SimReply] = []
        self._rng = random.Random(options.seed)
        self._since = options.since
        self._acked: set[tuple[str, str]] = set()  # (phone, code) acknowledged or on its way
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(options.concurrency)
        self._read = asyncio.Event()  # set after every read of the gateway
        self._changed = asyncio.Event()

    # -- knobs (may change while running) -------------------------------------------------

    @property
    def silent(self) -> set[str]:
        return self.options.silent

    @silent.setter
    def silent(self, phones: Iterable[str]) -> None:
        self.options.silent = set(phones)

    @property
    def busy(self) -> int:
        """Replies waiting for their delay or in flight."""
        return len(self._pending)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the gateway simulator answers, then read it; :class:`ContactSimError` if not."""
        if self._task is not None:
            return
        o = self.options
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=o.timeout_s))
        try:
            async with self._http.get(f"{o.gateway_url}/health") as r:
                r.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._http.close()
            self._http = None
            raise ContactSimError(
                f"cannot reach the gateway simulator at {o.gateway_url}: {exc or type(exc).__name__}"
            ) from None
        self._task = asyncio.create_task(self._run(), name="contact-sim")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for pending in list(self._pending):
            pending.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything the gateway holds now was read and every reply is sent
        (or the timeout); True when settled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._read.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._read.wait(), timeout_s)
        while self._pending and loop.time() < deadline:
            await asyncio.wait(set(self._pending), timeout=deadline - loop.time())
        return self._read.is_set() and not self._pending

    async def wait_for_replies(self, count: int, timeout_s: float = 10.0) -> list[SimReply]:
        """Wait until at least ``count`` replies were sent (or the timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.replies) < count and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        return list(self.replies)

    # -- reading the gateway --------------------------------------------------------------

    async def _run(self) -> None:
        o = self.options
        while True:
            got = 0
            try:
                got = await self._read_page()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                log.warning("contact-sim: reading %s/messages: %s", o.gateway_url, exc)
            if got < o.page:
                self._read.set()
                await asyncio.sleep(o.poll_s)

    async def _read_page(self) -> int:
        assert self._http is not None
        o = self.options
        params = {"since": str(self._since), "limit": str(o.page)}
        async with self._http.get(f"{o.gateway_url}/messages", params=params) as r:
            r.raise_for_status()
            body = await r.json()
        if int(body["total"]) < self._since:  # the simulator was reset: read it afresh
            self._since = 0
            return 0
        messages = body["messages"]
        for m in messages:
            self._on_message(str(m.get("to", "")), str(m.get("text", "")))
        self._since = int(body["next"])
        return len(messages)

    def _on_message(self, phone: str, text: str) -> None:
        o = self.options
        self.stats.messages_read += 1
        if o.phones is not None and phone not in o.phones:
            return
        self.stats.played += 1
        listed = visit_list(text)
        code = None if listed is not None else ack_code(text)
        if listed is None and code is None:
            return
        if phone in o.silent:
            self.stats.ignored_silent += 1
            self._emit(f"silent {phone}: {'visit list' if listed else 'acknowledgement'} unanswered")
            return
        if listed is not None:
            self.stats.visit_lists += 1
            self._spawn(self._visit(phone, listed))
        elif code is not None and (phone, code) not in self._acked:
            self._acked.add((phone, code))
            self._spawn(self._ack(phone, code))

    # -- answering ------------------------------------------------------------------------

    def _delay(self, base: float) -> float:
        j = self.options.jitter_s
        return base + (self._rng.uniform(0, j) if j > 0 else 0.0)

    async def _ack(self, phone: str, code: str) -> None:
        await asyncio.sleep(self._delay(self.options.delay_s))
        if not await self._send(phone, code, "ack"):
            self._acked.discard((phone, code))  # a later message with the code may try again

    async def _visit(self, phone: str, listed: VisitList) -> None:
        o = self.options
        loop = asyncio.get_running_loop()
        started = loop.time()
        walk = self._delay(o.visit_delay_s)
        if o.report_each:
            for i, number in enumerate(listed.numbers):
                at = started + walk + i * o.visit_per_person_s
                await asyncio.sleep(max(0.0, at - loop.time()))
                await self._send(phone, f"{listed.code} {number}", "visit", (number,))
            return
        await asyncio.sleep(walk + (len(listed.numbers) - 1) * o.visit_per_person_s)
        text = f"{listed.code} " + " ".join(str(n) for n in listed.numbers)
        await self._send(phone, text, "visit", listed.numbers)

    async def _send(
        self, phone: str, text: str, kind: ReplyKind, numbers: tuple[int, ...] = ()
    ) -> bool:
        o = self.options
        forwarded = False
        async with self._slots:
            for attempt in range(o.retries + 1):
                if attempt:
                    await asyncio.sleep(min(5.0, 0.5 * 2 ** (attempt - 1)))
                http = self._http
                if http is None:
                    break
                try:
                    async with http.post(
                        f"{o.gateway_url}/inbound", json={"from": phone, "text": text}
                    ) as r:
                        body = await r.json(content_type=None)
                    # Forwarded to the app, or queued by the gateway (inbound_mode "queue").
                    taken = body.get("forwarded") or body.get("queued")
                    forwarded = r.status in (200, 202) and bool(taken)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    log.debug("contact-sim: reply from %s: %s", phone, exc)
                if forwarded:
                    break
        reply = SimReply(phone, text, kind, utcnow(), forwarded, numbers)
        self.replies.append(reply)
        if not forwarded:
            self.stats.replies_failed += 1
            log.warning("contact-sim: reply %r from %s was not taken", text, phone)
        elif kind == "ack":
            self.stats.acks_sent += 1
        else:
            self.stats.visit_replies += 1
            self.stats.visits_reported += len(numbers)
        self._emit(reply.line())
        self._changed.set()
        self._changed = asyncio.Event()
        return forwarded

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _emit(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)
