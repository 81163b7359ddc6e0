"""Fixtures for the channel tests."""

from __future__ import annotations

import pytest

from tests.channels.mqtt_peer import BROKER_HOST, BROKER_PORT, require_broker


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The real MQTT broker (host, port); fails in CI and skips elsewhere when it is absent."""
    require_broker()
    return BROKER_HOST, BROKER_PORT
