"""Agencies' API keys recently looked up, kept for a few seconds.

During a flood twenty agencies may submit a few hundred warnings a second. Looking each key up
meant a read transaction per request — a database thread's round trip through the busy event
loop, 3–5 ms usually and 50–200 ms in the slowest hundredth (bench/load.py). A key that was
found valid is remembered for ``[security] api_key_cache_seconds`` (2 s by default; 0 turns it
off): the next request with it is answered without reading the database.

What is kept: per database, the key's lookup prefix, its stored hash (a hit is still compared in
constant time, like a lookup) and a copy of the agency's columns; each hit gets an agency object
of its own. Only keys found valid are kept — an unknown, revoked or inactive agency's key is
looked up every time. Revoking a key in this process (the console, the CLI) forgets every
remembered key at once, when the revocation is committed; a revocation by another process (the
CLI while `warnpub serve` runs) takes effect here within ``api_key_cache_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.auth.secrets import KEY_PREFIX, api_key_prefix, key_matches
from warnpub.storage.tables import Agency

MAX_KEYS = 10_000  # remembered at most (all are forgotten beyond: only valid keys get here)


@dataclass(frozen=True, slots=True)
class _Remembered:
    key_hash: str
    agency: dict[str, Any]
    until: float


_keys: dict[tuple[str, str], _Remembered] = {}
_now: Callable[[], float] = time.monotonic  # (tests move it on)


def agency_for(database: str, credential: str | None) -> Agency | None:
    """The agency whose valid key ``credential`` is, if it was found so in the last seconds
    (None: look it up)."""
    prefix = _prefix(credential)
    if prefix is None:
        return None
    found = _keys.get((database, prefix))
    if found is None:
        return None
    assert credential is not None
    if found.until <= _now():
        _keys.pop((database, prefix), None)
        return None
    if not key_matches(credential, found.key_hash):
        return None  # looked up (and refused); the key it resembles stays remembered
    return _copy(found.agency)


def remember(
    database: str, credential: str, key_hash: str, agency: Agency, seconds: float
) -> None:
    """``credential`` was just found to be a valid key of the active ``agency``."""
    prefix = _prefix(credential)
    if prefix is None or seconds <= 0:
        return
    if len(_keys) >= MAX_KEYS:
        _keys.clear()
    columns = {c.key: getattr(agency, c.key) for c in Agency.__table__.columns}
    _keys[(database, prefix)] = _Remembered(key_hash, columns, _now() + seconds)


def forget_all() -> None:
    _keys.clear()


def forget_when_committed(session: AsyncSession) -> None:
    """Forget every remembered key now and once ``session``'s transaction commits (a lookup
    in between would otherwise remember the key as it was before)."""
    forget_all()
    event.listen(session.sync_session, "after_commit", lambda _s: forget_all(), once=True)


def _prefix(credential: str | None) -> str | None:
    if not credential or not credential.startswith(KEY_PREFIX + "_"):
        return None
    return api_key_prefix(credential)


def _copy(columns: dict[str, Any]) -> Agency:
    return Agency(**{k: list(v) if isinstance(v, list) else v for k, v in columns.items()})
