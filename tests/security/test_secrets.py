"""Secrets never leave: not in logs, not in error bodies or CLI errors, not in the audit log,
not in ``warnpub config show``; and every secret is compared in constant time.

Each test drives a real flow (the aiohttp application on loopback, the command line) while
every log record is captured and formatted as the service formats it, then reads the whole
audit table, and looks for the secret values anywhere.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from tests.factories import PASSWORD, seed
from warnpub.api.app import create_app
from warnpub.auth import secrets as auth_secrets
from warnpub.auth.secrets import check_password, hash_password, issue_api_key, key_matches
from warnpub.callbacks import signing
from warnpub.cli.main import main
from warnpub.config import load_settings
from warnpub.console import security
from warnpub.lastkm import links
from warnpub.logs import JsonFormatter, MaskingTextFormatter, mask, quiet_libraries
from warnpub.storage.engine import Database
from warnpub.storage.tables import AgencyKey, AuditEntry, OperatorToken

CALLBACK_SECRET = "cb-secret-7f3a9d2e51c84b06"
AUTH_VALUE = "Bearer gw-auth-0d9c8b7a6f5e4d3c"


class Captured(logging.Handler):
    """Every record, formatted both ways the service can format it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.json, self.text = JsonFormatter(), MaskingTextFormatter("%(name)s: %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))
        self.lines.append(self.text.format(record))


@pytest.fixture
def logs():
    handler = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # As warnpub.logs.setup leaves them, whatever the level (a test run may have changed them).
    quiet_libraries()
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


async def audit_text(db: Database) -> str:
    async with db.reader() as s:
        rows = (await s.execute(select(AuditEntry))).scalars().all()
    return "\n".join(
        json.dumps([e.actor, e.action, e.subject, e.details], ensure_ascii=False) for e in rows
    )


def assert_nowhere(secret: str, *places: str) -> None:
    assert secret
    for place in places:
        assert secret not in place, f"secret {secret[:6]}… leaked: …{place[:300]}…"


@pytest.fixture
async def app_client(settings, db):
    """The application with an SMS gateway whose callbacks are signed."""
    configured = settings.model_copy(
        update={
            "channels": {
                "sms": [
                    {
                        "name": "gw",
                        "adapter": "http_json",
                        "url": "http://127.0.0.1:9/send",
                        "auth_header": "Authorization",
                        "auth_value": AUTH_VALUE,
                        "callback_secret": CALLBACK_SECRET,
                    }
                ]
            }
        }
    )
    app = create_app(configured, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.mark.postgres
async def test_bad_keys_and_tokens_leak_nowhere(app_client, db, settings, logs):
    world = await seed(db, settings)
    key = world.keys["QX"]
    kind, prefix, rest = key.split("_", 2)  # the secret part may hold "_" itself
    near_miss = f"{kind}_{prefix}_{rest[:-4]}AAAA"  # the right prefix, a wrong secret
    fake_token = "wpt_" + "Zq9" * 14
    bodies = []
    for credential in (near_miss, fake_token, "wpk_nothex_abc", "not-a-key-at-all-1234"):
        r = await app_client.get(
            "/api/v1/warnings", headers={"Authorization": f"Bearer {credential}"}
        )
        assert r.status == 401
        bodies.append(await r.text())
    audit = await audit_text(db)
    everything = "\n".join([*bodies, *logs.lines, audit])
    for secret in (key, near_miss, fake_token, rest, world.tokens["duty1"]):
        assert_nowhere(secret, everything)
    # The stored key is a hash: the database holds no key in clear.
    async with db.reader() as s:
        stored = [k.key_hash for k in (await s.execute(select(AgencyKey))).scalars()]
    assert auth_secrets.sha256_hex(key) in stored and key not in stored


@pytest.mark.postgres
async def test_failed_and_successful_logins_leak_no_password_or_token(
    app_client, db, settings, logs
):
    await seed(db, settings)
    wrong = "Tr0ub4dor&3-not-it"
    r = await app_client.post("/api/v1/auth/login", json={"username": "duty1", "password": wrong})
    assert r.status == 401
    refused = await r.text()
    r = await app_client.post(
        "/api/v1/auth/login", json={"username": "duty1", "password": PASSWORD}
    )
    assert r.status == 200
    token = (await r.json())["token"]
    # Someone pastes a token (or a key) into the username field: the audit entry of the
    # failed attempt names it by a digest only (no operator has that name).
    r = await app_client.post("/api/v1/auth/login", json={"username": token, "password": wrong})
    assert r.status == 401
    audit = await audit_text(db)
    assert "login.failed" in audit and "operator:unknown-" in audit
    everything = "\n".join([refused, *logs.lines, audit])
    for secret in (wrong, PASSWORD, token, token.removeprefix("wpt_")):
        assert_nowhere(secret, everything)
    async with db.reader() as s:
        hashes = [t.token_hash for t in (await s.execute(select(OperatorToken))).scalars()]
    assert auth_secrets.sha256_hex(token) in hashes and token not in hashes


@pytest.mark.postgres
async def test_a_password_typed_as_the_username_is_never_stored_yet_still_locks_out(
    app_client, db, settings, logs
):
    """People type their password into the username field: a username that is no operator's
    is audited as a digest, and its failures still count towards the lock-out."""
    await seed(db, settings)
    typed = "My-Own-Password-1984"
    limit = settings.console.max_failed_logins
    for _ in range(limit):
        r = await app_client.post("/api/v1/auth/login", json={"username": typed, "password": "x"})
        assert r.status == 401
    r = await app_client.post("/api/v1/auth/login", json={"username": typed, "password": "x"})
    assert r.status == 429, await r.text()
    assert_nowhere(typed, await r.text())
    audit = await audit_text(db)
    assert audit.count("login.failed") >= limit and "login.locked" in audit
    assert "unknown-" in audit
    assert_nowhere(typed, "\n".join([*logs.lines, audit]))
    # A real operator's name is still written as it is, so an admin can read who was refused.
    r = await app_client.post("/api/v1/auth/login", json={"username": "duty1", "password": "x"})
    assert r.status == 401
    assert "operator:duty1" in await audit_text(db)


@pytest.mark.postgres
async def test_callback_with_a_bad_signature_leaks_no_secret(app_client, db, logs):
    body = json.dumps({"receipts": [{"id": "x", "status": "delivered"}]}).encode()
    good = signing.sign(CALLBACK_SECRET, body)
    forged = signing.sign("guessed-secret-000000", body)
    for header in (forged, good.replace("v1=", "v1=0")[:-1], "t=1,v1=" + "0" * 64, None):
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers[signing.HEADER] = header
        r = await app_client.post("/api/v1/callbacks/sms/gw/receipts", data=body, headers=headers)
        assert r.status == 401, await r.text()
        text = await r.text()
        assert_nowhere(CALLBACK_SECRET, text)
        assert_nowhere(good.split("v1=")[1], text)  # the expected signature is never told
        assert_nowhere(AUTH_VALUE, text)
    r = await app_client.post(
        "/api/v1/callbacks/sms/gw/receipts",
        data=body,
        headers={"Content-Type": "application/json", signing.HEADER: good},
    )
    assert r.status == 200
    everything = "\n".join([*logs.lines, await audit_text(db)])
    for secret in (CALLBACK_SECRET, AUTH_VALUE.split()[1], good.split("v1=")[1]):
        assert_nowhere(secret, everything)


def _cli_env(settings, monkeypatch) -> None:
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    if settings.database.schema_name:
        monkeypatch.setenv("WARNPUB_DATABASE_SCHEMA_NAME", settings.database.schema_name)


def test_config_show_masks_every_secret(tmp_path: Path, monkeypatch, capsys):
    secrets = {
        "server": "srv-secret-key-91b2c3",
        "sms_auth": "sms-auth-value-4d5e6f",
        "sms_cb": "sms-callback-secret-7a8b",
        "sms_url_pw": "gwpass-19c",
        "sms_query": "querytoken-55aa",
        "voice_cb": "voice-callback-secret-0c1d",
        "voice_auth": "voice-auth-2e3f",
        "webhook": "webhook-secret-4a5b6c7d8e9f",
        "mqtt": "mqtt-password-3344",
        "smtp": "smtp-password-5566",
        "db": "db-password-7788",
        "signing": "/etc/warnpub/private-key.pem",
    }
    site = tmp_path / "site.toml"
    site.write_text(
        f"""
[security]
secret_key = "{secrets["server"]}"

[cap]
signing_key = "{secrets["signing"]}"
signing_cert = "/etc/warnpub/cert.pem"

[[channels.sms]]
name = "gw"
adapter = "http_json"
url = "https://user:{secrets["sms_url_pw"]}@sms.example/send?token={secrets["sms_query"]}"
auth_header = "X-Api-Key"
auth_value = "{secrets["sms_auth"]}"
callback_secret = "{secrets["sms_cb"]}"

[[channels.voice]]
name = "tts"
adapter = "http_voice"
url = "https://voice.example/call"
callback_url = "https://warnpub.example/api/v1/callbacks/voice/tts/outcomes"
callback_secret = "{secrets["voice_cb"]}"
auth_header = "Authorization"
auth_value = "Basic {secrets["voice_auth"]}"

[[channels.webhook]]
name = "tv"
adapter = "webhook"
url = "https://tv.example/hook"
secret = "{secrets["webhook"]}"

[[channels.speaker]]
name = "mqtt"
adapter = "mqtt"
username = "warnpub"
password = "{secrets["mqtt"]}"

[[channels.email]]
name = "smtp"
adapter = "smtp"
username = "warnpub"
password = "{secrets["smtp"]}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("WARNPUB_CONFIG", str(site))
    monkeypatch.setenv(
        "WARNPUB_DATABASE_URL", f"postgresql+asyncpg://warnpub:{secrets['db']}@db.example/warnpub"
    )
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "[security]" in out and "[channels]" in out and "***" in out
    for value in secrets.values():
        assert_nowhere(value, out)
    # Only the values are hidden: the names of the instances and keys are still shown.
    assert '"tv"' in out and "callback_secret" in out and "user:***@sms.example" in out
    # Every secret field the settings and channel adapters know is masked by name as well.
    settings = load_settings(site, environ={})
    from warnpub.config import masked

    shown = json.dumps(masked(settings.model_dump(mode="json")))
    for value in (secrets["server"], secrets["sms_auth"], secrets["webhook"], secrets["smtp"]):
        assert_nowhere(value, shown)


def test_cli_agency_add_shows_the_key_once_and_logs_and_audits_none(
    settings, monkeypatch, capsys, caplog
):
    _cli_env(settings, monkeypatch)
    caplog.set_level(logging.DEBUG)

    async def areas() -> None:
        from tests.factories import liyang_csv
        from warnpub.audiences.areas import load_areas

        db = Database(settings.database.url)
        try:
            async with db.session() as s:
                await load_areas(s, liyang_csv())
        finally:
            await db.dispose()

    asyncio.run(areas())
    args = ["agency", "add", "--code", "QX", "--name", "溧阳市气象局", "--sender", "qx@320481",
            "--hazards", "rainstorm", "--areas", "320481000000"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr()
    key = out.out.split("store it now): ")[1].split()[0]
    assert key.startswith("wpk_") and out.out.count(key) == 1
    assert main(["agency", "rotate", "QX"]) == 0
    rotated = capsys.readouterr().out.split("(shown once): ")[1].split()[0]
    assert main(["operator", "add", "duty9"]) == 0
    printed = capsys.readouterr().out
    password = printed.split("password (shown once): ")[1].split()[0]
    assert main(["agency", "list"]) == 0
    listed = capsys.readouterr()
    assert "live keys" in listed.out
    # A mistyped command never echoes a secret it was given.
    assert main(["agency", "revoke", rotated]) == 2
    refused = capsys.readouterr()
    assert "wpk_" in refused.err

    async def audit() -> str:
        db = Database(settings.database.url)
        try:
            return await audit_text(db)
        finally:
            await db.dispose()

    audit_log = asyncio.run(audit())
    assert "agency.key_issued" in audit_log and "operator.added" in audit_log
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for secret in (key, rotated, password):
        assert_nowhere(secret, audit_log, logged, listed.out, listed.err, refused.out, refused.err)


class Spy:
    """hmac.compare_digest, counting its calls and the argument types."""

    def __init__(self) -> None:
        self.real = hmac.compare_digest
        self.calls: list[tuple[type, type]] = []

    def __call__(self, a, b):
        self.calls.append((type(a), type(b)))
        return self.real(a, b)


def test_every_secret_comparison_goes_through_compare_digest(monkeypatch):
    spy = Spy()
    monkeypatch.setattr(hmac, "compare_digest", spy)
    settings = load_settings(environ={})
    issued = issue_api_key()
    link_key = "ab" * 32
    bound = security.new_pre_session()
    body = b'{"x":1}'
    cases = [
        (lambda: key_matches(issued.key, issued.key_hash), True),
        (lambda: key_matches(issued.key + "x", issued.key_hash), False),
        (lambda: check_password("pw-1", hash_password("pw-1")), True),
        (lambda: check_password("pw-2", hash_password("pw-1")), False),
        (lambda: links.verify(link_key, 42, links.signature(link_key, 42)), True),
        (lambda: links.verify(link_key, 42, "A" * links.SIG_CHARS), False),
        (lambda: security.csrf_ok(settings, bound, security.csrf_token(settings, bound)), True),
        (lambda: security.csrf_ok(settings, bound, "0" * 64), False),
        (lambda: signing.verify("s3cret", signing.sign("s3cret", body), body) > 0, True),
    ]
    for check, expected in cases:
        before = len(spy.calls)
        assert check() is expected
        assert len(spy.calls) > before, "a secret was compared without hmac.compare_digest"
    with pytest.raises(Exception, match="does not match"):
        signing.verify("s3cret", signing.sign("other", body), body)
    # compare_digest refuses str with non-ASCII characters (a TypeError, a 500): the link and
    # CSRF checks compare bytes, so a crafted link or form field is simply wrong.
    assert links.verify(link_key, 42, "é" * links.SIG_CHARS) is False
    assert security.csrf_ok(settings, bound, "ü" * 64) is False


def test_log_masking_of_every_kind_of_secret():
    key = issue_api_key().key
    samples = {
        key: "wpk_" + key.split("_")[1] + "_***",
        "wpt_" + "x" * 43: "wpt_***",
        "wpb_" + "y" * 43: "wpb_***",
        "Authorization: Bearer abcdef123456": "Authorization: Bearer ***",
        "postgresql+asyncpg://u:pw-123@h/db": "postgresql+asyncpg://u:***@h/db",
        "https://gw.example/send?api_key=k-123&to=1": "https://gw.example/send?api_key=***&to=1",
        'password = "hunter22"': 'password = "***"',
        "{'callback_secret': 'abc123def'}": "{'callback_secret': '***'}",
        "X-Warnpub-Signature: t=1,v1=" + "ab" * 32: "X-Warnpub-Signature: t=1,v1=***",
        "GET /a/2k.AbCdEfGhIjKl failed": "GET /a/2k.*** failed",
        "[parameters: ('张三', 'scrypt$16384$8$1$c2FsdA==$ZGlnZXN0')]\n(Background on this": (
            "[parameters: hidden]\n(Background on this"
        ),
    }
    for raw, expected in samples.items():
        assert mask(raw) == expected, raw
    # Not secrets: left alone.
    for plain in ("token_ttl_minutes = 720", "the API key is not valid", "wpk_…", "320481101200"):
        assert mask(plain) == plain
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "login %s", (key,), None)
    record.name_of = "x"
    record.contact_name = "张三丰"
    line = JsonFormatter().format(record)
    assert key not in line and "张三丰" not in line and "张**" in line
