"""The authorization matrix: every HTTP route of the application × every kind of caller, with
the exact answer each one gets (docs/security.md).

The routes are read from the application's router, and the test fails when a route exists that
the table below does not cover, so a new route cannot slip in without its row.

Callers (columns):

=========  =====================================================================================
ANON       nothing at all
A          agency A (QX, weather, the whole city): owns the warnings the matrix acts on
B          agency B (SL, floods, 社渚镇 only): outside A's hazards and areas; owns one warning
REV        a revoked API key of agency A
OP/SUP/ADM operator, supervisor, admin with a bearer token (``Authorization: Bearer wpt_…``)
BRD        the token of the paper board in 社渚村 (where A's live warning is)
BRDX       the token of a digital board in 戴埠镇 (another town)
COP/CSUP/  a console session cookie (``wp_session``) of an operator, supervisor, admin; console
CADM       forms carry the right ``csrf``
CNOCSRF    the admin's console cookie, forms with a wrong ``csrf``
OUT        an operator who signed out: the revoked token as bearer *and* as cookie
OFF        an operator whose account was disabled: a live token as bearer *and* as cookie
GWOK       a gateway callback signed with the gateway's secret, now
GWBAD      the same callback signed with another secret
GWOLD      a captured, correctly signed callback replayed ten minutes later
=========  =====================================================================================

Answers: an HTTP status, or ``login`` for the console's redirect to its sign-in page (303 to
``/console/login?next=…``). A 303 that is not ``login`` is a console form that succeeded.

Decisions the table encodes:

* no credential, a bad/revoked/expired one, or a credential of the wrong kind for the route
  (an agency key or board token on an operator route, a console cookie on the API, an operator
  token as a board token) → 401; the API never reads cookies, so it cannot be driven by CSRF;
* a valid credential whose role may not do this → 403;
* another agency's warning → 404, exactly as for a warning that does not exist, so an agency
  cannot learn which ids exist;
* console pages answer a missing/invalid session with ``login`` and a role that may not with 403;
  a console form with a wrong ``csrf`` → 403;
* public routes (feeds, full text, CAP documents, audio, health, metrics, OpenAPI, sign-in,
  the signed acknowledgement link) answer everyone alike: their credential, if any, is in the URL
  or the body.

Every refusal (4xx, ``login``) is checked to have changed nothing; every body a caller that is
not staff receives is checked for people's phone numbers and names (the acknowledgement page may
greet the link's own holder by name), and every API body an agency receives for the other
agency's warning ids. Sign-in is locked after ``[console] max_failed_logins`` failures on the API
as on the console (429).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from tests.boards.conftest import ELSEWHERE, PAPER, add_boards
from tests.factories import (
    TOWN_DAIBU,
    TOWN_SHEZHU,
    VILLAGE_SHEZHU,
    World,
    alert_json,
    seed,
)
from warnpub.api.app import TABLES, create_app
from warnpub.audiences.tables import Person
from warnpub.auth import agencies, operators
from warnpub.boards.tables import BoardCredential
from warnpub.callbacks.signing import HEADER as SIGNATURE_HEADER
from warnpub.callbacks.signing import sign
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.console.security import PRE_SESSION_COOKIE, SESSION_COOKIE, csrf_token
from warnpub.lastkm import links
from warnpub.lastkm.tables import Acknowledgement, AckPlan, Notice
from warnpub.storage.engine import Database
from warnpub.storage.tables import (
    Agency,
    AgencyKey,
    AuditEntry,
    Delivery,
    InboundMessage,
    Operator,
    OperatorToken,
    ReviewDecision,
    WarningRecord,
)

pytestmark = pytest.mark.postgres

SECRET = "matrix-callback-secret"
SMS_GW = "gw"
VOICE_GW = "calls"
AUDIO_NAME = "ab" * 32
# People of 社渚村: their names and numbers must reach no one whose role does not need them.
CONTACT = ("联络员王五", "+8613911112222")
RESIDENT = ("居民赵六", "+8613933334444")
PHONE_DIGITS = ("13911112222", "13933334444")

CALLERS = (
    "ANON", "A", "B", "REV", "OP", "SUP", "ADM", "BRD", "BRDX",
    "COP", "CSUP", "CADM", "CNOCSRF", "OUT", "OFF", "GWOK", "GWBAD", "GWOLD",
)  # fmt: skip
STAFF = {"OP", "SUP", "ADM", "COP", "CSUP", "CADM", "CNOCSRF"}
AGENCY = {"A", "B"}
LOGIN = "login"
STATES = ("pending", "approved", "dispatching", "completed", "rejected", "cancelled", "expired")
DELIVERY_STATES = (
    "planned",
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "expired",
    "cancelled",
)


def E(default: int | str, **answers: int | str) -> dict[str, int | str]:
    """A row of the matrix: ``default`` for every caller not named."""
    unknown = set(answers) - set(CALLERS)
    assert not unknown, f"no such callers: {unknown}"
    return {c: answers.get(c, default) for c in CALLERS}


def API(**answers: int | str) -> dict[str, int | str]:
    """A row for a route that takes an API key or operator token: 401 without a valid one; a
    disabled operator's token is known but may do nothing (403)."""
    return E(401, **({"OFF": 403} | answers))


STAFF_OK = dict(OP=200, SUP=200, ADM=200)
# An operator route of the API: agencies are known but may not (403), everyone else is not known.
API_STAFF = API(A=403, B=403, **STAFF_OK)
API_ANY = API(A=200, B=200, **STAFF_OK)
CONSOLE = E(LOGIN, COP=200, CSUP=200, CADM=200, CNOCSRF=200)
CONSOLE_FORM = E(LOGIN, COP=303, CSUP=303, CADM=303, CNOCSRF=403)
CONSOLE_ADMIN = E(LOGIN, COP=403, CSUP=403, CADM=200, CNOCSRF=200)
CONSOLE_ADMIN_FORM = E(LOGIN, COP=403, CSUP=403, CADM=200, CNOCSRF=403)
PUBLIC = E(200)
SIGNED = E(401, GWOK=200)
BOARD = E(401, BRD=200)


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route as the router registers it
    url: str  # formatted with the Fixture's fields: {live}, {pending}, {fresh}, …
    expect: dict[str, int | str]
    what: str = ""
    json: Callable[[Fixture], Any] | None = None
    form: Callable[[Fixture], dict[str, str]] | None = None
    raw: Callable[[Fixture], tuple[bytes, str]] | None = None
    multipart: bool = False
    signed: bool = False  # a gateway callback: the GW* callers sign its body
    fresh_session: bool = False  # console callers use a new session (sign-out revokes it)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method} {self.url}" + (f" ({self.what})" if self.what else "")


def _receipts(_: Fixture) -> tuple[bytes, str]:
    return (
        b'{"receipts":[{"id":"m-1","reference":"999999","status":"delivered"}]}',
        "application/json",
    )


def _inbound(_: Fixture) -> tuple[bytes, str]:
    return b'{"messages":[{"from":"+8613700000099","text":"1"}]}', "application/json"


def _voice(_: Fixture) -> tuple[bytes, str]:
    return (
        b'{"calls":[{"id":"c-1","reference":"wp-999999","status":"answered"}]}',
        "application/json",
    )


def _roster(_: Fixture) -> tuple[bytes, str]:
    header = "编号,姓名,手机号码,所属镇/街道,所属村/社区,身份"
    return (header + "\nM1,测试,13800000077,社渚镇,社渚村,居民\n").encode(), "text/csv"


def _a_alert(_: Fixture) -> dict[str, Any]:
    return alert_json(code=TOWN_DAIBU, sender="qx@320481")


def _b_alert(_: Fixture) -> dict[str, Any]:
    return alert_json(event="洪水", code=TOWN_SHEZHU, sender="sl@320481")


def _b_cancels_a(f: Fixture) -> dict[str, Any]:
    return alert_json(
        event="洪水", code=TOWN_SHEZHU, sender="sl@320481", msg_type="Cancel",
        references=[f.live_ref],
    )  # fmt: skip


# fmt: off
CASES: tuple[Case, ...] = (
    # --- intake and warning status (agency or operator) -------------------------------------
    Case("POST", "/api/v1/warnings", "/api/v1/warnings", API(A=202, B=403, OP=202, SUP=202, ADM=202),
         "A's warning; staff submit on A's behalf", json=_a_alert),
    Case("POST", "/api/v1/warnings", "/api/v1/warnings", API(A=403, B=202, OP=202, SUP=202, ADM=202),
         "B's warning in B's scope", json=_b_alert),
    Case("POST", "/api/v1/warnings", "/api/v1/warnings", API(A=403, B=422, OP=422, SUP=422, ADM=422),
         "B cancels A's warning", json=_b_cancels_a),
    Case("POST", "/api/v1/warnings", "/api/v1/warnings", API(A=202, B=403, OP=200, SUP=200, ADM=200),
         "A's Idempotency-Key and body again: only A gets A's answer replayed", json=lambda f: f.idem_doc,
         headers={"Idempotency-Key": "matrix-key"}),
    Case("GET", "/api/v1/warnings", "/api/v1/warnings", API_ANY, "each agency its own only"),
    Case("GET", "/api/v1/warnings/{warning_id}", "/api/v1/warnings/{live}",
         API(A=200, B=404, **STAFF_OK), "A's warning"),
    Case("GET", "/api/v1/warnings/{warning_id}", "/api/v1/warnings/{b_own}",
         API(A=404, B=200, **STAFF_OK), "B's warning"),
    Case("GET", "/api/v1/warnings/{warning_id}", "/api/v1/warnings/NO-SUCH-ID",
         API(A=404, B=404, OP=404, SUP=404, ADM=404), "no such warning: the same 404"),
    # --- review (staff) ----------------------------------------------------------------------
    Case("GET", "/api/v1/review/queue", "/api/v1/review/queue", API_STAFF),
    Case("POST", "/api/v1/warnings/{warning_id}/approve", "/api/v1/warnings/{fresh}/approve", API_STAFF),
    Case("POST", "/api/v1/warnings/{warning_id}/reject", "/api/v1/warnings/{fresh}/reject", API_STAFF,
         json=lambda f: {"reason": "matrix"}),
    Case("POST", "/api/v1/warnings/{warning_id}/cancel", "/api/v1/warnings/{fresh}/cancel", API_STAFF,
         json=lambda f: {"reason": "matrix"}),
    Case("GET", "/api/v1/escalations", "/api/v1/escalations", API_STAFF),
    Case("GET", "/api/v1/warnings/{warning_id}/plan", "/api/v1/warnings/{live}/plan", API_STAFF),
    Case("GET", "/api/v1/warnings/{warning_id}/report", "/api/v1/warnings/{live}/report?unreached=true",
         API_STAFF),
    Case("GET", "/api/v1/warnings/{warning_id}/visits", "/api/v1/warnings/{live}/visits", API_STAFF),
    Case("GET", "/api/v1/audit", "/api/v1/audit", API(A=403, B=403, OP=403, SUP=200, ADM=200)),
    Case("POST", "/api/v1/audience/import", "/api/v1/audience/import?dry_run=1", API_STAFF,
         raw=_roster),
    Case("POST", "/api/v1/auth/login", "/api/v1/auth/login", PUBLIC, "duty2's password",
         json=lambda f: {"username": "duty2", "password": f.password}),
    Case("POST", "/api/v1/auth/login", "/api/v1/auth/login", E(429), "locked by failed sign-ins",
         json=lambda f: {"username": "locked", "password": f.password}),
    # --- gateway callbacks (HMAC) ------------------------------------------------------------
    Case("POST", "/api/v1/callbacks/sms/{gateway}/receipts", f"/api/v1/callbacks/sms/{SMS_GW}/receipts",
         SIGNED, raw=_receipts, signed=True),
    Case("POST", "/api/v1/callbacks/sms/{gateway}/inbound", f"/api/v1/callbacks/sms/{SMS_GW}/inbound",
         SIGNED, raw=_inbound, signed=True),
    Case("POST", "/api/v1/callbacks/voice/{gateway}/outcomes", f"/api/v1/callbacks/voice/{VOICE_GW}/outcomes",
         SIGNED, raw=_voice, signed=True),
    # --- public ------------------------------------------------------------------------------
    Case("GET", "/w/{warning_id}", "/w/{live}", PUBLIC, "released"),
    Case("GET", "/w/{warning_id}", "/w/{pending}", E(404), "not released"),
    Case("GET", "/warnings/{warning_id}.cap.xml", "/warnings/{live}.cap.xml", PUBLIC, "released"),
    Case("GET", "/warnings/{warning_id}.cap.xml", "/warnings/{pending}.cap.xml", E(404), "not released"),
    Case("GET", "/feeds/cap.atom", "/feeds/cap.atom", PUBLIC),
    Case("GET", "/audio/{file}", f"/audio/{AUDIO_NAME}.wav", PUBLIC),
    Case("GET", "/audio/{file}", "/audio/..%2F..%2Fpasswd.wav", E(404), "not one of our names"),
    Case("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", PUBLIC),
    Case("GET", "/healthz", "/healthz", PUBLIC),
    Case("GET", "/metrics", "/metrics", PUBLIC),
    Case("GET", "/", "/", PUBLIC),
    # --- the signed acknowledgement link: the link is the credential -------------------------
    Case("GET", "/a/{token}", "/a/{link}", PUBLIC),
    Case("POST", "/a/{token}", "/a/{link}", PUBLIC, form=lambda f: {}),
    Case("GET", "/a/{token}", "/a/{forged_link}", E(404), "another delivery's id, same signature"),
    Case("POST", "/a/{token}", "/a/{forged_link}", E(404), "forged", form=lambda f: {}),
    # --- boards ------------------------------------------------------------------------------
    Case("GET", "/boards/{board_id}", f"/boards/{PAPER}", BOARD),
    Case("GET", "/boards/{board_id}/poll", f"/boards/{PAPER}/poll", BOARD),
    Case("GET", "/boards/{board_id}/events", f"/boards/{PAPER}/events", BOARD),
    Case("POST", "/boards/{board_id}/posted", f"/boards/{PAPER}/posted", BOARD,
         json=lambda f: {"warning_id": f.live}),
    Case("GET", "/boards/{board_id}", f"/boards/{ELSEWHERE}", E(401, BRDX=200), "another board's page"),
    Case("GET", "/notices/{warning_id}/{area_code}", f"/notices/{{live}}/{VILLAGE_SHEZHU}",
         API(BRD=200, BRDX=403, **STAFF_OK)),
    Case("GET", "/notices/{warning_id}/{area_code}", "/notices/{pending}/320481103206",
         API(BRD=403, BRDX=409, OP=409, SUP=409, ADM=409), "not released: nothing to post"),
    # --- the console (cookie session + CSRF) -------------------------------------------------
    Case("GET", "/console/login", "/console/login",
         E(200, COP=303, CSUP=303, CADM=303, CNOCSRF=303), "signed in: on to the console"),
    Case("POST", "/console/login", "/console/login", E(303), "duty2 signs in",
         form=lambda f: {"username": "duty2", "password": f.password}),
    Case("POST", "/console/login", "/console/login", E(429), "locked by failed sign-ins",
         form=lambda f: {"username": "locked", "password": f.password}),
    Case("POST", "/console/logout", "/console/logout", CONSOLE_FORM, form=lambda f: {}, fresh_session=True),
    Case("GET", "/console/", "/console/", CONSOLE),
    Case("GET", "/console/escalations", "/console/escalations", CONSOLE),
    Case("GET", "/console/warnings/{warning_id}", "/console/warnings/{live}", CONSOLE),
    Case("GET", "/console/warnings/{warning_id}/events", "/console/warnings/{live}/events", CONSOLE),
    Case("GET", "/console/warnings/{warning_id}/report", "/console/warnings/{live}/report", CONSOLE),
    Case("POST", "/console/warnings/{warning_id}/approve", "/console/warnings/{fresh}/approve",
         CONSOLE_FORM, form=lambda f: {}),
    Case("POST", "/console/warnings/{warning_id}/reject", "/console/warnings/{fresh}/reject",
         CONSOLE_FORM, form=lambda f: {"reason": "matrix"}),
    Case("POST", "/console/warnings/{warning_id}/cancel", "/console/warnings/{fresh}/cancel",
         CONSOLE_FORM, form=lambda f: {"reason": "matrix"}),
    Case("POST", "/console/warnings/{warning_id}/update", "/console/warnings/{live}/update",
         CONSOLE_FORM, form=lambda f: {"level": "yellow", "expires": ""}),
    Case("GET", "/console/audience/import", "/console/audience/import", CONSOLE),
    Case("POST", "/console/audience/import", "/console/audience/import",
         E(LOGIN, COP=200, CSUP=200, CADM=200, CNOCSRF=403), "dry run", multipart=True),
    Case("GET", "/console/people", "/console/people", CONSOLE),
    Case("GET", "/console/areas/{code}", f"/console/areas/{TOWN_SHEZHU}", CONSOLE),
    Case("GET", "/console/drills", "/console/drills", CONSOLE),
    Case("GET", "/console/admin", "/console/admin", CONSOLE_ADMIN),
    Case("POST", "/console/admin/agencies", "/console/admin/agencies", CONSOLE_ADMIN_FORM,
         form=lambda f: {"code": "ZZ", "name": "测试局", "sender": "zz@320481",
                         "hazards": "flood", "areas": TOWN_SHEZHU}),
    Case("POST", "/console/admin/agencies/{code}/revoke", "/console/admin/agencies/DUMMY/revoke",
         CONSOLE_ADMIN_FORM, form=lambda f: {}),
    Case("POST", "/console/admin/operators", "/console/admin/operators", CONSOLE_ADMIN_FORM,
         form=lambda f: {"username": "newop", "display_name": "新", "role": "operator",
                         "password": f.password}),
    Case("GET", "/console/audit", "/console/audit", E(LOGIN, COP=403, CSUP=200, CADM=200, CNOCSRF=200)),
)
# fmt: on


@dataclass
class Fixture:
    client: TestClient
    db: Database
    settings: Settings
    world: World
    password: str
    live: str = ""
    live_ref: str = ""
    pending: str = ""
    b_own: str = ""
    link: str = ""
    forged_link: str = ""
    fresh: str = ""
    session: str = ""
    idem_doc: dict[str, Any] = field(default_factory=dict)
    callers: dict[str, dict[str, str]] = field(default_factory=dict)  # kind → value
    foreign: dict[str, set[str]] = field(default_factory=dict)  # agency → ids it must not see

    def url(self, case: Case) -> str:
        return case.url.format(**{k: v for k, v in vars(self).items() if isinstance(v, str)})


async def _token(db: Database, username: str) -> str:
    async with db.session() as s:
        op = (await s.execute(select(Operator).where(Operator.username == username))).scalar_one()
        return await operators.issue_operator_token(s, op, 60, "test")


async def _submit(f: Fixture, doc: dict[str, Any], agency: str = "QX") -> str:
    r = await f.client.post("/api/v1/warnings", json=doc, headers=f.world.agency(agency))
    assert r.status == 202, await r.text()
    return (await r.json())["id"]


async def _build(settings: Settings, db: Database, client: TestClient, tmp: Any) -> Fixture:
    world = await seed(db, settings)
    f = Fixture(client, db, settings, world, "correct horse battery")
    _, board_tokens = await add_boards(db)
    async with db.session() as s:
        contact = Person(external_id="m-contact", name=CONTACT[0], area_code=VILLAGE_SHEZHU,
                         role="village_contact", phone=CONTACT[1])  # fmt: skip
        s.add(contact)
        await s.flush()
        s.add(Person(external_id="m-resident", name=RESIDENT[0], area_code=VILLAGE_SHEZHU,
                     phone=RESIDENT[1], relay_contact_id=contact.id))  # fmt: skip
        revoked = await agencies.rotate_key(s, "QX", actor="test", revoke_old=False)
        await agencies.revoke_keys(s, "QX", actor="test", prefix=revoked.prefix)
        await agencies.add_agency(s, settings, code="DUMMY", name="撤销测试", sender="dummy@320481",
                                  hazards=["flood"], areas=[TOWN_SHEZHU], actor="test")  # fmt: skip
    # A's live warning (yellow, in 社渚村: the boards show it), approved by duty1.
    doc = alert_json(code=VILLAGE_SHEZHU)
    f.live = await _submit(f, doc)
    r = await client.post(f"/api/v1/warnings/{f.live}/approve", headers=world.operator("duty1"))
    assert r.status == 200 and (await r.json())["state"] == "approved", await r.text()
    f.live_ref = f"qx@320481,{doc['identifier']},{doc['sent']}"
    f.pending = await _submit(f, alert_json(code=TOWN_DAIBU))
    f.b_own = await _submit(f, alert_json(event="洪水", code=TOWN_SHEZHU), agency="SL")
    f.idem_doc = alert_json(code=TOWN_DAIBU, sender="qx@320481")
    r = await client.post("/api/v1/warnings", json=f.idem_doc,
                          headers={**world.agency("QX"), "Idempotency-Key": "matrix-key"})  # fmt: skip
    assert r.status == 202, await r.text()
    idem = (await r.json())["id"]
    f.foreign = {"A": {f.b_own}, "B": {f.live, f.pending, idem}}
    # An operator whose password was guessed at until the account locked (over the API).
    async with db.session() as s:
        await operators.add_operator(s, username="locked", display_name="locked", role="operator",
                                     password=f.password, actor="test")  # fmt: skip
        # The rows sign in ~40 times: store these passwords with a cheap scrypt cost (the cost
        # is part of the stored hash, and check_password uses it).
        for op in (await s.execute(select(Operator).where(Operator.username.in_(CHEAP)))).scalars():
            op.password_hash = cheap_hash(f.password)
    for _ in range(settings.console.max_failed_logins):
        r = await client.post(
            "/api/v1/auth/login", json={"username": "locked", "password": "guess"}
        )
        assert r.status == 401
    # The acknowledgement link of the village contact's message about the live warning.
    async with db.session() as s:
        plan = await s.get(AckPlan, f.live)
        assert plan is not None
        now = utcnow()
        row = Delivery(warning_id=f.live, target_kind="person", target_id=contact.id or 0,
                       channel="sms", route="default", area_code=VILLAGE_SHEZHU, state="sent",
                       next_attempt_at=now, gateway=SMS_GW, sent_at=now, ack_required=True)  # fmt: skip
        s.add(row)
        await s.flush()
        f.link = links.token(plan.link_key, row.id or 0)
        # A link that names another delivery with this one's signature.
        f.forged_link = f"{links.to_b36((row.id or 0) + 1)}.{f.link.split('.')[1]}"
    tokens = {u: await _token(db, u) for u in ("duty1", "chief", "root")}
    out = await _token(db, "duty2")
    async with db.session() as s:
        row = (
            (await s.execute(select(OperatorToken).order_by(OperatorToken.id.desc())))
            .scalars()
            .first()
        )
        row.revoked_at = utcnow()  # signed out
    async with db.session() as s:
        gone = await operators.add_operator(s, username="gone", display_name="gone",
                                            role="admin", password=f.password, actor="test")  # fmt: skip
        off = await operators.issue_operator_token(s, gone, 60, "test")
        gone.active = False  # left the centre: the token stops working at once
    (tmp / f"{AUDIO_NAME}.wav").write_bytes(b"RIFF\0\0\0\0WAVE")
    f.callers = {
        "A": {"bearer": world.keys["QX"]},
        "B": {"bearer": world.keys["SL"]},
        "REV": {"bearer": revoked.key},
        "OP": {"bearer": world.tokens["duty1"]},
        "SUP": {"bearer": world.tokens["chief"]},
        "ADM": {"bearer": world.tokens["root"]},
        "BRD": {"bearer": board_tokens[PAPER]},
        "BRDX": {"bearer": board_tokens[ELSEWHERE]},
        "COP": {"cookie": tokens["duty1"], "user": "duty1"},
        "CSUP": {"cookie": tokens["chief"], "user": "chief"},
        "CADM": {"cookie": tokens["root"], "user": "root"},
        "CNOCSRF": {"cookie": tokens["root"], "user": "root", "csrf": "0" * 64},
        "OUT": {"bearer": out, "cookie": out},
        "OFF": {"bearer": off, "cookie": off},
        "GWOK": {"sign": SECRET},
        "GWBAD": {"sign": "not-the-secret"},
        "GWOLD": {"sign": SECRET, "age": "600"},
    }
    return f


CHEAP = ("duty2", "locked")


def cheap_hash(password: str) -> str:
    n, r, p = 2**4, 8, 1
    salt = b"matrix-salt-0123"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def _count(column: Any, *where: Any) -> Any:
    return select(func.count(column)).where(*where).scalar_subquery()


# What a refused request must leave as it was: one statement, built once (it runs ~700 times).
FINGERPRINT = select(
    *(_count(WarningRecord.id, WarningRecord.state == state) for state in STATES),
    *(
        _count(c)
        for c in (ReviewDecision.id, Agency.id, Operator.id, Person.id, Acknowledgement.warning_id)
    ),
    _count(AgencyKey.id, AgencyKey.revoked_at.is_(None)),
    _count(OperatorToken.id, OperatorToken.revoked_at.is_(None)),
    # Sign-in attempts are audited by design (the lock-out counts them); nothing else.
    _count(AuditEntry.seq, AuditEntry.action.not_like("login%")),
    _count(BoardCredential.device_id, BoardCredential.last_seen_at.is_not(None)),
    select(func.max(BoardCredential.last_seen_at)).scalar_subquery(),
    *(_count(Delivery.id, Delivery.state == state) for state in DELIVERY_STATES),
)


async def _fingerprint(db: Database) -> tuple[Any, ...]:
    async with db.reader() as s:
        return tuple((await s.execute(FINGERPRINT)).one())


@dataclass
class Answer:
    status: int
    location: str
    body: str


async def _call(f: Fixture, case: Case, who: str) -> Answer:
    c = f.callers.get(who, {})
    headers: dict[str, str] = dict(case.headers)
    cookies: dict[str, str] = {}
    session = f.session if case.fresh_session and "user" in c else c.get("cookie")
    if "bearer" in c:
        headers["Authorization"] = f"Bearer {c['bearer']}"
    if session:
        cookies[SESSION_COOKIE] = session
    url = f.url(case)
    data: Any = None
    json_body = case.json(f) if case.json else None
    if case.raw is not None:
        data, kind = case.raw(f)
        headers["Content-Type"] = kind
        if case.signed and "sign" in c:
            now = time.time() - float(c.get("age", "0"))
            headers[SIGNATURE_HEADER] = sign(c["sign"], data, now)
    elif case.form is not None or case.multipart:
        fields = case.form(f) if case.form else {}
        if case.route == "/console/login":
            pre = "matrix-pre-session"
            cookies[PRE_SESSION_COOKIE] = pre
            fields["csrf"] = csrf_token(f.settings, pre, "login")
        elif session:
            fields["csrf"] = c.get("csrf") or csrf_token(f.settings, session)
        if case.multipart:
            form = aiohttp.FormData()
            for k, v in fields.items():
                form.add_field(k, v)
            roster, _ = _roster(f)
            form.add_field("action", "dry_run")
            form.add_field("roster", roster, filename="roster.csv", content_type="text/csv")
            data = form
        else:
            data = fields
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    f.client.session.cookie_jar.clear()
    async with f.client.request(
        case.method, url, headers=headers, data=data, json=json_body, allow_redirects=False
    ) as r:
        if r.content_type == "text/event-stream":
            body = await asyncio.wait_for(_first_event(r), 10)
        else:
            body = await r.text()
        return Answer(r.status, r.headers.get("Location", ""), body)


async def _first_event(r: aiohttp.ClientResponse) -> str:
    """The stream up to its first event with data (then the connection is dropped)."""
    seen = ""
    while "data:" not in seen:
        line = await r.content.readline()
        if not line:
            break
        seen += line.decode()
    return seen


def _answer(a: Answer) -> int | str:
    if a.status == 303 and a.location.startswith("/console/login?next="):
        return LOGIN
    return a.status


async def _prepare(f: Fixture, case: Case, who: str) -> bool:
    """Authorised review actions each get a pending warning of their own; refused ones all
    aim at the shared pending warning (which must stay as it is). Signing out revokes the
    session, so each console caller signs out of a session of its own."""
    changed = False
    if "{fresh}" in case.url:
        allowed = case.expect[who] in (200, 303)
        f.fresh = await _submit(f, alert_json(code=TOWN_DAIBU)) if allowed else f.pending
        changed = allowed
    if case.fresh_session and "user" in f.callers.get(who, {}):
        f.session = await _token(f.db, f.callers[who]["user"])
        changed = True
    return changed


def _route_key(method: str, path: str) -> tuple[str, str]:
    return method.upper(), path


def _matches(route: str, url: str) -> bool:
    path = url.split("?", 1)[0]
    pattern = "".join(
        "[^{}/]+" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", route)
    )
    return re.fullmatch(pattern, path) is not None


@pytest.fixture
async def matrix(settings: Settings, db: Database, tmp_path: Any) -> Any:
    settings.channels = {
        "sms": [{"name": SMS_GW, "adapter": "http_json", "url": "http://127.0.0.1:9/sms",
                 "callback_secret": SECRET}],
        "voice": [{"name": VOICE_GW, "adapter": "http_voice", "url": "http://127.0.0.1:9/call",
                   "callback_url": "http://127.0.0.1:9/cb", "callback_secret": SECRET}],
        "speaker": [{"name": "spk", "adapter": "mqtt_speaker", "audio_dir": str(tmp_path)}],
    }  # fmt: skip
    app = create_app(settings, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield app, await _build(settings, db, client, tmp_path)


async def test_every_route_and_caller_gets_exactly_its_answer(matrix: Any, backend: str) -> None:
    app, f = matrix
    # 1. The table covers every route the application serves, and only those.
    served = {_route_key(r.method, r.resource.canonical) for r in app.router.routes()}
    declared = {_route_key(r.method, r.path) for t in TABLES for r in t.routes}
    assert served == declared, f"routes outside the RouteTables: {served ^ declared}"
    covered = {_route_key(c.method, c.route) for c in CASES}
    assert not served - covered, f"routes the matrix does not cover: {sorted(served - covered)}"
    assert not covered - served, f"rows for routes that do not exist: {sorted(covered - served)}"
    f.fresh = f.pending
    for case in CASES:
        assert _matches(case.route, f.url(case)), f"{case.url} is not a URL of {case.route}"

    # 2. Every case × every caller.
    wrong: list[str] = []
    leaks: list[str] = []
    last: tuple[Any, ...] | None = None
    for case in CASES:
        for who in CALLERS:
            if await _prepare(f, case, who):
                last = None
            expected = case.expect[who]
            refused = expected == LOGIN or (isinstance(expected, int) and expected >= 400)
            if refused and last is None:
                last = await _fingerprint(f.db)
            before = last if refused else None
            got = await _call(f, case, who)
            answer = _answer(got)
            if answer != expected:
                wrong.append(
                    f"{case.name} as {who}: expected {expected}, got {answer} {got.body[:200]!r}"
                )
                last = None
                continue
            # The state after a refusal is the state before the next one, until something
            # is allowed to change it.
            last = await _fingerprint(f.db) if refused else None
            if before is not None and last != before:
                wrong.append(f"{case.name} as {who}: refused with {answer} but changed something")
            leaks += _leaks(f, case, who, got.body)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
    assert not leaks, "\n".join(leaks)

    # 3. Nothing the refused callers sent touched the shared pending warning.
    async with f.db.reader() as s:
        pending = await s.get(WarningRecord, f.pending)
        decided = await s.scalar(
            select(func.count(ReviewDecision.id)).where(ReviewDecision.warning_id == f.pending)
        )
    assert pending is not None and pending.state == "pending" and decided == 0


def _leaks(f: Fixture, case: Case, who: str, body: str) -> list[str]:
    found = []
    if who not in STAFF:
        for digits in PHONE_DIGITS:
            if digits in body:
                found.append(
                    f"{case.name} as {who}: a person's phone number {digits} in the answer"
                )
        if not case.route.startswith("/a/"):  # the link's holder is the contact: their own page
            for name in (CONTACT[0], RESIDENT[0]):
                if name in body:
                    found.append(f"{case.name} as {who}: a person's name {name} in the answer")
    if who in AGENCY and case.route.startswith("/api/v1/"):
        for other in f.foreign[who]:
            if other in body and other not in f.url(case):  # a 404 may name the id it was asked
                found.append(
                    f"{case.name} as {who}: the other agency's warning {other} in the answer"
                )
    return found


async def test_a_signed_callback_replayed_inside_the_window_changes_nothing(
    matrix: Any, backend: str
) -> None:
    """GWOLD above is a replay after the 300 s window (401). Inside the window the signature
    still verifies, so what stops a replay there is that receipts and replies are idempotent:
    the second copy is answered 200 and changes nothing."""
    _, f = matrix
    async with f.db.reader() as s:
        delivery = (
            await s.execute(
                select(Delivery).where(
                    Delivery.warning_id == f.live, Delivery.target_kind == "person"
                )
            )
        ).scalar_one()
        plan = await s.get(AckPlan, f.live)
    assert plan is not None

    async def twice(path: str, body: bytes) -> list[dict[str, Any]]:
        headers = {SIGNATURE_HEADER: sign(SECRET, body), "Content-Type": "application/json"}
        answers, states = [], []
        for _ in range(2):  # the very same request, header and all
            r = await f.client.post(path, data=body, headers=headers)
            assert r.status == 200, await r.text()
            answers.append(await r.json())
            states.append(await _fingerprint(f.db))
        assert states[0] == states[1], f"the replay of {path} changed something"
        return answers

    receipt = json.dumps(
        {"receipts": [{"id": "m-1", "reference": str(delivery.id), "status": "delivered"}]}
    ).encode()
    first, again = await twice(f"/api/v1/callbacks/sms/{SMS_GW}/receipts", receipt)
    assert (first["applied"], again["applied"]) == (1, 0)
    async with f.db.reader() as s:
        delivered = await s.get(Delivery, delivery.id)
        assert delivered is not None and delivered.state == "delivered"
        delivered_at = delivered.final_at
    reply = json.dumps({"messages": [{"from": CONTACT[1], "text": plan.reply_code}]}).encode()
    first, again = await twice(f"/api/v1/callbacks/sms/{SMS_GW}/inbound", reply)
    assert first["outcomes"] == ["acknowledged"], first
    # The copy is recorded as what arrived (inbound_messages), and does nothing: no second
    # acknowledgement, no answer sent back to the contact.
    assert again["outcomes"] == ["acknowledged"], again
    async with f.db.reader() as s:
        assert await s.scalar(select(func.count(InboundMessage.id))) == 2
        assert await s.scalar(select(func.count(Notice.id))) == 0
    async with f.db.reader() as s:
        acks = await s.scalar(
            select(func.count(Acknowledgement.warning_id)).where(
                Acknowledgement.warning_id == f.live
            )
        )
        delivered = await s.get(Delivery, delivery.id)
    assert acks == 1
    assert delivered is not None and delivered.final_at == delivered_at
