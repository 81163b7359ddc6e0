"""Intake: one parsed alert from an agency (or an operator on its behalf) becomes a stored warning.

Order of checks: replayed idempotency key → offline CAP rules → hazards and areas named well →
agency scope → areas known → references → duplicate identifier. Any refusal raises a
:class:`Problem` before anything is written; on success the warning, its areas, references,
timers, audit entry and idempotency record are committed in one transaction, and only then
does the caller answer 2xx.

What needs no database (the CAP rules, what the alert asks for, its content hash) is worked
out before the write transaction (:func:`prepare`). On SQLite, agencies' submissions that
arrive together are written together (:mod:`warnpub.intake.batch`); the checks are the same
:func:`_submit`, reading through :class:`Lookups`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.areas import unknown_codes
from warnpub.audiences.divisions import covers
from warnpub.audiences.tables import Person
from warnpub.audit.log import append as audit
from warnpub.auth.callers import Caller
from warnpub.cap import Alert, offline_errors
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.drills import audience as drill_audience
from warnpub.intake.scope import Ask, read_ask, resolve_shapes, scope_errors
from warnpub.intake.views import warning_summary
from warnpub.lastkm.supervisors import review_notify
from warnpub.problems import FieldError, Problem, conflict, forbidden, invalid
from warnpub.review import policy, states
from warnpub.review.service import release
from warnpub.storage.engine import Database
from warnpub.storage.tables import (
    Agency,
    IdempotencyRecord,
    WarningArea,
    WarningRecord,
    WarningReference,
)
from warnpub.timers import store as timers

ACCEPTED_STATUS = ("Actual", "Exercise", "Test")
ACCEPTED_MSG_TYPES = ("Alert", "Update", "Cancel")


@dataclass(slots=True)
class Submission:
    alert: Alert
    body_hash: str
    cap_xml: bytes | None = None
    idempotency_key: str | None = None


@dataclass(slots=True)
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Prepared:
    """What a submission's checks need that no stored data changes: worked out before the
    write transaction, so that the write lock is not held while it is."""

    errors: list[FieldError]
    ask: Ask
    bare_cancel: bool
    content_hash: str
    alert_doc: dict[str, Any]
    expires: datetime | None


def prepare(settings: Settings, alert: Alert) -> Prepared:
    errors = list(offline_errors(alert))
    errors += drill_audience.parameter_errors(alert)
    if alert.status not in ACCEPTED_STATUS:
        errors.append(
            FieldError(
                "status", f"status {alert.status} is not accepted; use {', '.join(ACCEPTED_STATUS)}"
            )
        )
    if alert.msg_type not in ACCEPTED_MSG_TYPES:
        errors.append(
            FieldError(
                "msg_type",
                f"msgType {alert.msg_type} is not accepted; use {', '.join(ACCEPTED_MSG_TYPES)}",
            )
        )
    bare_cancel = alert.msg_type == "Cancel" and not alert.infos
    ask = read_ask(settings, alert)
    if not bare_cancel:
        errors += ask.errors
        if alert.level is None:
            errors.append(
                FieldError(
                    "infos.severity",
                    "give severity Extreme, Severe, Moderate or Minor (red, orange, yellow, blue); Unknown gives no warning level",
                )
            )
    doc = alert.model_dump(mode="json")
    return Prepared(errors, ask, bare_cancel, _doc_hash(doc), doc, _expires(alert))


class Lookups:
    """The stored data the checks read, straight from the transaction's session. (A batch of
    submissions reads it for all of them at once: :class:`warnpub.intake.batch.BatchLookups`.)"""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        return (
            (
                await self.session.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.caller == caller, IdempotencyRecord.key == key
                    )
                )
            )
            .scalars()
            .first()
        )

    async def unknown_codes(self, codes: list[str]) -> list[str]:
        return await unknown_codes(self.session, codes)

    async def warning(self, sender: str, identifier: str) -> WarningRecord | None:
        return (
            (
                await self.session.execute(
                    select(WarningRecord).where(
                        WarningRecord.sender == sender, WarningRecord.identifier == identifier
                    )
                )
            )
            .scalars()
            .first()
        )

    def stored(self, warning: WarningRecord) -> None:
        """``warning`` is written in this transaction (a batch's later submissions see it)."""

    def remembered(self, record: IdempotencyRecord) -> None:
        """``record`` is written in this transaction."""


def body_hash(content_type: str, body: bytes) -> str:
    return hashlib.sha256(content_type.encode() + b"\n" + body).hexdigest()


def content_hash(alert: Alert) -> str:
    return _doc_hash(alert.model_dump(mode="json"))


def _doc_hash(doc: dict[str, Any]) -> str:
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def submit(db: Database, settings: Settings, caller: Caller, sub: Submission) -> Outcome:
    pre = prepare(settings, sub.alert)
    if db.dialect == "sqlite" and _batchable(settings, caller, sub, pre):
        from warnpub.intake.batch import writer_for

        return await writer_for(db, settings).submit(caller, sub, pre)
    return await submit_alone(db, settings, caller, sub, pre)


async def submit_alone(
    db: Database, settings: Settings, caller: Caller, sub: Submission, pre: Prepared
) -> Outcome:
    """The submission in a transaction of its own."""
    for attempt in range(3):
        try:
            async with db.session() as session:
                return await _submit(session, settings, caller, sub, pre, Lookups(session))
        except IntegrityError:
            # A concurrent request with the same idempotency key or CAP identifier committed
            # first; run again so that this one sees it and answers accordingly.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _batchable(settings: Settings, caller: Caller, sub: Submission, pre: Prepared) -> bool:
    """An agency's submission whose checks and writes need nothing but :class:`Lookups` and
    plain inserts: not on an agency's behalf (the agency is looked up by sender), no polygons
    or circles (geometry), no drill list (the roster), not a Cancel without infos (the areas
    of what it cancels), not released at once by the green channel (review.release)."""
    alert = sub.alert
    if caller.agency is None or pre.errors or pre.ask.shapes or pre.bare_cancel:
        return False
    if alert.level is None:
        return False
    audience = drill_audience.from_alert(alert)
    if audience is not None and audience.kind == "list":
        return False
    return not policy.is_green_channel(settings, caller.agency.code, alert.level.value)


async def _submit(
    session: AsyncSession,
    settings: Settings,
    caller: Caller,
    sub: Submission,
    pre: Prepared,
    look: Lookups,
) -> Outcome:
    if sub.idempotency_key is not None:
        replay = await _replay(look, caller, sub)
        if replay is not None:
            return replay
    alert = sub.alert
    agency = await _agency_for(session, caller, alert)
    errors, ask, bare_cancel = pre.errors, pre.ask, pre.bare_cancel
    if errors:
        raise invalid("the warning breaks the CAP rules", errors)
    if shape_errors := await resolve_shapes(session, ask):
        raise invalid(
            "an area's polygon or circle covers no known area", shape_errors, kind="unknown-area"
        )
    if scope := scope_errors(agency, ask):
        raise forbidden(
            f"the warning is outside agency {agency.code}'s authorisation",
            scope,
            kind="out-of-scope",
        )
    if missing := await look.unknown_codes(ask.codes):
        raise invalid(
            "the warning names areas that are not in the area tree",
            [FieldError("infos.areas", f"unknown division code {c}") for c in missing],
            kind="unknown-area",
        )
    if listed := await _drill_list_errors(session, alert, ask.codes):
        raise invalid("the drill audience lists people it cannot reach", listed)
    refs = await _references(look, alert)
    now = utcnow()
    expires = pre.expires
    if expires is not None and expires <= now:
        raise invalid(
            "the warning has already expired",
            [FieldError("infos.expires", "set expires in the future")],
        )

    existing = await look.warning(alert.sender, alert.identifier)
    chash = pre.content_hash
    if existing is not None:
        if existing.content_hash != chash:
            raise conflict(
                f"sender {alert.sender} already used identifier {alert.identifier} for another "
                f"warning ({existing.id}); give every new message a new identifier",
                kind="identifier-reused",
                warning_id=existing.id,
            )
        return await _remember(
            session,
            look,
            caller,
            sub,
            Outcome(200, warning_summary(settings, existing, duplicate=True)),
        )

    if bare_cancel:
        level = min((r.level for r in refs), key=policy.LEVEL_RANK.__getitem__)
        hazard, codes = (
            refs[0].hazard,
            sorted({c for r in refs for c in await _areas_of(session, r.id)}),
        )
    else:
        assert alert.level is not None
        level, hazard, codes = alert.level.value, ask.hazards[0], ask.codes
    green = policy.is_green_channel(settings, agency.code, level)
    warning = WarningRecord(
        agency_id=agency.id or 0,
        submitted_by_operator_id=caller.operator.id if caller.operator else None,
        sender=alert.sender,
        identifier=alert.identifier,
        sent=alert.sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        level=level,
        level_rank=policy.LEVEL_RANK[level],
        hazard=hazard,
        headline=next((i.headline or "" for i in alert.infos if i.headline), "")[:400],
        state=states.PENDING,
        green_channel=green,
        expires_at=expires,
        content_hash=chash,
        alert=pre.alert_doc,
        cap_xml=sub.cap_xml,
        created_at=now,
        updated_at=now,
    )
    session.add(warning)
    look.stored(warning)
    await session.flush()
    session.add_all([WarningArea(warning_id=warning.id, code=c) for c in codes])
    session.add_all([WarningReference(warning_id=warning.id, referenced_id=r.id) for r in refs])
    await session.flush()
    await audit(
        session,
        caller.actor,
        "warning.submitted",
        f"warning:{warning.id}",
        agency=agency.code,
        sender=alert.sender,
        identifier=alert.identifier,
        level=level,
        hazard=hazard,
        msg_type=alert.msg_type,
        status=alert.status,
        areas=codes,
    )
    if expires is not None:
        await timers.schedule(
            session, "expire", expires, warning_id=warning.id, dedupe_key=f"expire:{warning.id}"
        )
    if green:
        await release(session, settings, warning, "policy:green_channel")
    else:
        warning.review_deadline = policy.review_deadline(settings, level, now)
        await timers.schedule(
            session,
            "review_deadline",
            warning.review_deadline,
            warning_id=warning.id,
            dedupe_key=f"review_deadline:{warning.id}",
            # Who is told when it passes, fixed now (docs/last-kilometre.md).
            payload=review_notify(settings),
        )
    return await _remember(
        session, look, caller, sub, Outcome(202, warning_summary(settings, warning))
    )


async def _drill_list_errors(
    session: AsyncSession, alert: Alert, codes: list[str]
) -> list[FieldError]:
    """A drill's ``list:`` audience names people on the roster, in the warning's areas."""
    audience = drill_audience.from_alert(alert)
    if audience is None or audience.kind != "list":
        return []
    found: dict[str, str] = {}
    wanted = list(audience.people)
    for start in range(0, len(wanted), 500):
        rows = await session.execute(
            select(Person.external_id, Person.area_code).where(
                Person.external_id.in_(wanted[start : start + 500])
            )
        )
        found.update({str(e): a for e, a in rows.all()})
    field_path = drill_audience.parameter_path(alert)
    errors = []
    unknown = [p for p in wanted if p not in found]
    if unknown:
        errors.append(
            FieldError(field_path, f"no person on the roster has the id {', '.join(unknown[:20])}")
        )
    outside = [p for p, area in found.items() if not any(covers(c, area) for c in codes)]
    if outside:
        errors.append(
            FieldError(
                field_path,
                f"{', '.join(outside[:20])} live outside the warning's areas; add their village "
                "to the areas or leave them out",
            )
        )
    return errors


async def _agency_for(session: AsyncSession, caller: Caller, alert: Alert) -> Agency:
    if caller.agency is not None:
        if alert.sender != caller.agency.sender:
            raise forbidden(
                f"sender {alert.sender!r} is not agency {caller.agency.code}'s sender; use {caller.agency.sender!r}",
                [FieldError("sender", f"use {caller.agency.sender!r}")],
                kind="out-of-scope",
            )
        return caller.agency
    agency = (
        (await session.execute(select(Agency).where(Agency.sender == alert.sender)))
        .scalars()
        .first()
    )
    if agency is None or not agency.active:
        raise invalid(
            f"no active agency sends as {alert.sender!r}; an operator submits on an agency's behalf with its sender",
            [FieldError("sender", "use the sender of a registered agency")],
            kind="unknown-sender",
        )
    return agency


async def _references(look: Lookups, alert: Alert) -> list[WarningRecord]:
    if alert.msg_type not in ("Update", "Cancel"):
        return []
    found: list[WarningRecord] = []
    errors: list[FieldError] = []
    now = utcnow()
    for i, ref in enumerate(alert.references):
        where = f"references.{i}"
        # Another sender's reference is refused before it is looked up: the answer must not
        # tell whether another agency's warning exists (the same refusal either way).
        if ref.sender != alert.sender:
            errors.append(
                FieldError(
                    where,
                    f"{ref.identifier} names sender {ref.sender}; an {alert.msg_type} may only refer to the same sender's warnings",
                )
            )
            continue
        row = await look.warning(ref.sender, ref.identifier)
        if row is None or row.sent != ref.sent:
            errors.append(
                FieldError(
                    where,
                    f"no warning {ref.sender},{ref.identifier},{ref.sent.isoformat()} is known; check the identifier and sent time",
                )
            )
        elif row.state == states.EXPIRED or (row.expires_at is not None and row.expires_at <= now):
            errors.append(
                FieldError(where, f"warning {row.id} has expired; send a new Alert instead")
            )
        elif row.state in (states.REJECTED, states.CANCELLED):
            errors.append(
                FieldError(where, f"warning {row.id} was {row.state}; send a new Alert instead")
            )
        else:
            found.append(row)
    if errors:
        raise invalid(
            f"the {alert.msg_type} refers to warnings that cannot be updated or cancelled",
            errors,
            kind="bad-reference",
        )
    return found


async def _areas_of(session: AsyncSession, warning_id: str) -> list[str]:
    return list(
        (
            await session.execute(
                select(WarningArea.code).where(WarningArea.warning_id == warning_id)
            )
        ).scalars()
    )


def _expires(alert: Alert) -> datetime | None:
    ends = [i.expires for i in alert.infos]
    return max(ends) if ends and all(e is not None for e in ends) else None  # type: ignore[type-var]


async def _replay(look: Lookups, caller: Caller, sub: Submission) -> Outcome | None:
    assert sub.idempotency_key is not None
    rec = await look.idempotency(caller.actor, sub.idempotency_key)
    if rec is None:
        return None
    if rec.request_hash != sub.body_hash:
        raise Problem(
            422,
            "Idempotency key reused",
            f"Idempotency-Key {sub.idempotency_key!r} was already used with a different request body; use a new key for a new request",
            "idempotency-key-reused",
        )
    return Outcome(rec.status_code, rec.response, {"Idempotent-Replayed": "true"})


async def _remember(
    session: AsyncSession, look: Lookups, caller: Caller, sub: Submission, outcome: Outcome
) -> Outcome:
    if sub.idempotency_key is not None:
        record = IdempotencyRecord(
            caller=caller.actor,
            key=sub.idempotency_key,
            request_hash=sub.body_hash,
            status_code=outcome.status,
            response=outcome.body,
        )
        session.add(record)
        look.remembered(record)
    return outcome
