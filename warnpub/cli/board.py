"""``warnpub board …``: notice boards (issue or rotate a board's token; list boards)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from warnpub.audiences.divisions import significant_prefix, write_out
from warnpub.audiences.tables import Device
from warnpub.boards.tables import BoardCredential
from warnpub.boards.tokens import BOARD_KINDS, find_board, issue
from warnpub.cli.common import CLI_ACTOR, run, table, transaction
from warnpub.clock import iso
from warnpub.config import Settings
from warnpub.problems import invalid


def register(sub: Any) -> None:
    bo = sub.add_parser("board", help="notice boards: tokens and heartbeats").add_subparsers(
        dest="board_command", metavar="ACTION", required=True
    )
    t = bo.add_parser(
        "token",
        help="issue (or rotate) a board's token and print the board's URL (shown once)",
        description=(
            "Issue a token for one digital or paper notice board, named by its external id or "
            "its board id (address). A board that had a token gets a new one and the old one "
            "stops working at once. Only a hash is stored: the token is printed once."
        ),
    )
    t.add_argument("board", help="the board's external id or board id, e.g. board-320481116200")
    t.set_defaults(handler=board_token)
    ls = bo.add_parser("list", help="list boards with their last heartbeat")
    ls.add_argument("--area", metavar="CODE", help="only boards in this area (12-digit prefix)")
    ls.set_defaults(handler=board_list)


def board_token(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            device = await find_board(s, args.board)
            issued = await issue(s, device, CLI_ACTOR)
        base = settings.server.public_url.rstrip("/")
        verb = "rotated (the old token no longer works)" if issued.rotated else "issued"
        print(f"board {device.address} ({device.name}, {device.kind}): token {verb}")
        print(f"token (shown once): {issued.token}")
        print(f"board page: {base}/boards/{quote(device.address, safe='')}?token={issued.token}")
        return 0

    return run(body)


def board_list(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with transaction(settings) as s:
            query = (
                select(Device, BoardCredential)
                .outerjoin(BoardCredential, BoardCredential.device_id == Device.id)
                .where(Device.kind.in_(BOARD_KINDS))
                .order_by(Device.area_code, Device.id)
            )
            if args.area:
                try:
                    prefix = significant_prefix(write_out(args.area))
                except ValueError as exc:
                    raise invalid(f"--area: {exc}") from None
                query = query.where(Device.area_code.startswith(prefix))
            rows = (await s.execute(query)).all()
        print(
            table(
                [
                    [
                        d.address,
                        d.external_id,
                        d.kind,
                        d.area_code,
                        "yes" if d.active else "no",
                        "yes" if c is not None else "no",
                        iso(c.last_seen_at) if c is not None else None,
                        c.last_seen_via if c is not None else None,
                    ]
                    for d, c in rows
                ],
                ["board", "external id", "kind", "area", "active", "token", "last seen", "via"],
            )
        )
        return 0

    return run(body)
