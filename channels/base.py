"""The channel protocol: what every way of reaching people implements.

A channel adapter is one class (one module under ``channels/``) with its limits declared as
data and one ``send`` coroutine that takes a batch of messages and returns one result per
message. The dispatcher does everything else: claiming rows, rate limits, retries, failover,
recording. Adapters are found through the entry-point group ``warnpub.channels``
(:mod:`warnpub.channels.registry`), so a new service is one new module and one entry point.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable


class Status(StrEnum):
    """What happened to one message at the channel's peer."""

    SENT = "sent"  # accepted by the peer; a receipt may follow
    DELIVERED = "delivered"  # the peer confirmed delivery already (no receipt to wait for)
    TRANSIENT = "transient"  # timeout, 5xx, throttling: retry later, same channel
    PERMANENT = "permanent"  # invalid number, rejected content: move to the route's next step


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery rendered for one channel."""

    delivery_id: int
    address: str  # E.164 number, e-mail address, MQTT topic, board id, callback URL, …
    text: str
    subject: str = ""
    html: str | None = None
    language: str = "zh-CN"
    priority: int = 0
    expires_at: datetime | None = None
    # Passed to the peer so a retried send is never delivered twice (GOV.UK Notify style).
    idempotency_key: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of sending one message."""

    delivery_id: int
    status: Status
    provider_ref: str | None = None  # the peer's message id, used to match receipts
    error: str = ""
    retry_after_s: float | None = None  # the peer asked us to wait (HTTP 429 Retry-After)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a channel instance accepts, as data the dispatcher reads."""

    max_batch: int = 1  # messages per send() call
    rate_per_s: float = 10.0  # token-bucket rate for this instance
    burst: int = 10
    concurrency: int = 4  # send() calls in flight at once
    receipts: bool = False  # the peer reports delivery later (then SENT waits for a receipt)
    receipt_timeout_s: float = 3600.0  # after this, a SENT message without receipt is final
    # After this a missing receipt counts as late for the instance's health (None: the
    # dispatcher's demote_receipt_s); for peers whose receipts are slow by design.
    receipt_late_s: float | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery report from a peer, matched to a delivery by provider_ref or delivery id."""

    status: Status  # DELIVERED or PERMANENT (failed)
    provider_ref: str | None = None
    delivery_id: int | None = None
    error: str = ""
    at: datetime | None = None


ReceiptSink = Callable[[Sequence[Receipt]], Awaitable[None]]


@runtime_checkable
class PushesReceipts(Protocol):
    """A channel whose peer reports back over the channel itself (an MQTT acknowledgement
    topic, a board's heartbeat) rather than over an HTTP callback. The dispatcher binds a sink
    before ``start()``; the channel calls it with the receipts it receives."""

    def bind_receipts(self, sink: ReceiptSink) -> None: ...


@runtime_checkable
class UsesDatabase(Protocol):
    """A channel whose peer is our own database (a notice board reads its warnings from it).
    The dispatcher hands it its own :class:`~warnpub.storage.engine.Database` before
    ``start()``, so the channel uses the database ``warnpub`` was configured with."""

    def bind_database(self, db: Any) -> None: ...


@runtime_checkable
class UsesSettings(Protocol):
    """A channel that writes links to this server (the visit channel): the dispatcher hands
    it the settings ``warnpub`` runs with before ``start()``."""

    def bind_settings(self, settings: Any) -> None: ...


class ChannelError(Exception):
    """A channel could not be set up (bad configuration); says what to fix."""


@runtime_checkable
class Channel(Protocol):
    """One configured instance of a channel adapter (e.g. the SMS gateway named "sim")."""

    kind: ClassVar[str]  # the route channel it serves: "sms", "email", "voice", …
    name: str  # the instance name from configuration
    limits: Limits
    weight: float  # share of traffic among instances of the same kind

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send a batch (len ≤ limits.max_batch); one Result per message, in any order.

        Never raises for a per-message problem; raises only when the whole call failed in a
        way the adapter could not classify (the dispatcher then treats every message as
        TRANSIENT)."""
        ...


ChannelFactory = (
    Any  # Callable[[str, Mapping[str, Any]], Channel]: (instance name, config) → channel
)
