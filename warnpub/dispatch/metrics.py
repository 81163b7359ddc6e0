"""Prometheus metrics: deliveries by channel and state, queue depth by tier, send latency,
gateway health. One registry per application, so tests and several apps never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.deliveries = Gauge(
            "warnpub_deliveries",
            "Delivery rows by channel and state",
            ["channel", "state"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "warnpub_queue_depth",
            "Deliveries waiting to leave, by tier and channel",
            ["tier", "channel"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "warnpub_send_seconds",
            "Time of one call to a channel instance",
            ["channel", "instance"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.messages = Counter(
            "warnpub_messages",
            "Messages by outcome at the channel",
            ["channel", "instance", "outcome"],
            registry=r,
        )
        self.error_rate = Gauge(
            "warnpub_gateway_error_rate",
            "Recent error rate of a channel instance",
            ["channel", "instance"],
            registry=r,
        )
        self.demoted = Gauge(
            "warnpub_gateway_demoted",
            "1 when the instance is demoted for errors",
            ["channel", "instance"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "warnpub_gateway_breaker_open",
            "1 when the instance's circuit breaker is open",
            ["channel", "instance"],
            registry=r,
        )

    async def refresh(self, db: Database) -> None:
        """Read the outbox counts (at scrape time; one grouped query each)."""
        async with db.reader() as session:
            by_state = (
                await session.execute(
                    select(Delivery.channel, Delivery.state, func.count()).group_by(
                        Delivery.channel, Delivery.state
                    )
                )
            ).all()
            queued = (
                await session.execute(
                    select(Delivery.tier, Delivery.channel, func.count())
                    .where(Delivery.state == "queued")
                    .group_by(Delivery.tier, Delivery.channel)
                )
            ).all()
        self.deliveries.clear()
        for channel, state, n in by_state:
            self.deliveries.labels(channel, state).set(n)
        self.queue_depth.clear()
        for tier, channel, n in queued:
            self.queue_depth.labels(str(tier), channel).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
