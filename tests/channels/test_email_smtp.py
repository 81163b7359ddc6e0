"""The SMTP e-mail channel against a real aiosmtpd server on 127.0.0.1: MIME parts and headers,
connection reuse, STARTTLS / TLS with a throwaway CA, AUTH, and per-recipient faults."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.channels.smtp_peer import CONTENT_DEFERRED, CONTENT_REJECTED, MailPeer
from warnpub.channels.base import Channel, ChannelError, Message, Status
from warnpub.channels.email_smtp import SmtpEmail, message_id
from warnpub.channels.registry import load_factory

FROM = "warn@warnpub.test"
USER, PASSWORD = "warnpub", "s3cret-Pa55"


def config(peer: MailPeer, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": peer.port,
        "from_address": FROM,
        "from_name": "溧阳市预警信息发布中心",
        "timeout_s": 5,
        **extra,
    }


def mail(i: int, address: str | None = None, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "delivery_id": 100 + i,
        "address": f"resident{i}@village.example.cn" if address is None else address,
        "text": f"【演练】暴雨红色预警：请立即转移到安全地带。#{i}",
        "subject": "【演练】暴雨红色预警",
        "html": f"<p>【演练】暴雨红色预警：<strong>请立即转移</strong> #{i}</p>",
        "idempotency_key": f"wp-{100 + i}",
        "language": "zh-CN",
        **fields,
    }
    return Message(**values)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def peer() -> AsyncIterator[MailPeer]:
    async with MailPeer() as running:
        yield running


async def using(channel: SmtpEmail) -> SmtpEmail:
    await channel.start()
    return channel


# --- the message ------------------------------------------------------------------------------


async def test_text_and_html_parts_and_headers(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    m = mail(1)
    try:
        (result,) = await channel.send([m])
    finally:
        await channel.close()
    assert result.status is Status.SENT  # accepted by the relay; e-mail has no receipts
    assert result.delivery_id == m.delivery_id
    (accepted,) = peer.mailbox.accepted
    assert accepted.mail_from == FROM and accepted.rcpt_tos == [m.address]
    msg = accepted.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().rstrip("\r\n") == m.text
    assert msg.get_body(("html",)).get_content().rstrip("\r\n") == m.html
    assert msg["Subject"] == m.subject
    assert msg["To"] == m.address
    assert msg["From"].addresses[0].display_name == "溧阳市预警信息发布中心"
    assert msg["From"].addresses[0].addr_spec == FROM
    assert msg["Message-ID"] == "<warnpub.wp-101@warnpub.test>" == result.provider_ref
    assert msg["X-Warnpub-Delivery"] == "101"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == "zh-CN"
    assert msg["Date"]


async def test_text_only_message(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        (result,) = await channel.send([mail(1, html=None, subject="")])
    finally:
        await channel.close()
    assert result.status is Status.SENT
    msg = peer.mailbox.accepted[0].message
    assert msg.get_content_type() == "text/plain"
    assert msg["Subject"].startswith("【演练】暴雨红色预警")  # the text's start when no subject


def test_message_id_is_stable_per_idempotency_key() -> None:
    a, b = mail(1), mail(1, text="another rendering")
    assert message_id(a, "x.cn") == message_id(b, "x.cn") == "<warnpub.wp-101@x.cn>"
    odd = mail(2, idempotency_key="key with spaces <and> brackets")
    assert message_id(odd, "x.cn") == message_id(odd, "x.cn")
    assert " " not in message_id(odd, "x.cn") and message_id(odd, "x.cn").count("<") == 1
    assert message_id(mail(3, idempotency_key=""), "x.cn") == "<warnpub.delivery-103@x.cn>"


# --- connections ------------------------------------------------------------------------------


async def test_one_connection_carries_several_batches(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer, max_batch=5, concurrency=1)))
    try:
        for batch in range(3):
            results = await channel.send([mail(batch * 5 + i) for i in range(5)])
            assert [r.status for r in results] == [Status.SENT] * 5
    finally:
        await channel.close()
    assert peer.connections == 1 and channel.connections_opened == 1
    assert len(peer.mailbox.accepted) == 15
    assert len({a.message["Message-ID"] for a in peer.mailbox.accepted}) == 15


async def test_concurrent_sends_use_at_most_concurrency_connections(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer, concurrency=2)))
    try:
        batches = [[mail(b * 10 + i) for i in range(4)] for b in range(6)]
        results = await asyncio.gather(*(channel.send(batch) for batch in batches))
    finally:
        await channel.close()
    assert all(r.status is Status.SENT for batch in results for r in batch)
    assert peer.connections <= 2
    assert len(peer.mailbox.accepted) == 24


async def test_reconnects_when_the_server_dropped_the_connection(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        assert (await channel.send([mail(1)]))[0].status is Status.SENT
        peer.drop_connections()  # the relay's idle timeout
        await asyncio.sleep(0.05)
        assert (await channel.send([mail(2)]))[0].status is Status.SENT
    finally:
        await channel.close()
    assert peer.connections == 2
    assert [a.rcpt_tos for a in peer.mailbox.accepted] == [
        ["resident1@village.example.cn"],
        ["resident2@village.example.cn"],
    ]


async def test_relay_down_fails_the_batch_transiently_then_recovers() -> None:
    peer = await MailPeer().start()
    port = peer.port
    await peer.stop()
    channel = await using(SmtpEmail("relay", config(peer, port=port)))
    try:
        results = await channel.send([mail(i) for i in range(3)])
        assert [r.status for r in results] == [Status.TRANSIENT] * 3
        assert all(f"cannot reach 127.0.0.1:{port}" in r.error for r in results)
        async with MailPeer(port=port) as back:
            results = await channel.send([mail(i) for i in range(3)])
            assert [r.status for r in results] == [Status.SENT] * 3
            assert back.connections == 1
    finally:
        await channel.close()


# --- TLS and AUTH ------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_and_auth(server_tls, ca_file, mechanism: str) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    async with MailPeer(
        starttls=server_tls,
        require_starttls=True,
        credentials=(USER, PASSWORD),
        exclude_mechanisms=(other,),
    ) as peer:
        channel = await using(
            SmtpEmail(
                "relay",
                config(peer, starttls=True, ca_file=ca_file, username=USER, password=PASSWORD),
            )
        )
        try:
            results = await channel.send([mail(1), mail(2)])
        finally:
            await channel.close()
    assert [r.status for r in results] == [Status.SENT, Status.SENT]
    assert peer.mailbox.logins == [(mechanism, USER)]  # one login for the reused connection
    assert all(a.tls and a.login == USER for a in peer.mailbox.accepted)


async def test_starttls_refuses_an_untrusted_certificate(server_tls) -> None:
    async with MailPeer(starttls=server_tls, require_starttls=True) as peer:
        channel = await using(SmtpEmail("relay", config(peer, starttls=True)))
        try:
            (result,) = await channel.send([mail(1)])
        finally:
            await channel.close()
    assert result.status is Status.TRANSIENT
    assert "certificate" in result.error.lower()
    assert peer.mailbox.accepted == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls(server_tls, ca_file) -> None:
    async with MailPeer(implicit_tls=server_tls, credentials=(USER, PASSWORD)) as peer:
        channel = await using(
            SmtpEmail(
                "relay",
                config(peer, use_tls=True, ca_file=ca_file, username=USER, password=PASSWORD),
            )
        )
        try:
            (result,) = await channel.send([mail(1)])
        finally:
            await channel.close()
    assert result.status is Status.SENT
    assert peer.mailbox.accepted[0].login == USER


async def test_wrong_password_is_transient_and_never_logged(server_tls, ca_file, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with MailPeer(
        starttls=server_tls, require_starttls=True, credentials=(USER, PASSWORD)
    ) as peer:
        channel = await using(
            SmtpEmail(
                "relay",
                config(peer, starttls=True, ca_file=ca_file, username=USER, password="wrong-pw-1"),
            )
        )
        try:
            results = await channel.send([mail(1), mail(2)])
        finally:
            await channel.close()
    assert [r.status for r in results] == [Status.TRANSIENT] * 2
    assert "login" in results[0].error and results[0].error == results[1].error
    assert peer.mailbox.accepted == [] and peer.connections == 1  # no retry storm
    logged = caplog.text + repr(channel) + repr(channel.config)
    assert "wrong-pw-1" not in logged and "wrong-pw-1" not in results[0].error


# --- faults ----------------------------------------------------------------------------------


async def test_per_recipient_faults_in_one_batch(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    batch = [
        mail(1),
        mail(2, "busy.wang@village.example.cn"),
        mail(3, "gone.li@village.example.cn"),
        mail(4, "bad.zhao@village.example.cn"),
        mail(5),
    ]
    try:
        results = await channel.send(batch)
    finally:
        await channel.close()
    by_id = {r.delivery_id: r for r in results}
    assert [by_id[m.delivery_id].status for m in batch] == [
        Status.SENT,
        Status.TRANSIENT,
        Status.PERMANENT,
        Status.PERMANENT,
        Status.SENT,
    ]
    assert by_id[102].error.startswith("SMTP 451")
    assert by_id[103].error.startswith("SMTP 550")
    assert by_id[104].error.startswith("SMTP 553")
    assert peer.connections == 1  # refusals do not cost the connection
    assert [a.rcpt_tos for a in peer.mailbox.accepted] == [[batch[0].address], [batch[4].address]]


async def test_421_closes_the_connection_and_the_batch_goes_on(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        results = await channel.send([mail(1, "closing@village.example.cn"), mail(2)])
    finally:
        await channel.close()
    assert [r.status for r in results] == [Status.TRANSIENT, Status.SENT]
    assert results[0].error.startswith("SMTP 421")
    assert peer.connections == 2


async def test_content_refused_at_data(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        results = await channel.send(
            [mail(1, subject=CONTENT_REJECTED), mail(2, subject=CONTENT_DEFERRED), mail(3)]
        )
    finally:
        await channel.close()
    assert [r.status for r in results] == [Status.PERMANENT, Status.TRANSIENT, Status.SENT]
    assert results[0].error.startswith("SMTP 554") and results[1].error.startswith("SMTP 451")
    assert len(peer.mailbox.accepted) == 1


async def test_timeout_is_transient_and_the_next_message_gets_a_new_connection(
    peer: MailPeer,
) -> None:
    peer.mailbox.rcpt_delay_s = 2.0
    channel = await using(SmtpEmail("relay", config(peer, timeout_s=0.3)))
    try:
        results = await channel.send([mail(1, "slow@village.example.cn"), mail(2)])
    finally:
        await channel.close()
    assert [r.status for r in results] == [Status.TRANSIENT, Status.SENT]
    assert "timeout" in results[0].error.lower()
    assert peer.connections == 2


async def test_malformed_addresses_are_permanent_without_a_connection(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    bad = ["not-an-address", "a@b", "x y@example.cn", "a@example.cn\r\nBcc: v@example.cn", ""]
    try:
        results = await channel.send([mail(i, address) for i, address in enumerate(bad)])
    finally:
        await channel.close()
    assert [r.status for r in results] == [Status.PERMANENT] * len(bad)
    assert peer.connections == 0


async def test_non_ascii_address_needs_smtputf8(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        (result,) = await channel.send([mail(1, "张三@例子.中国")])
    finally:
        await channel.close()
    assert result.status is Status.PERMANENT
    assert "SMTPUTF8" in result.error


async def test_addresses_are_masked_in_logs(peer: MailPeer, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="warnpub.channels.email_smtp")
    channel = await using(SmtpEmail("relay", config(peer)))
    try:
        await channel.send([mail(1, "gone.chen@village.example.cn"), mail(2, "not-an-address")])
    finally:
        await channel.close()
    assert caplog.records
    assert "gone.chen@" not in caplog.text


# --- configuration ----------------------------------------------------------------------------


def test_limits_and_identity_from_config() -> None:
    channel = SmtpEmail(
        "relay",
        {
            "from_address": FROM,
            "rate_per_s": 2.5,
            "concurrency": 3,
            "max_batch": 20,
            "weight": 0.5,
        },
    )
    assert isinstance(channel, Channel) and channel.kind == "email" and channel.name == "relay"
    assert channel.limits.receipts is False
    assert (channel.limits.rate_per_s, channel.limits.burst) == (2.5, 3)
    assert (channel.limits.concurrency, channel.limits.max_batch) == (3, 20)
    assert channel.weight == 0.5
    assert channel.config.effective_port == 25


def test_found_through_the_entry_point() -> None:
    assert load_factory("smtp") is SmtpEmail


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({}, "key from_address: this key is required"),
        ({"from_address": "not an address"}, "key from_address"),
        ({"from_address": FROM, "starttls": True, "use_tls": True}, "not both"),
        ({"from_address": FROM, "username": "u"}, "username and password together"),
        (
            {"from_address": FROM, "host": "smtp.example.cn", "username": "u", "password": "p"},
            "unencrypted",
        ),
        ({"from_address": FROM, "ca_file": "/nonexistent/ca.pem"}, "key ca_file"),
        ({"from_address": FROM, "smtp_host": "x"}, "key smtp_host: unknown key"),
        ({"from_address": FROM, "port": 0}, "key port"),
        ({"from_address": FROM, "from_name": "a\r\nBcc: x"}, "key from_name"),
    ],
)
def test_bad_configuration_says_what_to_fix(entry: dict[str, Any], says: str) -> None:
    with pytest.raises(ChannelError, match=says):
        SmtpEmail("relay", entry)


def test_password_is_not_shown() -> None:
    channel = SmtpEmail(
        "relay",
        {"from_address": FROM, "starttls": True, "username": USER, "password": PASSWORD},
    )
    assert PASSWORD not in repr(channel) + repr(channel.config) + str(channel.config)
    assert channel.config.effective_port == 587


async def test_close_quits_and_a_restarted_channel_reconnects(peer: MailPeer) -> None:
    channel = await using(SmtpEmail("relay", config(peer)))
    assert (await channel.send([mail(1)]))[0].status is Status.SENT
    await channel.close()
    await asyncio.sleep(0.05)
    assert peer.open_sessions == 0  # QUIT ended the session
    await channel.start()
    try:
        assert (await channel.send([mail(2)]))[0].status is Status.SENT
    finally:
        await channel.close()
    assert peer.connections == 2
