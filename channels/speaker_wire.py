"""The MQTT wire format of village loudspeaker groups: topics and JSON payloads.

Shared by the ``mqtt_speaker`` channel (:mod:`warnpub.channels.speaker_mqtt`) and the speaker
simulator (:mod:`warnpub.speakersim`), so both sides speak exactly the same dialect.

Topic layout (``<address>`` is a device's ``address``, by default ``<topic_prefix>/<code>``
with the village's 12-digit division code, e.g. ``warnpub/speakers/320481101200``)::

    <address>/play    warnpub → group   a play command (QoS 1)             PlayCommand
    <address>/stop    warnpub → group   stop playing a reference (QoS 1)   StopCommand
    <address>/ack     group → warnpub   played / failed, per reference    Ack

See docs/channels.md ("Loudspeakers") for the payloads as JSON.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

DEFAULT_PREFIX = "warnpub/speakers"
PLAY, STOP, ACK = "play", "stop", "ack"
MAX_TOPIC_BYTES = 60_000  # MQTT allows 65,535 bytes; leave room for the suffix
ACK_STATUSES = ("played", "failed")
AckStatus = Literal["played", "failed"]
_REFERENCE_ID = re.compile(r"^(?:wp-)?(\d{1,18})$")
_ROUND_REFERENCE = re.compile(r"^wp-(\d{1,18})-r(\d{1,6})$")


# -- topics -------------------------------------------------------------------------------


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be a speaker group's address (or a topic prefix); None if it can."""
    if not topic:
        return "it is empty"
    if topic != topic.strip():
        return "it starts or ends with white space"
    if "+" in topic or "#" in topic:
        return "it contains an MQTT wildcard (+ or #)"
    if "\x00" in topic:
        return "it contains a NUL character"
    if topic.startswith("$"):
        return "topics starting with $ are reserved for the broker"
    if topic.startswith("/") or topic.endswith("/") or "//" in topic:
        return "it has an empty topic level (a leading, trailing or double /)"
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        return f"it is longer than {MAX_TOPIC_BYTES} bytes"
    return None


def play_topic(address: str) -> str:
    return f"{address}/{PLAY}"


def stop_topic(address: str) -> str:
    return f"{address}/{STOP}"


def ack_topic(address: str) -> str:
    return f"{address}/{ACK}"


def wildcard(prefix: str, suffix: str) -> str:
    """The subscription covering ``suffix`` of every group directly under ``prefix``."""
    return f"{prefix}/+/{suffix}"


def under_prefix(address: str, prefix: str) -> bool:
    """True when ``address`` is ``<prefix>/<one level>``, i.e. covered by :func:`wildcard`."""
    head, sep, rest = address.partition(prefix + "/")
    return not head and bool(sep) and bool(rest) and "/" not in rest


def address_of(topic: str, suffix: str) -> str | None:
    """The group address of ``<address>/<suffix>``; None when the topic does not end so."""
    end = "/" + suffix
    if not topic.endswith(end) or len(topic) == len(end):
        return None
    return topic[: -len(end)]


def delivery_id_of(reference: str) -> int | None:
    """The delivery id in a reference ``wp-<id>`` (or a bare number); None otherwise."""
    found = _REFERENCE_ID.match(reference.strip())
    return int(found.group(1)) if found else None


def round_reference(delivery_id: int, round_no: int) -> str:
    """The reference of a re-broadcast: ``wp-<delivery id>-r<round>`` (round 1 is the
    delivery itself, whose reference is ``wp-<delivery id>``)."""
    if round_no < 2:
        raise ValueError(f"round {round_no}: re-broadcasts are numbered from 2")
    return f"wp-{delivery_id}-r{round_no}"


def round_of(reference: str) -> tuple[int, int] | None:
    """(delivery id, round) of a re-broadcast reference; None for any other reference."""
    found = _ROUND_REFERENCE.match(reference.strip())
    if found is None or int(found.group(2)) < 2:
        return None
    return int(found.group(1)), int(found.group(2))


# -- payloads -----------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """UTC, ISO 8601 with a Z (naive datetimes are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected an ISO 8601 time as a string")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _load(payload: bytes | bytearray | str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    return doc


def _text(doc: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = doc.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{field}: expected a non-empty string")
    return value


def _int(doc: dict[str, Any], field: str, default: int | None = None) -> int:
    value = doc.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: expected an integer")
    return value


def _seconds(doc: dict[str, Any], field: str) -> float:
    value = doc.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: expected a number of seconds")
    if value < 0:
        raise ValueError(f"{field}: must not be negative")
    return float(value)


@dataclass(frozen=True, slots=True)
class PlayCommand:
    """What a speaker group is asked to broadcast (published on ``<address>/play``)."""

    delivery_id: int
    reference: str  # the idempotency key: a group plays each reference once
    text: str  # the speaker script (for the group's own synthesiser, and for the log)
    language: str
    audio_url: str | None  # a WAV of the script, when warnpub synthesised one
    repeat: int  # how many times to play it in a row
    interval_s: float  # pause between two plays
    priority: int
    expires_at: datetime | None  # do not start playing after this
    drill: bool  # an exercise (CAP status Exercise): the script says so too

    def to_json(self) -> bytes:
        return _dump(
            {
                "delivery_id": self.delivery_id,
                "reference": self.reference,
                "text": self.text,
                "language": self.language,
                "audio_url": self.audio_url,
                "repeat": self.repeat,
                "interval_s": self.interval_s,
                "priority": self.priority,
                "expires_at": iso(self.expires_at),
                "drill": self.drill,
            }
        )

    @classmethod
    def from_json(cls, payload: bytes | bytearray | str) -> PlayCommand:
        """Parse a play command; ValueError names the first field that is wrong."""
        doc = _load(payload)
        audio = doc.get("audio_url")
        if audio is not None and not isinstance(audio, str):
            raise ValueError("audio_url: expected a string or null")
        drill = doc.get("drill", False)
        if not isinstance(drill, bool):
            raise ValueError("drill: expected true or false")
        repeat = _int(doc, "repeat", 1)
        if repeat < 1:
            raise ValueError("repeat: must be at least 1")
        return cls(
            delivery_id=_int(doc, "delivery_id"),
            reference=_text(doc, "reference"),
            text=_text(doc, "text"),
            language=_text(doc, "language", required=False) or "zh-CN",
            audio_url=audio,
            repeat=repeat,
            interval_s=_seconds(doc, "interval_s") if "interval_s" in doc else 0.0,
            priority=_int(doc, "priority", 0),
            expires_at=parse_time(doc.get("expires_at"), "expires_at"),
            drill=drill,
        )


@dataclass(frozen=True, slots=True)
class StopCommand:
    """Stop playing (and repeating) ``reference`` (published on ``<address>/stop``)."""

    reference: str
    at: datetime

    def to_json(self) -> bytes:
        return _dump({"reference": self.reference, "at": iso(self.at)})

    @classmethod
    def from_json(cls, payload: bytes | bytearray | str) -> StopCommand:
        doc = _load(payload)
        at = parse_time(doc.get("at"), "at")
        if at is None:
            raise ValueError("at: required")
        return cls(reference=_text(doc, "reference"), at=at)


@dataclass(frozen=True, slots=True)
class Ack:
    """A group's answer on ``<address>/ack``: it played ``reference``, or could not."""

    reference: str
    status: AckStatus
    at: datetime | None = None
    delivery_id: int | None = None  # optional echo of the command's delivery_id
    error: str = ""  # optional: why it failed

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"reference": self.reference, "status": self.status}
        doc["at"] = iso(self.at)
        if self.delivery_id is not None:
            doc["delivery_id"] = self.delivery_id
        if self.error:
            doc["error"] = self.error
        return _dump(doc)

    @classmethod
    def from_json(cls, payload: bytes | bytearray | str) -> Ack:
        doc = _load(payload)
        status = doc.get("status")
        if status not in ACK_STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(ACK_STATUSES)}")
        delivery_id = doc.get("delivery_id")
        if delivery_id is not None and (
            isinstance(delivery_id, bool) or not isinstance(delivery_id, int)
        ):
            raise ValueError("delivery_id: expected an integer")
        error = doc.get("error") or ""
        if not isinstance(error, str):
            raise ValueError("error: expected a string")
        return cls(
            reference=_text(doc, "reference"),
            status=status,
            at=parse_time(doc.get("at"), "at"),
            delivery_id=delivery_id,
            error=error[:300],
        )
