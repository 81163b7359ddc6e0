"""Board tokens: one per board, shown once when issued, stored only as a SHA-256.

A token carries 256 random bits (like agency API keys and operator tokens, see
:mod:`warnpub.auth.secrets`), so a plain SHA-256 of it is enough and a lookup by hash is
constant work. Issuing a token for a board that has one replaces it (rotation): the old token
stops working at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Device
from warnpub.audit.log import append as audit
from warnpub.auth.secrets import sha256_hex
from warnpub.boards.tables import BoardCredential
from warnpub.clock import utcnow
from warnpub.problems import Problem, forbidden, invalid, unauthorized

TOKEN_PREFIX = "wpb"  # noqa: S105 (a prefix, not a secret)
BOARD_KINDS = ("board_digital", "board_paper")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    device: Device
    token: str
    rotated: bool  # the board had a token before (it no longer works)


def new_token() -> tuple[str, str]:
    """A board token and its stored hash."""
    token = f"{TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"
    return token, sha256_hex(token)


async def find_board(session: AsyncSession, name: str) -> Device:
    """The board named by its external id or its board id (address); a clear error otherwise."""
    rows = list(
        (
            await session.execute(
                select(Device)
                .where(
                    Device.kind.in_(BOARD_KINDS),
                    or_(Device.external_id == name, Device.address == name),
                )
                .order_by(Device.id)
            )
        ).scalars()
    )
    if not rows:
        raise Problem(
            404,
            "Not found",
            f"no notice board has the external id or board id {name!r}; "
            "check the external_id and address of the devices imported with the roster",
            "not-found",
        )
    by_external = [d for d in rows if d.external_id == name]
    if len(by_external) == 1:
        return by_external[0]
    if len(rows) > 1:
        ids = ", ".join(str(d.external_id) for d in rows)
        raise invalid(
            f"board id {name!r} is shared by several boards ({ids}); name one by its external id"
        )
    return rows[0]


async def issue(session: AsyncSession, device: Device, actor: str) -> IssuedToken:
    """Issue (or rotate) the token of ``device``; audited. Returns the token to show once."""
    if device.kind not in BOARD_KINDS or device.id is None:
        raise invalid(
            f"device {device.external_id or device.id} is a {device.kind}, not a notice board"
        )
    token, digest = new_token()
    credential = await session.get(BoardCredential, device.id, with_for_update=True)
    rotated = credential is not None
    if credential is None:
        session.add(BoardCredential(device_id=device.id, token_hash=digest))
    else:
        credential.token_hash = digest
        credential.issued_at = utcnow()
    await audit(
        session,
        actor,
        "board.token_rotated" if rotated else "board.token_issued",
        f"device:{device.id}",
        board=device.address,
        external_id=device.external_id,
    )
    return IssuedToken(device, token, rotated)


def fix_hint(board_id: str) -> str:
    return f"issue a new one with `warnpub board token {board_id}` and put it in the board's URL"


async def device_for_token(session: AsyncSession, token: str) -> Device | None:
    """The board whose token is ``token``, if any (active or not)."""
    if not token.startswith(TOKEN_PREFIX + "_"):
        return None
    return (
        await session.execute(
            select(Device)
            .join(BoardCredential, BoardCredential.device_id == Device.id)
            .where(BoardCredential.token_hash == sha256_hex(token))
        )
    ).scalar_one_or_none()


async def board_for_token(session: AsyncSession, token: str, board_id: str) -> Device:
    """The board that ``token`` belongs to, which must be the board ``board_id``; 401/403 that
    say what to fix otherwise."""
    if not token.startswith(TOKEN_PREFIX + "_"):
        raise unauthorized(
            f"this is not a board token (board tokens start with {TOKEN_PREFIX}_); "
            + fix_hint(board_id)
        )
    row = await device_for_token(session, token)
    if row is None:
        raise unauthorized(
            f"the board token is not valid (it may have been rotated); {fix_hint(board_id)}"
        )
    if row.address != board_id:
        raise unauthorized(
            f"this token belongs to board {row.address!r}, not {board_id!r}; "
            "open the URL of the board the token was issued for"
        )
    if not row.active:
        raise forbidden(
            f"board {board_id} is switched off (inactive); ask the centre to activate it"
        )
    return row
