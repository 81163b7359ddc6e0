"""``warnpub visits WARNING_ID``: a warning's visit tasks per village (docs/last-kilometre.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from warnpub.cli.common import add_unmasked, database, record_unmasked, run
from warnpub.config import Settings
from warnpub.reports.privacy import EXPORT, FULL, Privacy, person_name, phone


def register(sub: Any) -> None:
    p = sub.add_parser(
        "visits",
        help="the visit tasks of a warning, per village (door-to-door by village contacts)",
        description=(
            "Special-needs people whose direct routes failed or who have only a visit route "
            "become visit tasks for their village contact. Lists them per village with their "
            "needs, their contact and whether the contact reported them told (how and when)."
        ),
    )
    p.add_argument("warning_id", metavar="WARNING_ID", help="the warning's id")
    p.add_argument("--json", action="store_true", help="print JSON (as the API serves it)")
    add_unmasked(p)
    p.set_defaults(handler=visits_command)


def masked_listing(listing: dict[str, Any], privacy: Privacy) -> dict[str, Any]:
    """The listing with names and the contacts' phone numbers as ``privacy`` says."""
    for village in listing["villages"]:
        for task in village["tasks"]:
            task["name"] = person_name(task["name"], privacy)
            task["contact_name"] = person_name(task["contact_name"], privacy)
            task["contact_phone"] = phone(task["contact_phone"], privacy)
    return listing


def visits_command(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.lastkm.visit_list import render_text, visits_by_village

    privacy = FULL if args.unmasked else EXPORT

    async def body() -> int:
        async with database(settings) as db:
            async with db.reader() as session:
                listing = await visits_by_village(session, args.warning_id)
            if args.unmasked:
                await record_unmasked(db, "visits", f"warning:{args.warning_id}")
        listing = masked_listing(listing, privacy)
        if args.json:
            print(json.dumps(listing, ensure_ascii=False, indent=2))
        else:
            sys.stdout.write(render_text(listing))
        return 0

    return run(body)
