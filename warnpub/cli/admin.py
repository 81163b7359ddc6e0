"""Administration commands: db, agency, operator, areas, audit, cap, config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warnpub.audit.log import verify
from warnpub.auth import agencies, operators
from warnpub.auth.secrets import generate_password
from warnpub.cli.common import CLI_ACTOR, run, split_list, table, transaction
from warnpub.config import Settings, show
from warnpub.logs import mask


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )
    db.add_parser(
        "upgrade", help="create or migrate the schema to the newest version (idempotent)"
    ).set_defaults(handler=db_upgrade)

    ag = sub.add_parser("agency", help="agencies that submit warnings").add_subparsers(
        dest="agency_command", metavar="ACTION", required=True
    )
    a = ag.add_parser("add", help="register an agency and print its API key (shown once)")
    a.add_argument("--code", required=True, help="short code, e.g. QX for the weather bureau")
    a.add_argument("--name", required=True, help="full name, e.g. 溧阳市气象局")
    a.add_argument("--sender", required=True, help="the CAP <sender> it uses, e.g. qx@320481")
    a.add_argument(
        "--hazards",
        required=True,
        help="comma-separated hazard types it may warn about (see `warnpub config show`)",
    )
    a.add_argument(
        "--areas",
        required=True,
        help="comma-separated 12-digit division codes it may warn in; a town covers its villages",
    )
    a.set_defaults(handler=agency_add)
    ag.add_parser("list", help="list agencies and their live keys").set_defaults(
        handler=agency_list
    )
    r = ag.add_parser("revoke", help="revoke an agency's API keys (all, or one by --key prefix)")
    r.add_argument("code")
    r.add_argument(
        "--key", metavar="PREFIX", help="revoke only the key with this prefix (the part after wpk_)"
    )
    r.set_defaults(handler=agency_revoke)
    rot = ag.add_parser(
        "rotate", help="issue a new API key (printed once); old keys are revoked unless --keep-old"
    )
    rot.add_argument("code")
    rot.add_argument(
        "--keep-old", action="store_true", help="keep earlier keys working (revoke them later)"
    )
    rot.set_defaults(handler=agency_rotate)

    op = sub.add_parser("operator", help="operators, supervisors and admins").add_subparsers(
        dest="operator_command", metavar="ACTION", required=True
    )
    o = op.add_parser("add", help="add an operator account")
    o.add_argument("username")
    o.add_argument("--role", choices=operators.ROLES, default="operator")
    o.add_argument("--name", default="", help="display name")
    o.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else one is generated and printed)",
    )
    o.set_defaults(handler=operator_add)
    op.add_parser("list", help="list operator accounts").set_defaults(handler=operator_list)

    ar = sub.add_parser("areas", help="the area tree").add_subparsers(
        dest="areas_command", metavar="ACTION", required=True
    )
    al = ar.add_parser(
        "load", help="load divisions from CSV (code,name,level,parent_code[,urban_rural,synthetic])"
    )
    al.add_argument("file", type=Path)
    al.set_defaults(handler=areas_load)

    au = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="audit_command", metavar="ACTION", required=True
    )
    au.add_parser(
        "verify", help="check the chain; report the first entry altered or removed"
    ).set_defaults(handler=audit_verify)

    cap = sub.add_parser("cap", help="CAP 1.2 tools").add_subparsers(
        dest="cap_command", metavar="ACTION", required=True
    )
    cv = cap.add_parser(
        "validate", help="check CAP files offline: schema and every rule that needs no stored data"
    )
    cv.add_argument("files", nargs="+", type=Path, metavar="FILE")
    cv.set_defaults(handler=cap_validate)

    cf = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", metavar="ACTION", required=True
    )
    cf.add_parser("show", help="print the effective configuration, secrets masked").set_defaults(
        handler=config_show
    )


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.storage.migrate import upgrade
    upgrade(settings.database.url, schema=settings.database.schema_name)
    print(f"database at head: {_safe_url(settings)}")
    return 0


def _safe_url(settings: Settings) -> str:
    from warnpub.config import masked

    return mask(str(masked({"url": settings.database.url})["url"]))


def agency_add(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            new = await agencies.add_agency(
                s,
                settings,
                code=args.code,
                name=args.name,
                sender=args.sender,
                hazards=split_list(args.hazards),
                areas=split_list(args.areas),
                actor=CLI_ACTOR,
            )
        print(f"agency {new.agency.code} added.\nAPI key (shown once, store it now): {new.key.key}")
        return 0

    return run(body)


def agency_list(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            rows = await agencies.list_agencies(s)
        print(
            table(
                [
                    [a.code, a.name, a.sender, ",".join(a.hazards), ",".join(a.areas), n]
                    for a, n in rows
                ],
                ["code", "name", "sender", "hazards", "areas", "live keys"],
            )
        )
        return 0

    return run(body)


def agency_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            n = await agencies.revoke_keys(s, args.code, actor=CLI_ACTOR, prefix=args.key)
        print(f"revoked {n} key(s) of agency {args.code}")
        return 0

    return run(body)


def agency_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            key = await agencies.rotate_key(
                s, args.code, actor=CLI_ACTOR, revoke_old=not args.keep_old
            )
        print(f"new API key for {args.code} (shown once): {key.key}")
        if args.keep_old:
            print(
                f"earlier keys still work; revoke them with `warnpub agency revoke {args.code} --key PREFIX`"
            )
        return 0

    return run(body)


def operator_add(args: argparse.Namespace, settings: Settings) -> int:
    generated = not args.password_stdin
    password = generate_password() if generated else sys.stdin.readline().rstrip("\n")

    async def body() -> int:
        async with transaction(settings) as s:
            op = await operators.add_operator(
                s,
                username=args.username,
                display_name=args.name,
                role=args.role,
                password=password,
                actor=CLI_ACTOR,
            )
        print(f"{op.role} {op.username} added.")
        if generated:
            print(f"password (shown once): {password}")
        return 0

    return run(body)


def operator_list(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            rows = await operators.list_operators(s)
        print(
            table(
                [[o.username, o.display_name, o.role, "yes" if o.active else "no"] for o in rows],
                ["username", "name", "role", "active"],
            )
        )
        return 0

    return run(body)


def areas_load(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.audiences.areas import load_areas_file  # shapely: imported when used
    async def body() -> int:
        async with transaction(settings) as s:
            n = await load_areas_file(s, args.file)
        print(f"loaded {n} areas from {args.file}")
        return 0

    return run(body)


def audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            result = await verify(s)
        if result.ok:
            print(f"audit log intact: {result.entries} entries")
            return 0
        print(
            f"audit log BROKEN at entry {result.first_bad_seq}: {result.reason} "
            f"({result.entries} entries before it are intact)"
        )
        return 1

    return run(body)


def cap_validate(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.cap import validate_file
    from warnpub.cap.certs import load_certificates
    trusted = load_certificates(settings.cap.trusted_certs)
    bad = 0
    for path in args.files:
        report = validate_file(path, trusted_certs=trusted)
        print(f"{path}: {report.summary}" if report.ok else f"{path}: INVALID: {report.summary}")
        for err in report.errors:
            print(f"  - {err.field}: {err.message}")
        bad += not report.ok
    return 1 if bad else 0


def config_show(args: argparse.Namespace, settings: Settings) -> int:
    # show() masks the secret keys ([security] secret_key, channel passwords, auth_value,
    # callback_secret, webhook secret, signing_key, …) and the password of [database] url;
    # mask() also hides credentials inside any other value (user:password@ in callback_url or
    # batch_url, ?token=… query parameters, wpk_/wpt_/wpb_ credentials) and the supervisors'
    # phone numbers and e-mail addresses.
    print(mask(show(settings)))
    return 0
