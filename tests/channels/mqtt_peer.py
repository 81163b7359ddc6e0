"""The real MQTT broker for the loudspeaker tests, and helpers around it.

Tests use the Mosquitto broker on 127.0.0.1:1883 (``WARNPUB_TEST_MQTT=host:port`` to use
another). With ``CI=true`` a missing broker fails the test; elsewhere it is skipped with the
reason. Every test uses its own topic prefix (:func:`unique_prefix`), so parallel runs on the
shared broker never see each other's messages. The broker is never restarted by a test: a lost
connection is made with :class:`TcpProxy` between the channel and the broker instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiomqtt
import pytest

from tests.conftest import IN_CI

_HOST, _, _PORT = os.environ.get("WARNPUB_TEST_MQTT", "127.0.0.1:1883").rpartition(":")
BROKER_HOST = _HOST or "127.0.0.1"
BROKER_PORT = int(_PORT)


def broker_problem() -> str | None:
    """Why the broker cannot be reached, or None when it accepts connections."""
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=2):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def require_broker() -> None:
    """Fail (in CI) or skip (elsewhere) when the MQTT broker is not there."""
    problem = broker_problem()
    if problem is None:
        return
    message = f"the MQTT broker at {BROKER_HOST}:{BROKER_PORT} is not reachable ({problem})"
    if IN_CI:
        pytest.fail(message + "; CI needs Mosquitto (see .ci/run)")
    pytest.skip(message)


def unique_prefix() -> str:
    return f"warnpub-test/{uuid.uuid4().hex}/speakers"


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Listener:
    """A plain MQTT client that records every message on ``topic_filter``."""

    def __init__(self, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self.messages: list[Seen] = []
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = aiomqtt.Client(BROKER_HOST, BROKER_PORT, timeout=5)
        await self._client.__aenter__()
        await self._client.subscribe(self.topic_filter, qos=1)
        self._task = asyncio.create_task(self._collect(self._client))

    async def _collect(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append(Seen(m.topic.value, payload, m.qos, m.retain))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def wait(self, count: int, timeout_s: float = 5.0) -> list[Seen]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.messages) < count and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return list(self.messages)


@asynccontextmanager
async def listening(topic_filter: str) -> AsyncIterator[Listener]:
    listener = Listener(topic_filter)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


async def publish(topic: str, payload: bytes | str, *, qos: int = 1) -> None:
    """Publish one message on the real broker (e.g. an acknowledgement a test writes itself)."""
    async with aiomqtt.Client(BROKER_HOST, BROKER_PORT, timeout=5) as client:
        await client.publish(topic, payload, qos=qos)


async def forget_session(client_id: str) -> None:
    """Remove a persistent session a test left on the shared broker."""
    async with aiomqtt.Client(BROKER_HOST, BROKER_PORT, identifier=client_id, clean_session=True):
        pass


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of the broker. ``block()`` drops every connection and
    stops listening (connections are refused) until ``unblock()``: a broker that went away,
    without touching the broker the other tests share."""

    def __init__(self, host: str = BROKER_HOST, port: int = BROKER_PORT) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        pumps = [
            asyncio.create_task(_pump(reader, up_writer)),
            asyncio.create_task(_pump(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    async def block(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for client_side, broker_side in list(self._links):
            broker_side.transport.abort()
            client_side.transport.abort()
        self._links.clear()
        await asyncio.sleep(0)

    async def unblock(self) -> None:
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.block()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@asynccontextmanager
async def proxy() -> AsyncIterator[TcpProxy]:
    relay = TcpProxy()
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()
