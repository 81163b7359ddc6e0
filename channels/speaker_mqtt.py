"""Village loudspeaker groups over MQTT (entry point ``mqtt_speaker`` in ``warnpub.channels``).

One instance keeps one connection to the broker (aiomqtt), reconnecting with backoff when it
is lost. A delivery's address is its speaker group's topic (``<topic_prefix>/<village code>``
by default); the play command is published with QoS 1 on ``<address>/play`` and the group
answers on ``<address>/ack`` (wire format: :mod:`warnpub.channels.speaker_wire`).

==============================================  ===========================================
what happened                                   Result
==============================================  ===========================================
broker acknowledged the publish (PUBACK)        SENT, provider_ref = the reference
… and, within ``ack_wait_s``, the group         DELIVERED (played) / PERMANENT (failed)
answered
not connected, connection lost, no PUBACK       TRANSIENT
within ``publish_timeout_s``
address is not a usable topic                   PERMANENT
==============================================  ===========================================

Every ack that arrives is pushed to the receipt sink the dispatcher binds
(:class:`~warnpub.channels.base.PushesReceipts`): ``played`` → DELIVERED, ``failed`` →
PERMANENT. ``stop(address, reference)`` publishes ``<address>/stop`` (used on Cancel).
``ack_retries`` tells the dispatcher how often a silent group is played again before its
delivery fails as unreached (:mod:`warnpub.dispatch.broadcasts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiomqtt
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import model_validator as _model_validator

from warnpub.channels.base import (
    Limits,
    Message,
    Receipt,
    ReceiptSink,
    Result,
    Status,
)
from warnpub.channels.instance_config import validate_instance
from warnpub.channels.speaker_wire import (
    ACK,
    DEFAULT_PREFIX,
    Ack,
    PlayCommand,
    StopCommand,
    ack_topic,
    address_of,
    delivery_id_of,
    play_topic,
    stop_topic,
    topic_problem,
    under_prefix,
    wildcard,
)
from warnpub.clock import utcnow
from warnpub.render.audio import DEFAULT_SPEED_WPM, DEFAULT_VOICES, Synthesiser

log = logging.getLogger("warnpub.channels.speaker_mqtt")

RECONNECT_MIN_S = 0.2
RECEIPT_BATCH = 500
CLOSE_FLUSH_S = 5.0
SUBSCRIBE_CHUNK = 100
MAX_ERROR_CHARS = 300
_CLIENT_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_TRUE = frozenset({"1", "true", "yes", "on"})


class MqttSpeakerConfig(BaseModel):
    """One ``[[channels.speaker]]`` entry with ``adapter = "mqtt_speaker"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id_prefix: str = Field("warnpub-", max_length=64)
    # Keep the broker session across reconnects (acks queued while away are not lost). The
    # client id is then stable: <prefix><instance name>-<host name>, one process per host.
    persistent_session: bool = False
    topic_prefix: str = DEFAULT_PREFIX
    qos: int = Field(1, ge=1, le=2)
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=300)
    publish_timeout_s: float = Field(10.0, gt=0, le=300)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    # A group that has not acknowledged after this is final (Limits.receipt_timeout_s).
    ack_timeout_s: float = Field(900.0, gt=0)
    # A group silent for ack_timeout_s is played again this many times (the same reference),
    # then its delivery fails as unreached (the dispatcher's sweeper does it).
    ack_retries: int = Field(2, ge=0, le=20)
    # send() waits this long for the group's answer before answering SENT (0: do not wait).
    ack_wait_s: float = Field(0.0, ge=0, le=120)
    repeat: int = Field(3, ge=1, le=100)
    interval_s: float = Field(30.0, ge=0, le=3600)
    audio_base_url: str | None = None
    audio_dir: str | None = None
    voices: dict[str, str] = dict(DEFAULT_VOICES)
    speech_wpm: int = Field(DEFAULT_SPEED_WPM, ge=80, le=450)
    synth_timeout_s: float = Field(30.0, gt=0, le=600)
    max_batch: int = Field(50, ge=1, le=1000)
    rate_per_s: float = Field(20.0, gt=0)
    burst: int | None = Field(None, ge=1)
    concurrency: int = Field(4, ge=1, le=64)
    weight: float = Field(1.0, ge=0)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("give the broker's host name or IP address")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        problem = topic_problem(value)
        if problem:
            raise ValueError(f"{value!r} cannot be a topic prefix: {problem}")
        return value

    @field_validator("client_id_prefix")
    @classmethod
    def _client_prefix(cls, value: str) -> str:
        if _CLIENT_ID_CHARS.search(value):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return value

    @field_validator("audio_base_url")
    @classmethod
    def _audio_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = urlsplit(value)
            host = parsed.hostname
        except ValueError:
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise ValueError(
                f"{value!r} is not an http:// or https:// URL "
                "(e.g. http://warnpub.example.cn:8080/audio)"
            )
        return value.rstrip("/")

    @field_validator("voices")
    @classmethod
    def _voices(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, voice in value.items():
            if not lang.strip() or not re.fullmatch(r"[A-Za-z0-9_+-]+", voice):
                raise ValueError(f"{lang!r} = {voice!r} is not a language and espeak-ng voice")
        return value

    @_model_validator(mode="after")
    def _pairs(self) -> MqttSpeakerConfig:
        if self.password is not None and not self.username:
            raise ValueError("password is set without username")
        return self


def parse_config(config: Mapping[str, Any]) -> MqttSpeakerConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(MqttSpeakerConfig, config, "mqtt_speaker", "docs/channels.md")


def reference_of(message: Message) -> str:
    """The reference (idempotency key) of a play command: ``wp-<delivery id>``."""
    return message.idempotency_key or f"wp-{message.delivery_id}"


class MqttSpeaker:
    """Speaker groups on an MQTT broker as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "speaker"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = cfg = parse_config(config)
        self.limits = Limits(
            max_batch=cfg.max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=cfg.burst or max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=True,
            receipt_timeout_s=cfg.ack_timeout_s,
        )
        self.weight = cfg.weight
        self.ack_retries = cfg.ack_retries
        self.client_id = _client_id(cfg, name)
        self.synthesiser: Synthesiser | None = None
        if cfg.audio_base_url is not None:
            self.synthesiser = Synthesiser(
                Path(cfg.audio_dir) if cfg.audio_dir else None,
                voices=cfg.voices,
                speed_wpm=cfg.speech_wpm,
                timeout_s=cfg.synth_timeout_s,
            )
        self._sink: ReceiptSink | None = None
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None  # resolved when this connection ends
        self._last_error = "not connected yet"
        self._begun = 0  # connection attempts begun
        self._attempts = 0  # connection attempts finished (failed or ended)
        self._changed = asyncio.Event()  # replaced after each change of connection state
        self._kick = asyncio.Event()  # connect now, without waiting out the backoff
        self._extra_acks: set[str] = set()  # ack topics of addresses outside topic_prefix
        self._waiters: dict[str, list[asyncio.Future[Ack]]] = {}
        self._receipts: asyncio.Queue[Receipt] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False  # close() has begun: the connection loop connects no more

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"MqttSpeaker(name={self.name!r}, broker={cfg.host}:{cfg.port}, "
            f"topic_prefix={cfg.topic_prefix!r})"
        )

    # -- lifecycle ------------------------------------------------------------------------

    def bind_receipts(self, sink: ReceiptSink) -> None:
        """Where acknowledgements go (the dispatcher binds it before :meth:`start`)."""
        self._sink = sink

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        """Start connecting in the background (a broker that is down only delays messages)."""
        if self._tasks and not any(t.done() for t in self._tasks):
            return
        for task in self._tasks:  # one loop ended unexpectedly: restart both
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closing = False
        if self.synthesiser is not None and not self.synthesiser.available:
            log.info("speaker %s: espeak-ng is not installed; groups get the text only", self.name)
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name=f"mqtt-speaker-{self.name}"),
            asyncio.create_task(self._receipt_loop(), name=f"mqtt-speaker-{self.name}-acks"),
        ]

    async def close(self) -> None:
        """Disconnect; hand the acknowledgements already received to the sink first."""
        if not self._tasks:
            return
        connection, pump = self._tasks
        self._tasks = []
        self._closing = True
        # Cancelled while the client tears a connection down, aiomqtt may swallow the
        # cancellation (seen once: the loop connected again and close() waited for ever), so
        # the loop also stops at its next turn, and is cancelled again until it has ended.
        while not connection.done():
            connection.cancel()
            await asyncio.wait({connection}, timeout=1.0)
        try:
            await asyncio.wait_for(self._receipts.join(), timeout=CLOSE_FLUSH_S)
        except TimeoutError:
            log.warning(
                "speaker %s: closing with acknowledgements not recorded (the sink kept failing)",
                self.name,
            )
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    # -- sending --------------------------------------------------------------------------

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        await self.start()
        results: dict[int, Result] = {}
        ready: list[Message] = []
        for m in messages:
            problem = topic_problem(m.address)
            if problem:
                error = f"address {m.address!r} is not a speaker group topic: {problem}"
                results[m.delivery_id] = Result(m.delivery_id, Status.PERMANENT, error=error)
            else:
                ready.append(m)
        if ready:
            client, lost = await self._connection()
            if client is None or lost is None:
                error = self._not_connected()
                for m in ready:
                    results[m.delivery_id] = Result(m.delivery_id, Status.TRANSIENT, error=error)
            else:
                await self._subscribe_acks(client, [m.address for m in ready])
                audio = await self._audio_urls(ready)
                played = await asyncio.gather(
                    *(self._play(client, lost, m, audio.get((m.text, m.language))) for m in ready)
                )
                results.update((r.delivery_id, r) for r in played)
        return [results[m.delivery_id] for m in messages]

    async def stop(self, address: str, reference: str) -> Result:
        """Publish a stop command for ``reference`` on ``<address>/stop``: the group stops
        playing it and any repeats still to come. SENT once the broker has it, TRANSIENT when
        it could not be published (retry), PERMANENT for an address that is not a topic.
        ``delivery_id`` of the result is read from the reference (``wp-<id>``), else 0."""
        delivery_id = delivery_id_of(reference) or 0
        problem = topic_problem(address)
        if problem:
            why = f"address {address!r} is not a speaker group topic: {problem}"
            return Result(delivery_id, Status.PERMANENT, error=why)
        client, lost = await self._connection()
        if client is None or lost is None:
            return Result(delivery_id, Status.TRANSIENT, error=self._not_connected())
        payload = StopCommand(reference=reference, at=utcnow()).to_json()
        error = await self._publish(client, lost, stop_topic(address), payload)
        if error:
            return Result(delivery_id, Status.TRANSIENT, error=error)
        log.info("speaker %s: stop %s sent to %s", self.name, reference, address)
        return Result(delivery_id, Status.SENT, provider_ref=reference)

    def command(self, m: Message, audio_url: str | None) -> PlayCommand:
        """The play command for ``m``. ``m.metadata`` may set ``repeat``, ``interval_s``,
        ``audio_url``, ``drill`` ("true") or ``status`` (CAP status; Exercise is a drill)."""
        meta = m.metadata
        drill = meta.get("drill", "").strip().lower() in _TRUE or meta.get("status") == "Exercise"
        return PlayCommand(
            delivery_id=m.delivery_id,
            reference=reference_of(m),
            text=m.text,
            language=m.language,
            audio_url=meta.get("audio_url") or audio_url,
            repeat=_bounded_int(meta.get("repeat"), self.config.repeat, 1, 100),
            interval_s=_bounded_float(meta.get("interval_s"), self.config.interval_s, 0, 3600),
            priority=m.priority,
            expires_at=m.expires_at,
            drill=drill,
        )

    async def _play(
        self, client: aiomqtt.Client, lost: asyncio.Future[None], m: Message, audio: str | None
    ) -> Result:
        cmd = self.command(m, audio)
        waiter: asyncio.Future[Ack] | None = None
        if self.config.ack_wait_s > 0:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(cmd.reference, []).append(waiter)
        try:
            error = await self._publish(client, lost, play_topic(m.address), cmd.to_json())
            if error:
                return Result(m.delivery_id, Status.TRANSIENT, error=error)
            if waiter is not None:
                with contextlib.suppress(TimeoutError):
                    ack = await asyncio.wait_for(waiter, timeout=self.config.ack_wait_s)
                    if ack.status == "played":
                        return Result(m.delivery_id, Status.DELIVERED, provider_ref=cmd.reference)
                    return Result(
                        m.delivery_id,
                        Status.PERMANENT,
                        provider_ref=cmd.reference,
                        error=_failed_text(m.address, ack),
                    )
            return Result(m.delivery_id, Status.SENT, provider_ref=cmd.reference)
        finally:
            if waiter is not None:
                self._forget_waiter(cmd.reference, waiter)

    async def _publish(
        self, client: aiomqtt.Client, lost: asyncio.Future[None], topic: str, payload: bytes
    ) -> str | None:
        """Publish and wait for the broker's acknowledgement; None, or why it failed."""
        cfg = self.config
        task = asyncio.ensure_future(
            client.publish(topic, payload, qos=cfg.qos, timeout=cfg.publish_timeout_s)
        )
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            return "the connection to the broker was lost before it acknowledged the message"
        exc = task.exception()
        if exc is None:
            return None
        if isinstance(exc, aiomqtt.MqttError) and "timed out" in str(exc):
            return f"the broker did not acknowledge within {cfg.publish_timeout_s:g} s"
        return f"publish failed: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]

    async def _audio_urls(self, messages: Sequence[Message]) -> dict[tuple[str, str], str | None]:
        synth, base = self.synthesiser, self.config.audio_base_url
        if synth is None or base is None or not synth.available:
            return {}
        keys = list(
            dict.fromkeys((m.text, m.language) for m in messages if not m.metadata.get("audio_url"))
        )
        names = await asyncio.gather(*(synth.synthesise(text, lang) for text, lang in keys))
        return {
            key: f"{base}/{name}.wav" if name else None
            for key, name in zip(keys, names, strict=True)
        }

    def _not_connected(self) -> str:
        cfg = self.config
        return (f"not connected to the MQTT broker at {cfg.host}:{cfg.port}: {self._last_error}")[
            :MAX_ERROR_CHARS
        ]

    # -- the connection -------------------------------------------------------------------

    async def _connection(self) -> tuple[aiomqtt.Client | None, asyncio.Future[None] | None]:
        """The live connection; when there is none, the outcome of one connection attempt
        begun after this call (at once, not after the backoff) within ``connect_timeout_s``.
        (An attempt already under way may have begun before the broker came back: its refusal
        is not the answer.)"""
        if self._client is not None:
            return self._client, self._lost
        target = self._begun + 1
        self._kick.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.connect_timeout_s + 1.0
        while self._client is None and self._attempts < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
            except TimeoutError:
                break
        return self._client, self._lost

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.config
        password = cfg.password.get_secret_value() if cfg.password is not None else None
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=password,
            identifier=self.client_id,
            clean_session=not cfg.persistent_session,
            keepalive=cfg.keepalive_s,
            timeout=cfg.connect_timeout_s,
            max_inflight_messages=max(20, cfg.max_batch * cfg.concurrency),
            logger=logging.getLogger("warnpub.channels.speaker_mqtt.paho"),
        )
        client.pending_calls_threshold = cfg.max_batch * cfg.concurrency + 20
        return client

    async def _connection_loop(self) -> None:
        cfg = self.config
        backoff = RECONNECT_MIN_S
        while not self._closing:
            self._kick.clear()
            self._begun += 1
            client = self._new_client()
            try:
                async with client:
                    await self._subscribe(client, [wildcard(cfg.topic_prefix, ACK)])
                    await self._subscribe(client, sorted(self._extra_acks))
                    self._lost = asyncio.get_running_loop().create_future()
                    self._client = client
                    self._notify()
                    backoff = RECONNECT_MIN_S
                    log.info(
                        "speaker %s: connected to %s:%s as %s",
                        self.name,
                        cfg.host,
                        cfg.port,
                        self.client_id,
                    )
                    async for message in client.messages:
                        self._on_message(message.topic.value, message.payload)
            except Exception as exc:  # any failure ends this connection, never the loop
                was_up = self._client is not None
                self._last_error = (str(exc) or type(exc).__name__)[:200]
                log.log(
                    logging.WARNING if was_up else logging.DEBUG,
                    "speaker %s: broker %s:%s: %s",
                    self.name,
                    cfg.host,
                    cfg.port,
                    self._last_error,
                    exc_info=not isinstance(exc, aiomqtt.MqttError),
                )
            finally:
                self._client = None
                if self._lost is not None and not self._lost.done():
                    self._lost.set_result(None)
                self._attempts += 1
                self._notify()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=backoff * random.uniform(1, 1.5))
            backoff = min(backoff * 2, cfg.reconnect_max_s)

    async def _subscribe(self, client: aiomqtt.Client, topics: Sequence[str]) -> None:
        for i in range(0, len(topics), SUBSCRIBE_CHUNK):
            chunk = topics[i : i + SUBSCRIBE_CHUNK]
            granted = await client.subscribe([(t, self.config.qos) for t in chunk])
            for topic, code in zip(chunk, granted, strict=False):
                value = getattr(code, "value", code)  # a paho ReasonCode, or a granted QoS
                if isinstance(value, int) and value >= 0x80:
                    log.error(
                        "speaker %s: the broker refused the subscription to %s (code %s): "
                        "acknowledgements on it will not be seen; check the broker's ACL",
                        self.name,
                        topic,
                        value,
                    )

    async def _subscribe_acks(self, client: aiomqtt.Client, addresses: Sequence[str]) -> None:
        """Subscribe to the ack topics of addresses outside ``<topic_prefix>/+`` (before
        publishing, so a fast answer is not missed). Failure is logged: sending matters more."""
        prefix = self.config.topic_prefix
        new = sorted(
            {ack_topic(a) for a in addresses if not under_prefix(a, prefix)} - self._extra_acks
        )
        if not new:
            return
        try:
            await self._subscribe(client, new)
        except aiomqtt.MqttError as exc:
            log.warning(
                "speaker %s: cannot subscribe to %d ack topics: %s", self.name, len(new), exc
            )
            return
        self._extra_acks.update(new)

    # -- acknowledgements -----------------------------------------------------------------

    def _on_message(self, topic: str, payload: Any) -> None:
        address = address_of(topic, ACK)
        if address is None:
            return
        try:
            ack = Ack.from_json(payload if isinstance(payload, bytes | bytearray | str) else b"")
        except (ValueError, TypeError) as exc:
            log.warning("speaker %s: ignoring a malformed ack on %s: %s", self.name, topic, exc)
            return
        delivered = ack.status == "played"
        receipt = Receipt(
            Status.DELIVERED if delivered else Status.PERMANENT,
            provider_ref=ack.reference,
            delivery_id=ack.delivery_id
            if ack.delivery_id is not None
            else delivery_id_of(ack.reference),
            error="" if delivered else _failed_text(address, ack),
            at=_plausible(ack.at),
        )
        for waiter in self._waiters.get(ack.reference, []):
            if not waiter.done():
                waiter.set_result(ack)
        self._receipts.put_nowait(receipt)

    def _forget_waiter(self, reference: str, waiter: asyncio.Future[Ack]) -> None:
        waiters = self._waiters.get(reference)
        if waiters is None:
            return
        with contextlib.suppress(ValueError):
            waiters.remove(waiter)
        if not waiters:
            del self._waiters[reference]

    async def _receipt_loop(self) -> None:
        while True:
            batch = [await self._receipts.get()]
            while len(batch) < RECEIPT_BATCH and not self._receipts.empty():
                batch.append(self._receipts.get_nowait())
            try:
                await self._hand_over(batch)
            finally:
                for _ in batch:
                    self._receipts.task_done()

    async def _hand_over(self, batch: list[Receipt]) -> None:
        """Give ``batch`` to the sink, retrying with backoff while it fails (database down)."""
        delay = 0.5
        while True:
            sink = self._sink
            if sink is None:
                log.warning(
                    "speaker %s: %d acknowledgements dropped: no receipt sink is bound",
                    self.name,
                    len(batch),
                )
                return
            try:
                await sink(batch)
                return
            except Exception:
                log.exception(
                    "speaker %s: recording %d acknowledgements failed; retrying in %.1f s",
                    self.name,
                    len(batch),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def _client_id(cfg: MqttSpeakerConfig, name: str) -> str:
    host = socket.gethostname()
    parts = [name, host] if cfg.persistent_session else [name, host, str(os.getpid())]
    if not cfg.persistent_session:
        parts.append(f"{random.getrandbits(24):06x}")
    return cfg.client_id_prefix + _CLIENT_ID_CHARS.sub("_", "-".join(parts))


def _failed_text(address: str, ack: Ack) -> str:
    why = f": {ack.error}" if ack.error else ""
    return f"speaker group {address} could not play {ack.reference}{why}"[:MAX_ERROR_CHARS]


def _plausible(at: datetime | None) -> datetime | None:
    """The group's own time, unless its clock is clearly off (then the time of arrival)."""
    if at is None:
        return None
    now = utcnow()
    if at > now + timedelta(seconds=60) or at < now - timedelta(days=1):
        return now
    return min(at, now)


def _bounded_int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


def _bounded_float(value: str | None, default: float, low: float, high: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high) if math.isfinite(number) else default
