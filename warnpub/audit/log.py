"""The append-only, hash-chained audit log.

Each entry's hash covers the previous entry's hash and the entry's own canonical JSON, so
altering or removing any entry breaks the chain from that point on. Appends lock the single
``audit_head`` row first (an UPDATE), which serialises writers on SQLite and PostgreSQL alike.
An entry is written in the same transaction as the change it records.

The log is kept for good, so it never stores a secret or a contact point: before an entry is
hashed, credential-looking values (API keys, operator and board tokens, passwords, signatures —
:func:`warnpub.logs.mask_secrets`) are replaced by ``***`` in the actor, the subject and the
details, and phone numbers and e-mail addresses in the details keep only what
:func:`warnpub.logs.mask` keeps. Details whose key names a secret (``password``, ``token``,
``*_secret``, ``*_key`` but ``key_prefix``…) are dropped to ``***`` whatever they hold.
People appear by id only (``person.forgotten``, ``escalation.step``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.clock import iso, utcnow
from warnpub.logs import SECRET_MASK, mask, mask_secrets
from warnpub.storage.tables import AuditEntry, AuditHead

GENESIS = "0" * 64
# Detail keys whose values are secrets whatever they look like. ``key_prefix`` (the public
# lookup part of an API key) and ``idempotency_key`` are not secrets.
_SECRET_DETAIL = ("password", "passwd", "secret", "token", "api_key", "auth_value", "secret_key")
_PUBLIC_DETAIL = frozenset({"key_prefix", "idempotency_key", "token_prefix"})


def _secret_key(key: str) -> bool:
    k = key.lower()
    if k in _PUBLIC_DETAIL:
        return False
    return any(word in k for word in _SECRET_DETAIL) or k.endswith("_key")


def scrub(value: Any, key: str = "") -> Any:
    """``value`` (JSON-ready) with secrets and contact points masked, recursively."""
    if key and _secret_key(key) and isinstance(value, str) and value:
        return SECRET_MASK
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


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
    """Append one entry inside the caller's transaction. ``actor`` is e.g. ``operator:alice``.

    A caller that writes many entries in one transaction (warnpub.intake.batch) may hand a
    session-like object with an ``audit_head`` (:class:`ChainHead`): the chain's head is then
    advanced in memory, and the caller writes it once."""
    head: ChainHead | None = getattr(session, "audit_head", None)
    if head is None:
        row = (
            await session.execute(
                text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            )
        ).one()
        seq, prev = int(row[0]), str(row[1])
    else:
        seq, prev = head.advance()
    at = utcnow()
    # Actor and subject are looked up verbatim (sign-in lock-out), so only secrets are hidden
    # there; contact points in free text (reasons, messages) are masked in the details.
    actor, subject = mask_secrets(actor), mask_secrets(subject)
    details = scrub(json.loads(json.dumps(details, default=str)))
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
    if head is None:
        await session.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": digest})
    else:
        head.hash = digest
    return entry


class ChainHead:
    """The audit chain's head (``audit_head``) held in memory for a batch of entries written in
    one transaction: read once, advanced per entry, written once (:meth:`write`)."""

    READ = text("SELECT seq, hash FROM audit_head WHERE id = 1")
    WRITE = text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1")

    def __init__(self, seq: int, digest: str) -> None:
        self.seq, self.hash, self.moved = seq, digest, False

    @classmethod
    def read(cls, conn: Connection) -> ChainHead:
        row = conn.execute(cls.READ).one()
        return cls(int(row[0]), str(row[1]))

    def advance(self) -> tuple[int, str]:
        """The next entry's number and the hash it chains to."""
        self.seq += 1
        self.moved = True
        return self.seq, self.hash

    def write(self, conn: Connection) -> None:
        if self.moved:
            conn.execute(self.WRITE, {"seq": self.seq, "hash": self.hash})


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
