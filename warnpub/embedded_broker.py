"""An MQTT broker inside this process (amqtt), for the demo when no broker is configured.

The README's demo must run on a fresh machine with nothing installed beside the package, yet
its village loudspeakers are driven over MQTT. :func:`embedded_broker` starts amqtt on
127.0.0.1 on a free port for as long as the demo runs. It accepts anonymous clients and binds
loopback only: it is for the demo and local trials, never a county's production broker
(use Mosquitto or another hardened broker there; the tests run against Mosquitto).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

log = logging.getLogger("warnpub.embedded_broker")
HOST = "127.0.0.1"


class EmbeddedBrokerError(Exception):
    """The embedded broker could not start; says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[tuple[str, int]]:
    """Run an amqtt broker on 127.0.0.1 (``port``, or a free one); yields (host, port)."""
    try:
        from amqtt.broker import Broker
    except ImportError as exc:  # a dependency of the package; only a broken install lacks it
        raise EmbeddedBrokerError(
            f"the embedded MQTT broker needs amqtt ({exc}); reinstall warnpub, or configure "
            "[[channels.speaker]] with the host and port of your broker"
        ) from exc
    port = port or _free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }
    broker = Broker(config)
    try:
        await broker.start()
    except Exception as exc:
        raise EmbeddedBrokerError(
            f"the embedded MQTT broker could not listen on {HOST}:{port}: {exc}"
        ) from exc
    log.info("embedded MQTT broker listening", extra={"host": HOST, "port": port})
    try:
        yield HOST, port
    finally:
        await broker.shutdown()
