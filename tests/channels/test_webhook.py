"""The webhook channel against a real partner endpoint on 127.0.0.1 (harness_webhook.PartnerPeer):
what partners receive in each format, signatures, idempotency keys, and how answers are
classified."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from lxml import etree

# The contract module imports every harness; it must finish before this module imports one.
import tests.channels.contract  # noqa: F401
from tests.cap.shared_data import CHINESE_CAP
from tests.channels.harness_webhook import PARTNER, PartnerPeer
from tests.channels.peers import serve
from warnpub.cap import cap12_schema, parse_cap_xml
from warnpub.channels.base import ChannelError, Message, Status
from warnpub.channels.registry import load_factory
from warnpub.channels.webhook import Webhook
from warnpub.config import Settings, load_settings
from warnpub.render.partner import partner_rendered, read_envelope, render_partner
from warnpub.render.view import WarningView
from warnpub.storage.tables import WarningRecord

WARNING_ID = "01JTESTWEBHOOK000000000001"


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
async def peer(secret: str) -> AsyncIterator[PartnerPeer]:
    partner = PartnerPeer(secret)
    async with serve(partner.app()) as base:
        partner.url = f"{base}/hook"
        yield partner


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={"WARNPUB_SERVER_PUBLIC_URL": "https://warn.example.cn"})


def webhook(peer: PartnerPeer, **extra: object) -> Webhook:
    return Webhook(PARTNER, {"url": peer.url, "secret": peer.secret, "timeout_s": 5, **extra})


def envelope_message(settings: Settings, delivery_id: int = 42) -> Message:
    alert = parse_cap_xml(CHINESE_CAP.encode())
    view = WarningView.from_alert(alert, settings, warning_id=WARNING_ID, hazard="rainstorm")
    return Message(
        delivery_id=delivery_id,
        address=PARTNER,
        text=partner_rendered(view, settings).text,
        idempotency_key=f"wp-{delivery_id}",
    )


async def send_one(channel: Webhook, message: Message):
    await channel.start()
    try:
        (result,) = await channel.send([message])
    finally:
        await channel.close()
    return result


async def test_cap_partner_gets_the_signed_published_cap_document(peer, settings):
    result = await send_one(webhook(peer, format="cap"), envelope_message(settings))
    assert result.status is Status.DELIVERED and result.provider_ref == "tv-1", result
    assert peer.refused == []  # the HMAC signature verified at the partner
    (got,) = peer.accepted
    assert got.content_type == "application/cap+xml; charset=utf-8"
    assert got.key == "wp-42"
    cap12_schema().assertValid(etree.fromstring(got.body))
    assert parse_cap_xml(got.body) == parse_cap_xml(CHINESE_CAP.encode())


async def test_json_partner_gets_the_envelope(peer, settings):
    result = await send_one(webhook(peer, format="json"), envelope_message(settings))
    assert result.status is Status.DELIVERED
    (got,) = peer.accepted
    assert got.content_type == "application/json; charset=utf-8"
    doc = json.loads(got.body)
    assert doc["type"] == "warnpub.warning" and doc["id"] == WARNING_ID
    assert doc["cap_url"] == f"https://warn.example.cn/warnings/{WARNING_ID}.cap.xml"
    assert doc["level"] == "red" and doc["hazard"] == {"zh": "暴雨", "en": "Rainstorm"}
    assert doc["alert"]["identifier"] == "32048141600000020260701080000001"
    assert parse_cap_xml(doc["cap_xml"].encode()) == parse_cap_xml(CHINESE_CAP.encode())


async def test_a_retried_delivery_carries_the_same_key_and_the_partner_acts_once(peer, settings):
    channel = webhook(peer)
    message = envelope_message(settings)
    first = await send_one(channel, message)
    again = await send_one(channel, message)
    assert first.status is again.status is Status.DELIVERED
    assert first.provider_ref == again.provider_ref
    assert peer.requests == 2 and len(peer.accepted) == 1


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (500, {}, Status.TRANSIENT, None),
        (503, {"Retry-After": "12"}, Status.TRANSIENT, 12.0),
        (429, {"Retry-After": "7"}, Status.TRANSIENT, 7.0),
        (408, {}, Status.TRANSIENT, None),
        (400, {}, Status.PERMANENT, None),
        (404, {}, Status.PERMANENT, None),
        (410, {}, Status.PERMANENT, None),
        (422, {}, Status.PERMANENT, None),
    ],
)
async def test_answers_are_classified(peer, settings, status, headers, expected, retry_after):
    peer.answer(status, **headers)
    result = await send_one(webhook(peer), envelope_message(settings))
    assert result.status is expected, result
    assert result.retry_after_s == retry_after
    assert f"HTTP {status}" in result.error and f"injected {status}" in result.error
    assert peer.accepted == []


async def test_redirects_are_not_followed(peer, settings):
    peer.answer(301, Location="https://elsewhere.example/hook")
    result = await send_one(webhook(peer), envelope_message(settings))
    assert result.status is Status.PERMANENT and "register the final URL" in result.error


async def test_a_partner_that_refuses_our_signature_is_permanent(peer, settings):
    channel = Webhook(PARTNER, {"url": peer.url, "secret": "x" * 32, "timeout_s": 5})
    result = await send_one(channel, envelope_message(settings))
    assert result.status is Status.PERMANENT and "HTTP 401" in result.error
    assert "does not match" in peer.refused[0] and peer.accepted == []


async def test_timeout_and_refused_connection_are_transient(peer, settings):
    peer.answer(200, delay_s=1.0)
    slow = await send_one(webhook(peer, timeout_s=0.2), envelope_message(settings))
    assert slow.status is Status.TRANSIENT and "no answer within 0.2 s" in slow.error

    async with serve(PartnerPeer(peer.secret).app()) as gone:
        pass  # the server is stopped again: nothing listens on that port now
    closed = Webhook(PARTNER, {"url": f"{gone}/hook", "secret": peer.secret})
    result = await send_one(closed, envelope_message(settings))
    assert result.status is Status.TRANSIENT and "cannot reach the partner" in result.error


async def test_a_message_for_another_partner_is_refused_unsent(peer, settings):
    message = envelope_message(settings)
    other = Message(message.delivery_id, "radio", message.text, idempotency_key="wp-42")
    result = await send_one(webhook(peer), other)
    assert result.status is Status.PERMANENT and "'radio'" in result.error
    assert peer.requests == 0


async def test_plain_text_goes_to_json_partners_only(peer):
    plain = Message(7, PARTNER, "【演练】暴雨红色预警", idempotency_key="wp-7")
    refused = await send_one(webhook(peer, format="cap"), plain)
    assert refused.status is Status.PERMANENT and "cannot be sent as CAP" in refused.error
    sent = await send_one(webhook(peer, format="json"), plain)
    assert sent.status is Status.DELIVERED
    assert json.loads(peer.accepted[0].body) == {
        "text": "【演练】暴雨红色预警",
        "language": "zh-CN",
    }


def test_the_adapter_is_installed_as_an_entry_point():
    assert load_factory("webhook") is Webhook


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret": "s" * 32}, "key url: this key is required"),
        ({"url": "https://tv.example/hook"}, "key secret: this key is required"),
        ({"url": "ftp://tv.example/hook", "secret": "s" * 32}, "key url:"),
        ({"url": "https://tv.example/hook", "secret": "short"}, "key secret: use a secret"),
        (
            {"url": "https://tv.example/hook", "secret": "s" * 32, "format": "xml"},
            "key format:",
        ),
        (
            {"url": "https://tv.example/hook", "secret": "s" * 32, "retries": 3},
            "key retries: unknown key for the webhook adapter",
        ),
        ({"url": "https://tv.example/hook", "secret": "s" * 32, "timeout_s": 0}, "key timeout_s:"),
    ],
)
def test_configuration_mistakes_name_the_key(config, message):
    with pytest.raises(ChannelError) as refused:
        Webhook(PARTNER, config)
    assert message in str(refused.value)


def test_the_secret_is_never_shown(caplog, secret):
    short = "tooshort-but-secret"[:15]
    with pytest.raises(ChannelError) as refused:
        Webhook(PARTNER, {"url": "https://tv.example/hook", "secret": short})
    assert short not in str(refused.value)
    channel = Webhook(PARTNER, {"url": "https://tv.example/hook", "secret": secret})
    assert secret not in repr(channel) and secret not in repr(channel.config)
    assert channel.limits.max_batch == 1 and channel.limits.receipts is False


async def test_failures_are_logged_without_the_secret(peer, settings, caplog):
    caplog.set_level(logging.DEBUG, logger="warnpub.channels.webhook")
    peer.answer(400)
    await send_one(webhook(peer), envelope_message(settings))
    peer.answer(500)
    await send_one(webhook(peer), envelope_message(settings))
    assert "HTTP 400" in caplog.text and "HTTP 500" in caplog.text
    assert peer.secret not in caplog.text


def test_render_partner_gives_cap_and_json_for_a_stored_warning(settings):
    alert = parse_cap_xml(CHINESE_CAP.encode())
    record = WarningRecord(
        id=WARNING_ID,
        agency_id=1,
        sender=alert.sender,
        identifier=alert.identifier,
        sent=alert.sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        level="red",
        level_rank=0,
        hazard="rainstorm",
        headline="溧阳市气象台发布暴雨红色预警信号",
        state="approved",
        content_hash="0" * 64,
        alert=alert.model_dump(mode="json"),
        decided_at=datetime.now(UTC),
    )
    cap = render_partner(record, "cap", settings)
    cap12_schema().assertValid(etree.fromstring(cap))
    assert parse_cap_xml(cap) == alert
    doc = read_envelope(render_partner(record, "json", settings).decode())
    assert doc is not None and doc["id"] == WARNING_ID and doc["expires"] == "2026-07-02T00:00:00Z"
    with pytest.raises(ValueError, match="unknown partner format"):
        render_partner(record, "rss", settings)  # type: ignore[arg-type]
