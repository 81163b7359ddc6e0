"""What the simulated gateway holds: accepted messages, counters, faults, receipts due.

Everything here is synchronous and cheap per message (a dict look-up, a cached number check,
a deque append), so the HTTP layer can take thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import phonenumbers

from warnpub.gatewaysim.config import SimConfig

# The JSON field names HttpJsonSms sends and reads by default.
TO, TEXT, REFERENCE, SENDER = "to", "text", "reference", "sender"
WINDOW_S = 1.0
_E164 = re.compile(r"\+[1-9]\d{6,14}")


@lru_cache(maxsize=1 << 18)
def valid_number(number: str) -> bool:
    """An E.164 number that phonenumbers deems valid (cached: each number is parsed once)."""
    if not _E164.fullmatch(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


@dataclass(slots=True)
class Accepted:
    seq: int  # 1-based order of acceptance
    id: str
    reference: str
    to: str
    text: str
    sender: str
    ts: float  # Unix seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "reference": self.reference,
            "to": self.to,
            "text": self.text,
            "sender": self.sender,
            "ts": self.ts,
            "at": iso_ts(self.ts),
        }


@dataclass(slots=True)
class Outcome:
    """The answer for one message: an HTTP status (as if sent alone) and its result object."""

    status: int
    body: dict[str, Any]
    retry_after_s: float | None = None


class SimGateway:
    """The simulator's state and rules. One per simulator app; not thread-safe (one event loop)."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = config.copy()
        self.clock = clock
        self.config = config.copy()
        self.wake: asyncio.Event | None = None  # set by the receipt pump when it runs
        # Imported here: the voice module builds on this one (Outcome, valid_number).
        from warnpub.gatewaysim.voice import VoiceCalls

        self.voice = VoiceCalls(self)
        self.reset(keep_config=True)

    def reset(self, *, keep_config: bool = False) -> None:
        """Forget every message, counter, pending receipt and fault (back to start-up knobs)."""
        if not keep_config:
            self.config = self.initial.copy()
        self.generation = getattr(self, "generation", 0) + 1
        self.run_id = secrets.token_hex(3)
        self.random = random.Random(self.config.seed)
        self.by_reference: dict[str, str] = {}
        self.accepted: list[Accepted] = []
        self.per_number: Counter[str] = Counter()
        self.window: deque[float] = deque()
        self.max_per_1s = 0
        self.outage_until = 0.0
        self.counts: Counter[str] = Counter()
        self.due: list[tuple[float, int, dict[str, Any]]] = []  # (due, seq, receipt) heap
        self.inbound_seq = 0
        self.voice.reset()
        self._poke()

    def apply(self, config: SimConfig, outage_s: float | None) -> None:
        seed_changed = config.seed != self.config.seed
        self.config = config
        if seed_changed:
            self.random = random.Random(config.seed)
        if outage_s is not None:
            self.outage_until = self.clock() + outage_s if outage_s > 0 else 0.0

    # -- request-level faults ------------------------------------------------------------

    def outage_left(self) -> float:
        return max(0.0, self.outage_until - self.clock())

    def inject_error(self) -> bool:
        rate = self.config.error_rate
        return rate > 0 and self.random.random() < rate

    # -- one message ---------------------------------------------------------------------

    def submit(self, item: Any) -> Outcome:
        """Accept, refuse or throttle one message (a JSON object with the default field names)."""
        self.counts["messages"] += 1
        if not isinstance(item, dict):
            return self._refuse(None, "malformed", "each message must be a JSON object", 400)
        raw_ref = item.get(REFERENCE)
        reference = None if raw_ref is None or raw_ref == "" else str(raw_ref)
        if reference is not None:
            known = self.by_reference.get(reference)
            if known is not None:
                self.counts["duplicates"] += 1
                return Outcome(
                    200,
                    {"reference": reference, "id": known, "status": "accepted", "duplicate": True},
                )
        to, text = item.get(TO), item.get(TEXT)
        if not isinstance(to, str) or not valid_number(to):
            return self._refuse(
                reference,
                "invalid_number",
                f"{to!r} is not a valid phone number in E.164 form (+8613800138000)",
                400,
                permanent=True,
            )
        if to in self.config.permanent_numbers:
            return self._refuse(
                reference, "unreachable_number", "the number cannot be reached", 400, permanent=True
            )
        if not isinstance(text, str) or not text.strip():
            return self._refuse(
                reference, "rejected_content", "the text is empty", 400, permanent=True
            )
        now = self.clock()
        self._slide(now)
        limit = self.config.throttle_per_s
        if limit > 0 and len(self.window) >= limit:
            wait = max(0.001, self.window[0] + WINDOW_S - now)
            self.counts["throttled"] += 1
            body = {
                "reference": reference,
                "code": "throttled",
                "error": f"over {limit:g} messages per second",
                "retry_after_s": round(wait, 3),
            }
            return Outcome(429, body, wait)
        return Outcome(200, self._accept(reference, to, text, item.get(SENDER), now))

    def _accept(
        self, reference: str | None, to: str, text: str, sender: Any, now: float
    ) -> dict[str, Any]:
        seq = len(self.accepted) + 1
        provider_id = f"sim-{self.run_id}-{seq}"
        ref = provider_id if reference is None else reference
        if reference is not None:
            self.by_reference[reference] = provider_id
        ts = time.time()
        self.accepted.append(
            Accepted(seq, provider_id, ref, to, text, "" if sender is None else str(sender), ts)
        )
        self.per_number[to] += 1
        self.window.append(now)
        if len(self.window) > self.max_per_1s:
            self.max_per_1s = len(self.window)
        config = self.config
        if config.receipts != "none" and config.callback_url:
            receipt = {
                "id": provider_id,
                "reference": ref,
                "to": to,
                "status": "delivered" if config.receipts == "deliver" else "failed",
                "error": "" if config.receipts == "deliver" else "undeliverable",
                "at": "",
            }
            heapq.heappush(self.due, (now + config.receipt_delay_ms / 1000, seq, receipt))
            self._poke()
        return {"reference": ref, "id": provider_id, "status": "accepted"}

    def _refuse(
        self, reference: str | None, code: str, error: str, status: int, *, permanent: bool = False
    ) -> Outcome:
        self.counts["refused"] += 1
        return Outcome(
            status, {"reference": reference, "code": code, "error": error, "permanent": permanent}
        )

    def _slide(self, now: float) -> None:
        window = self.window
        while window and window[0] <= now - WINDOW_S:
            window.popleft()

    # -- receipts ------------------------------------------------------------------------

    def take_due(self, limit: int) -> list[dict[str, Any]]:
        """Pop up to ``limit`` receipts whose time has come, stamped with the current time."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        stamp = iso_ts(time.time())
        while self.due and self.due[0][0] <= now and len(out) < limit:
            receipt = heapq.heappop(self.due)[2]
            receipt["at"] = stamp
            out.append(receipt)
        return out

    def next_due_in(self) -> float | None:
        return None if not self.due else max(0.0, self.due[0][0] - self.clock())

    def _poke(self) -> None:
        if self.wake is not None:
            self.wake.set()

    # -- reports -------------------------------------------------------------------------

    def stats(self, *, numbers: bool = True) -> dict[str, Any]:
        c = self.counts
        out: dict[str, Any] = {
            "accepted": len(self.accepted),
            "unique_references": len(self.by_reference),
            "duplicates": c["duplicates"],
            "requests": c["requests"],
            "messages": c["messages"],
            "refused": c["refused"],
            "throttled": c["throttled"],
            "injected_errors": c["injected_errors"],
            "outage_refused": c["outage_refused"],
            "unauthorized": c["unauthorized"],
            "max_per_1s": self.max_per_1s,
            "numbers": len(self.per_number),
            "numbers_with_more_than_one": sum(1 for n in self.per_number.values() if n > 1),
            "outage_left_s": round(self.outage_left(), 3),
            "receipts": {
                "pending": len(self.due),
                "sent": c["receipts_sent"],
                "dropped": c["receipts_dropped"],
                "callback_requests": c["callback_requests"],
                "callback_failures": c["callback_failures"],
            },
            "inbound_forwarded": c["inbound_forwarded"],
            "inbound_lost": c["inbound_lost"],  # queued replies the app never took (retries spent)
            "calls": self.voice.stats(),
        }
        if numbers:
            out["per_number"] = dict(self.per_number)
        return out

    def messages(self, since: int, limit: int) -> dict[str, Any]:
        page = self.accepted[since : since + limit]
        return {
            "messages": [m.as_dict() for m in page],
            "next": since + len(page),
            "total": len(self.accepted),
        }


def iso_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
