"""The append-only, hash-chained audit log.

Each entry's hash covers the previous entry's hash and the entry's own canonical JSON, so
altering or removing any entry breaks the chain from that point on. Appends lock the single
``audit_head`` row first (an UPDATE), which serialises writers on SQLite and PostgreSQL alike.
An entry is written in the same transaction as the change it records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.clock import iso, utcnow
from warnpub.storage.tables import AuditEntry, AuditHead

GENESIS = "0" * 64


def _canonical(
    seq: int, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> bytes:
    body = {
        "seq": seq,
        "at": iso(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
    }
    return json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    ).encode()


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: dict[str, Any],
) -> str:
    return hashlib.sha256(
        prev_hash.encode() + _canonical(seq, at, actor, action, subject, details)
    ).hexdigest()


async def append(
    session: AsyncSession, actor: str, action: str, subject: str = "", **details: Any
) -> AuditEntry:
    """Append one entry inside the caller's transaction. ``actor`` is e.g. ``operator:alice``."""
    row = (
        await session.execute(
            text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        )
    ).one()
    seq, prev = int(row[0]), str(row[1])
    at = utcnow()
    details = json.loads(json.dumps(details, default=str))
    digest = entry_hash(prev, seq, at, actor, action, subject, details)
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        prev_hash=prev,
        hash=digest,
    )
    session.add(entry)
    await session.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": digest})
    return entry


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str = ""


async def verify(session: AsyncSession, batch: int = 5000) -> VerifyResult:
    """Walk the chain; report the first entry that was altered, inserted or removed."""
    prev, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.seq > last_seq)
                    .order_by(AuditEntry.seq)
                    .limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for e in rows:
            if e.seq != expected_seq:
                return VerifyResult(False, count, expected_seq, f"entry {expected_seq} was removed")
            if e.prev_hash != prev:
                return VerifyResult(
                    False,
                    count,
                    e.seq,
                    f"entry {e.seq} does not follow entry {e.seq - 1} (chain broken)",
                )
            if entry_hash(prev, e.seq, e.at, e.actor, e.action, e.subject, e.details) != e.hash:
                return VerifyResult(
                    False, count, e.seq, f"entry {e.seq} was altered ({e.action} by {e.actor})"
                )
            prev, expected_seq, count, last_seq = e.hash, e.seq + 1, count + 1, e.seq
    head = await session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.hash != prev):
        return VerifyResult(
            False,
            count,
            count + 1,
            f"entries after {count} were removed (the head records {head.seq})",
        )
    return VerifyResult(True, count)
