"""The warning state machine. Every change of ``WarningRecord.state`` goes through :func:`move`."""

from __future__ import annotations

from warnpub.clock import utcnow
from warnpub.problems import conflict
from warnpub.storage.tables import WarningRecord

PENDING, APPROVED, DISPATCHING, COMPLETED = "pending", "approved", "dispatching", "completed"
REJECTED, CANCELLED, EXPIRED = "rejected", "cancelled", "expired"

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, CANCELLED, EXPIRED}),
    APPROVED: frozenset({DISPATCHING, CANCELLED, EXPIRED}),
    DISPATCHING: frozenset({COMPLETED, CANCELLED, EXPIRED}),
    COMPLETED: frozenset({EXPIRED}),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}
FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
LIVE = frozenset({PENDING, APPROVED, DISPATCHING})

_VERB = {
    APPROVED: "approve",
    REJECTED: "reject",
    CANCELLED: "cancel",
    EXPIRED: "expire",
    DISPATCHING: "dispatch",
    COMPLETED: "complete",
}


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def move(warning: WarningRecord, target: str) -> None:
    """Change the state or refuse with a 409 that says why."""
    if not can_move(warning.state, target):
        allowed = sorted(s for s, nxt in TRANSITIONS.items() if target in nxt)
        why = (
            f"it is already {warning.state}"
            if warning.state == target
            else f"it is {warning.state}, and only {' or '.join(allowed)} warnings can be {target}"
        )
        raise conflict(
            f"cannot {_VERB.get(target, target)} warning {warning.id}: {why}",
            kind="illegal-transition",
            state=warning.state,
        )
    warning.state = target
    warning.updated_at = utcnow()
