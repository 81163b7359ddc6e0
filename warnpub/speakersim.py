"""Simulated village loudspeaker groups on a real MQTT broker (``warnpub speaker-sim``).

The simulator subscribes to ``<topic_prefix>/+/play`` and ``<topic_prefix>/+/stop`` and, for
every play command, answers on ``<address>/ack`` the way a speaker group would:

- ``played`` after ``delay_s`` (the broadcast took that long);
- ``failed`` for groups in ``fail`` (and for a command that has already expired);
- nothing at all for groups in ``silent``, and for a share ``silent_rate`` of the other
  groups (decided once per group: a dead speaker stays dead).

A played reference counts as *playing* until its repeats are done (``delay_s`` plus
``(repeat - 1) × interval_s``). A stop command ends it (recorded in ``stops``, with whether it
was still playing), and a reference once stopped is never played afterwards (a stop that
overtook its play command): such a play is recorded as ``stopped`` and not answered.

References are idempotency keys: a reference played before is acknowledged again without
being played twice (``outcome == "duplicate"``). Groups are named by their code (the last
topic level, e.g. ``320481101200``) or their whole address. Wire format:
:mod:`warnpub.channels.speaker_wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import aiomqtt

from warnpub.channels.speaker_wire import (
    DEFAULT_PREFIX,
    PLAY,
    STOP,
    Ack,
    PlayCommand,
    StopCommand,
    ack_topic,
    address_of,
    topic_problem,
    wildcard,
)
from warnpub.clock import utcnow

log = logging.getLogger("warnpub.speakersim")

Outcome = Literal["played", "failed", "silent", "duplicate", "stopped", "malformed"]
RECONNECT_S = 1.0
PLAYING_KEPT = 4096


class SpeakerSimError(Exception):
    """The simulator could not start (bad option, broker unreachable); says what to fix."""


@dataclass(frozen=True, slots=True)
class SimCommand:
    """One play command as the simulated group received and answered it."""

    address: str
    code: str
    outcome: Outcome
    at: datetime
    command: PlayCommand | None = None  # None when the payload was malformed
    error: str = ""

    def line(self) -> str:
        """One line for the console."""
        c = self.command
        if c is None:
            return f"play {self.address} malformed: {self.error}"
        flags = " drill" if c.drill else ""
        audio = "yes" if c.audio_url else "no"
        head = (
            f"play {self.address} {c.reference}{flags} repeat={c.repeat} "
            f"interval={c.interval_s:g}s audio={audio} -> {self.outcome}"
        )
        return f"{head} ({self.error})" if self.error else head


@dataclass(frozen=True, slots=True)
class SimStop:
    address: str
    reference: str
    at: datetime
    was_playing: bool = False  # the group was still playing (or repeating) the reference

    def line(self) -> str:
        return f"stop {self.address} {self.reference}"


@dataclass
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    topic_prefix: str = DEFAULT_PREFIX
    delay_s: float = 0.0
    silent: set[str] = field(default_factory=set)
    silent_rate: float = 0.0
    fail: set[str] = field(default_factory=set)
    seed: int | None = None
    connect_timeout_s: float = 10.0

    def check(self) -> None:
        problem = topic_problem(self.topic_prefix)
        if problem:
            raise SpeakerSimError(f"topic prefix {self.topic_prefix!r}: {problem}")
        if not 0.0 <= self.silent_rate <= 1.0:
            raise SpeakerSimError(f"silent rate {self.silent_rate}: give a share from 0 to 1")
        if self.delay_s < 0:
            raise SpeakerSimError(f"delay {self.delay_s}: must not be negative")
        if not 1 <= self.port <= 65535:
            raise SpeakerSimError(f"port {self.port}: give a port from 1 to 65535")


def parse_codes(text: str | None) -> set[str]:
    """``"320481101200, 320481101201"`` → a set of codes (or addresses)."""
    return {part.strip() for part in (text or "").split(",") if part.strip()}


class SpeakerSim:
    """Speaker groups under one topic prefix, answering over a real broker."""

    def __init__(
        self,
        options: SimOptions | None = None,
        *,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options or SimOptions()
        self.options.check()
        self.on_event = on_event
        self.commands: list[SimCommand] = []
        self.stops: list[SimStop] = []
        self._rng = random.Random(self.options.seed)
        self._silent_groups: dict[str, bool] = {}
        self._answers: dict[str, Outcome] = {}  # reference → first outcome
        # (address, reference) → loop time its last repeat ends; stopped pairs never play.
        self._playing: dict[tuple[str, str], float] = {}
        self._stopped: set[tuple[str, str]] = set()
        self._client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()
        self._first_attempt = asyncio.Event()  # the first connection attempt has ended
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._last_error = ""

    # -- knobs (may change while running) -------------------------------------------------

    @property
    def silent(self) -> set[str]:
        return self.options.silent

    @silent.setter
    def silent(self, codes: Iterable[str]) -> None:
        self.options.silent = set(codes)

    @property
    def fail(self) -> set[str]:
        return self.options.fail

    @fail.setter
    def fail(self, codes: Iterable[str]) -> None:
        self.options.fail = set(codes)

    @property
    def playing(self) -> list[tuple[str, str]]:
        """(address, reference) pairs being played or repeated now, not stopped."""
        now = asyncio.get_running_loop().time()
        return [key for key, until in self._playing.items() if until > now]

    @property
    def played(self) -> list[SimCommand]:
        """Commands actually broadcast (each reference once), oldest first."""
        return [c for c in self.commands if c.outcome == "played"]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and subscribe; :class:`SpeakerSimError` if the broker cannot be reached."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="speaker-sim")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._first_attempt.wait(), timeout=self.options.connect_timeout_s + 1
            )
        if not self._ready.is_set():
            await self.stop()
            o = self.options
            raise SpeakerSimError(
                f"cannot reach the MQTT broker at {o.host}:{o.port}: "
                f"{self._last_error or 'no answer'}"
            ) from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        for pending in list(self._pending):
            pending.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._ready.clear()
        self._first_attempt.clear()

    async def wait_for_commands(self, count: int, timeout_s: float = 5.0) -> list[SimCommand]:
        """Wait until at least ``count`` commands have been answered (or the timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.commands) < count and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        return list(self.commands)

    # -- the connection -------------------------------------------------------------------

    async def _run(self) -> None:
        o = self.options
        while True:
            client = aiomqtt.Client(
                o.host,
                o.port,
                username=o.username,
                password=o.password,
                identifier=f"warnpub-speaker-sim-{uuid.uuid4().hex[:12]}",
                timeout=o.connect_timeout_s,
            )
            # A town's groups answer at once: hundreds of acknowledgements in flight is normal.
            client.pending_calls_threshold = 1000
            try:
                async with client:
                    await client.subscribe(
                        [(wildcard(o.topic_prefix, PLAY), 1), (wildcard(o.topic_prefix, STOP), 1)]
                    )
                    self._client = client
                    self._ready.set()
                    self._first_attempt.set()
                    async for message in client.messages:
                        self._on_message(message.topic.value, bytes(message.payload or b""))
            except Exception as exc:  # any failure ends this connection, never the loop
                self._last_error = str(exc) or type(exc).__name__
                log.warning("speaker-sim: broker %s:%s: %s", o.host, o.port, self._last_error)
            finally:
                self._client = None
                self._first_attempt.set()
            await asyncio.sleep(RECONNECT_S)

    def _on_message(self, topic: str, payload: bytes) -> None:
        play_address = address_of(topic, PLAY)
        if play_address is not None:
            self._on_play(play_address, payload)
            return
        stop_address = address_of(topic, STOP)
        if stop_address is not None:
            try:
                stop = StopCommand.from_json(payload)
            except ValueError as exc:
                self._emit(f"stop {stop_address} malformed: {exc}")
                return
            key = (stop_address, stop.reference)
            until = self._playing.pop(key, None)
            was_playing = until is not None and until > asyncio.get_running_loop().time()
            self._stopped.add(key)
            event = SimStop(stop_address, stop.reference, utcnow(), was_playing)
            self.stops.append(event)
            self._emit(event.line())

    def _on_play(self, address: str, payload: bytes) -> None:
        code = address.rsplit("/", 1)[-1]
        now = utcnow()
        try:
            command = PlayCommand.from_json(payload)
        except ValueError as exc:
            self._record(SimCommand(address, code, "malformed", now, error=str(exc)))
            return
        outcome, error = self._decide(address, code, command, now)
        if outcome == "played":
            o = self.options
            clock = asyncio.get_running_loop().time()
            if len(self._playing) > PLAYING_KEPT:  # forget broadcasts long finished
                self._playing = {k: t for k, t in self._playing.items() if t > clock}
            lasts = o.delay_s + (command.repeat - 1) * command.interval_s
            self._playing[(address, command.reference)] = clock + lasts
        self._record(SimCommand(address, code, outcome, now, command, error))
        if outcome in ("played", "duplicate"):
            self._answer(address, Ack(command.reference, "played", delivery_id=command.delivery_id))
        elif outcome == "failed":
            ack = Ack(command.reference, "failed", delivery_id=command.delivery_id, error=error)
            self._answer(address, ack)

    def _decide(
        self, address: str, code: str, command: PlayCommand, now: datetime
    ) -> tuple[Outcome, str]:
        o = self.options
        if (address, command.reference) in self._stopped:
            return "stopped", "stopped before it was played"
        if code in o.fail or address in o.fail:
            return "failed", "simulated failure"
        if command.expires_at is not None and command.expires_at <= now:
            return "failed", "the command had expired"
        if code in o.silent or address in o.silent or self._silent_group(address):
            return "silent", ""
        if self._answers.get(command.reference) == "played":
            return "duplicate", ""
        self._answers[command.reference] = "played"
        return "played", ""

    def _silent_group(self, address: str) -> bool:
        if self.options.silent_rate <= 0:
            return False
        if address not in self._silent_groups:
            self._silent_groups[address] = self._rng.random() < self.options.silent_rate
        return self._silent_groups[address]

    def _answer(self, address: str, ack: Ack) -> None:
        task = asyncio.create_task(self._publish_ack(address, ack))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish_ack(self, address: str, ack: Ack) -> None:
        if self.options.delay_s > 0:
            await asyncio.sleep(self.options.delay_s)
        client = self._client
        if client is None:
            log.warning("speaker-sim: ack for %s lost: not connected", ack.reference)
            return
        answer = Ack(ack.reference, ack.status, utcnow(), ack.delivery_id, ack.error)
        try:
            await client.publish(ack_topic(address), answer.to_json(), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("speaker-sim: ack for %s lost: %s", ack.reference, exc)

    def _record(self, command: SimCommand) -> None:
        self.commands.append(command)
        self._emit(command.line())
        self._changed.set()
        self._changed = asyncio.Event()

    def _emit(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)
