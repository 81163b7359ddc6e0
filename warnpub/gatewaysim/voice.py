"""The simulator's voice gateway: call requests in, call outcomes out (signed, after a delay).

``POST /voice/calls`` accepts a call request in the ``http_voice`` adapter's default dialect;
``voice_delay_ms`` later the call "ends" and its outcome is POSTed to the request's
``callback_url``. The outcome is chosen when the call ends: the number's own list in
``voice_outcomes`` (the n-th call to a number takes the n-th entry, the last one repeats), else
``voice_outcome``. Both are knobs of ``POST /control``, so a test decides on request.

A reference is an idempotency key: a request whose reference has a call that is still
ringing, was answered, or failed is answered with that call (``duplicate: true``) and no call
is placed. After an unanswered or busy call the same reference places a new call (the next
attempt): that is how a retry round reaches the person again.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from warnpub.gatewaysim.config import CALL_OUTCOMES
from warnpub.gatewaysim.state import Outcome, iso_ts, valid_number

if TYPE_CHECKING:
    from warnpub.gatewaysim.state import SimGateway

RETRYABLE = frozenset({"no_answer", "busy"})
WINDOW_S = 1.0
ERRORS = {
    "no_answer": "no answer",
    "busy": "the line was busy",
    "failed": "the number is not in service",
}


@dataclass(slots=True)
class Call:
    seq: int
    id: str
    reference: str
    to: str
    text: str
    prompt: str
    language: str
    callback_url: str
    attempt: int  # 1 for the first call of a reference, 2 for its first retry, …
    ts: float  # Unix seconds of acceptance
    outcome: str | None = None  # set when the call has ended

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "reference": self.reference,
            "to": self.to,
            "text": self.text,
            "prompt": self.prompt,
            "language": self.language,
            "attempt": self.attempt,
            "status": self.outcome or "ringing",
            "ts": self.ts,
            "at": iso_ts(self.ts),
        }


class VoiceCalls:
    """Calls of one simulator (owned by its :class:`SimGateway`; one event loop)."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gateway = gateway
        self.wake: asyncio.Event | None = None  # set by the call pump when it runs
        self.reset()

    def reset(self) -> None:
        self.calls: list[Call] = []
        self.by_reference: dict[str, Call] = {}  # the latest call of each reference
        self.ended_per_number: Counter[str] = Counter()
        self.due: list[tuple[float, int, Call]] = []  # (due, seq, call) heap
        self.window: deque[float] = deque()
        self.counts: Counter[str] = Counter()
        self._poke()

    # -- a call request ------------------------------------------------------------------

    def submit(self, item: Any) -> Outcome:
        self.counts["requested"] += 1
        if not isinstance(item, dict):
            return self._refuse(None, "malformed", "send one JSON object (to, text, reference)")
        raw_ref = item.get("reference")
        reference = None if raw_ref is None or raw_ref == "" else str(raw_ref)
        attempt = 1
        if reference is not None:
            last = self.by_reference.get(reference)
            if last is not None and last.outcome not in RETRYABLE:
                self.counts["duplicates"] += 1
                return Outcome(
                    200,
                    {
                        "reference": reference,
                        "id": last.id,
                        "status": last.outcome or "queued",
                        "attempt": last.attempt,
                        "duplicate": True,
                    },
                )
            if last is not None:
                attempt = last.attempt + 1
        config = self.gateway.config
        to, text = item.get("to"), item.get("text")
        if not isinstance(to, str) or not valid_number(to):
            return self._refuse(
                reference,
                "invalid_number",
                f"{to!r} is not a valid phone number in E.164 form (+8613800138000)",
                permanent=True,
            )
        if to in config.permanent_numbers:
            return self._refuse(
                reference, "unreachable_number", "the number cannot be reached", permanent=True
            )
        if not isinstance(text, str) or not text.strip():
            return self._refuse(
                reference, "rejected_content", "the text to read is empty", permanent=True
            )
        callback_url = item.get("callback_url") or config.voice_callback_url
        if not isinstance(callback_url, str) or not _http_url(callback_url):
            return self._refuse(
                reference,
                "malformed",
                "give callback_url, an http(s) URL for the call outcome "
                "(or set voice_callback_url with POST /control)",
            )
        now = self.gateway.clock()
        window = self.window
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        limit = config.throttle_per_s
        if limit > 0 and len(window) >= limit:
            wait = max(0.001, window[0] + WINDOW_S - now)
            self.counts["throttled"] += 1
            body = {
                "reference": reference,
                "code": "throttled",
                "error": f"over {limit:g} calls per second",
                "retry_after_s": round(wait, 3),
            }
            return Outcome(429, body, wait)
        window.append(now)
        seq = len(self.calls) + 1
        call_id = f"call-{self.gateway.run_id}-{seq}"
        prompt, language = item.get("prompt"), item.get("language")
        call = Call(
            seq=seq,
            id=call_id,
            reference=call_id if reference is None else reference,
            to=to,
            text=text,
            prompt=prompt if isinstance(prompt, str) else "",
            language=language if isinstance(language, str) else "",
            callback_url=callback_url,
            attempt=attempt,
            ts=time.time(),
        )
        self.calls.append(call)
        if reference is not None:
            self.by_reference[reference] = call
        heapq.heappush(self.due, (now + config.voice_delay_ms / 1000, seq, call))
        self._poke()
        return Outcome(
            200,
            {"reference": call.reference, "id": call_id, "status": "queued", "attempt": attempt},
        )

    def _refuse(
        self, reference: str | None, code: str, error: str, *, permanent: bool = False
    ) -> Outcome:
        self.counts["refused"] += 1
        return Outcome(
            400, {"reference": reference, "code": code, "error": error, "permanent": permanent}
        )

    # -- calls ending --------------------------------------------------------------------

    def outcome_for(self, number: str) -> str:
        """The outcome of the next call to ``number`` that ends (and count it as ended)."""
        config = self.gateway.config
        planned = config.voice_outcomes.get(number)
        n = self.ended_per_number[number]
        self.ended_per_number[number] += 1
        if planned:
            return planned[min(n, len(planned) - 1)]
        return config.voice_outcome

    def take_due(self, limit: int) -> list[tuple[str, list[dict[str, Any]]]]:
        """Calls whose time has come, ended now: their outcomes grouped by callback URL."""
        now = self.gateway.clock()
        stamp = iso_ts(time.time())
        by_url: dict[str, list[dict[str, Any]]] = {}
        taken = 0
        while self.due and self.due[0][0] <= now and taken < limit:
            call = heapq.heappop(self.due)[2]
            outcome = self.outcome_for(call.to)
            call.outcome = outcome
            self.counts[f"outcome_{outcome}"] += 1
            answered = outcome in ("confirmed", "answered")
            by_url.setdefault(call.callback_url, []).append(
                {
                    "id": call.id,
                    "reference": call.reference,
                    "to": call.to,
                    # "answered" plus the keys pressed, as voice gateways report it.
                    "status": "answered" if answered else outcome,
                    "digits": "1" if outcome == "confirmed" else "",
                    "attempt": call.attempt,
                    "duration_s": 35.0 if answered else 0.0,
                    "error": ERRORS.get(outcome, ""),
                    "at": stamp,
                }
            )
            taken += 1
        return list(by_url.items())

    def next_due_in(self) -> float | None:
        return None if not self.due else max(0.0, self.due[0][0] - self.gateway.clock())

    def _poke(self) -> None:
        if self.wake is not None:
            self.wake.set()

    # -- reports -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        c = self.counts
        return {
            "requested": c["requested"],
            "placed": len(self.calls),
            "unique_references": len(self.by_reference),
            "duplicates": c["duplicates"],
            "refused": c["refused"],
            "throttled": c["throttled"],
            "pending": len(self.due),
            "outcomes": {o: c[f"outcome_{o}"] for o in CALL_OUTCOMES},
            "callbacks_sent": c["callbacks_sent"],
            "callbacks_dropped": c["callbacks_dropped"],
        }

    def page(self, since: int, limit: int) -> dict[str, Any]:
        page = self.calls[since : since + limit]
        return {
            "calls": [c.as_dict() for c in page],
            "next": since + len(page),
            "total": len(self.calls),
        }


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and parts.hostname is not None
    except ValueError:
        return False
