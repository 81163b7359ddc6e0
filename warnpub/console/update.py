"""POST /console/warnings/{id}/update: send an update (续报) or a final report (终报).

The console builds a CAP Update from the stored alert (``WarningRecord.alert``): the same
sender, event and level unless changed, the operator's headline, description and instruction,
a new expiry, optional extra division codes, and ``references`` naming the original
(``sender,identifier,sent``). "Final report" sets ``responseType`` AllClear
(docs/last-kilometre.md, "Follow-ups"). It goes through the intake service on the agency's
behalf, as the signed-in operator (docs/api.md): every rule of intake applies, and the update is
reviewed like any warning (the operator who sent it can never approve it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from warnpub.api.context import services
from warnpub.audiences.tables import Area as AreaRow
from warnpub.auth.callers import Caller
from warnpub.cap.model import Alert, Area, Info, Level, NamedValue, Reference
from warnpub.clock import new_id, utcnow
from warnpub.config import Settings
from warnpub.console.pages import FORM_NOTE, Ctx, page, see_other
from warnpub.console.routes import FORM, HTML, SESSION, routes
from warnpub.console.words import state_name
from warnpub.intake.service import Submission, content_hash, submit
from warnpub.problems import Problem
from warnpub.review import service as review
from warnpub.storage.tables import WarningRecord

LIVE = ("approved", "dispatching", "completed")
LEVELS = ("red", "orange", "yellow", "blue")
FIELDS = ("headline", "description", "instruction", "expires", "level", "codes", "final")
_CODE = re.compile(r"\d{12}")
_SPLIT = re.compile(r"[\s,，、;；]+")
_LOCAL = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


class FormError(Exception):
    """Something the operator must fix in the form (shown as it is, 422)."""


def zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.reports.display_timezone)


def stored_alert(warning: WarningRecord) -> Alert:
    return Alert.model_validate(warning.alert)


def can_update(warning: WarningRecord) -> bool:
    return warning.state in LIVE and bool((warning.alert or {}).get("infos"))


def defaults(warning: WarningRecord, settings: Settings) -> dict[str, str]:
    """The form's first values: the original's text (first info block) and expiry."""
    if not can_update(warning):
        return {}
    info = stored_alert(warning).infos[0]
    expires = info.expires.astimezone(zone(settings)).strftime("%Y-%m-%dT%H:%M") if info.expires else ""
    return {
        "headline": info.headline or "",
        "description": info.description or "",
        "instruction": info.instruction or "",
        "expires": expires,
        "level": "",
        "codes": "",
        "final": "",
        "language": info.language,
    }


def parse_expires(text: str, settings: Settings, w: Mapping[str, str]) -> datetime | None:
    """The form's expiry: local time (``[reports] display_timezone``) or ISO with an offset."""
    text = text.strip()
    if not text:
        return None
    tz = zone(settings)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
        for fmt in _LOCAL:
            try:
                when = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if when is None:
        raise FormError(w["update_bad_expires"].format(value=text, zone=tz.key))
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    when = when.replace(microsecond=0)
    if when <= utcnow():
        raise FormError(
            w["update_past_expires"].format(value=when.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
        )
    return when


def parse_codes(text: str, w: Mapping[str, str]) -> list[str]:
    codes = [c for c in _SPLIT.split(text.strip()) if c]
    for code in codes:
        if not _CODE.fullmatch(code):
            raise FormError(w["update_bad_code"].format(code=code))
    return list(dict.fromkeys(codes))


def build_update(
    original: Alert,
    form: Mapping[str, str],
    *,
    operator: str,
    expires: datetime | None,
    codes: list[str],
    names: Mapping[str, str],
    settings: Settings,
) -> Alert:
    """A CAP Update of ``original``: one info block (the first one's language) with the form's
    text, expiry, level and extra areas; references the original."""
    first = original.infos[0]
    changes: dict[str, Any] = {
        "headline": form.get("headline") or first.headline,
        "description": form.get("description") or first.description,
        "instruction": form.get("instruction") or first.instruction,
    }
    if expires is not None:
        changes["expires"] = expires
    if form.get("level") in LEVELS:
        changes["severity"] = Level(form["level"]).severity
    if form.get("final"):
        changes["response_types"] = ["AllClear"]
    division = settings.cap.division_geocode_names[0]
    have = {g.value.strip() for a in first.areas for g in a.geocodes}
    extra = [
        Area(area_desc=names.get(c) or c, geocodes=[NamedValue(value_name=division, value=c)])
        for c in codes
        if c not in have
    ]
    changes["areas"] = [*first.areas, *extra]
    info = Info.model_validate(first.model_dump() | changes)
    sent = utcnow().astimezone(zone(settings)).replace(microsecond=0)
    return original.model_copy(
        update={
            "identifier": f"{original.identifier[:40]}-upd-{new_id()}",
            "sent": sent,
            "msg_type": "Update",
            "source": f"console:{operator}"[:200],
            "references": [
                Reference(
                    sender=original.sender, identifier=original.identifier, sent=original.sent
                )
            ],
            "malformed_references": [],
            "infos": [info],
            "has_signature": False,
        }
    )


def field_label(path: str, w: Mapping[str, str]) -> str:
    for key, label in (
        ("expires", "field_expires"),
        ("areas", "field_areas"),
        ("headline", "field_headline"),
        ("sender", "field_sender"),
    ):
        if key in path:
            return w[label]
    return path


def problem_text(problem: Problem, w: Mapping[str, str]) -> str:
    fixes = "".join(f" {field_label(e.field, w)}: {e.message}." for e in problem.errors)
    return w["update_refused"].format(detail=problem.detail) + fixes


def form_values(ctx: Ctx) -> dict[str, str]:
    return {name: ctx.field(name) for name in FIELDS}


async def _names(db: Any, codes: list[str]) -> dict[str, str]:
    if not codes:
        return {}
    async with db.reader() as session:
        rows = await session.execute(
            select(AreaRow.code, AreaRow.name).where(AreaRow.code.in_(codes))
        )
        return {str(c): str(n) for c, n in rows.all()}


@routes.route(
    "POST",
    "/console/warnings/{warning_id}/update",
    auth=SESSION,
    summary=(
        "Console: send an update (CAP Update referencing this warning; 'final' = AllClear) on the "
        "agency's behalf as the signed-in operator; it is then reviewed like any warning. "
        + FORM_NOTE
    ),
    request=FORM,
    response={"303": {"description": "Submitted; to the new warning's page"}} | HTML,
)
@page()
async def console_update(ctx: Ctx) -> web.StreamResponse:
    from warnpub.console.warning import warning_page  # the page imports this module

    svc = services(ctx.request)
    warning_id = ctx.request.match_info["warning_id"]
    values = form_values(ctx)
    async with svc.db.reader() as session:
        warning = await review.load(session, warning_id, lock=False)
    try:
        if warning.state not in LIVE:
            raise FormError(ctx.w["update_not_live"].format(state=state_name(ctx.lang, warning.state)))
        if not can_update(warning):
            raise FormError(ctx.w["update_no_info"])
        expires = parse_expires(values["expires"], svc.settings, ctx.w)
        codes = parse_codes(values["codes"], ctx.w)
        try:
            alert = build_update(
                stored_alert(warning),
                values,
                expires=expires,
                codes=codes,
                operator=ctx.s.operator.username,
                names=await _names(svc.db, codes),
                settings=svc.settings,
            )
        except ValueError as exc:  # pydantic: a value the CAP model refuses
            raise FormError(ctx.w["update_refused"].format(detail=str(exc))) from None
        outcome = await submit(
            svc.db,
            svc.settings,
            Caller(operator=ctx.s.operator),
            Submission(alert, content_hash(alert)),
        )
    except FormError as error:
        return await warning_page(ctx, warning_id, error=str(error), status=422, update_values=values)
    except Problem as problem:
        if problem.status == 404:
            raise
        return await warning_page(
            ctx, warning_id, error=problem_text(problem, ctx.w), status=problem.status, update_values=values
        )
    if outcome.body.get("state") == "approved":  # green channel: released at once
        svc.released(outcome.body["id"])
    return see_other(f"/console/warnings/{outcome.body['id']}?done=update_sent")
