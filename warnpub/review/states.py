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
    # Completed means every delivery is final; the warning is still in force (boards, feeds,
    # loudspeaker repeats) until it expires, so it can still be cancelled.
    # A completed warning sends again when an escalation ladder resends to someone.
    COMPLETED: frozenset({DISPATCHING, CANCELLED, EXPIRED}),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}
FINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
# In force or on its way: may be cancelled (by an operator or an approved CAP Cancel).
LIVE = frozenset({PENDING, APPROVED, DISPATCHING, COMPLETED})

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
