"""The internal CAP 1.2 model: an alert, its info blocks, resources and areas.

Every element OASIS CAP 1.2 defines has a field here, so nothing an agency sends is lost between
intake and the partner feeds. Field names are snake_case; the models double as the documented
JSON schema agencies post. The XML element name of each field is in :mod:`warnpub.cap.elements`.

The models check values only as far as the CAP 1.2 XML schema does (enumerations, date-times
with a UTC offset, numbers, characters XML can carry), so every model serialises to
schema-valid XML. Rules that go further (expires after sent, closed polygons, references on an
Update, ...) live in :mod:`warnpub.cap.rules`, which reports rather than refuses. That is why a
``references`` entry that is not ``sender,identifier,sent`` is kept verbatim in
``Alert.malformed_references`` instead of failing the parse.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

CAP_DATETIME_EXAMPLE = "2026-07-01T08:00:00+08:00"

Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]
Category = Literal[
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
    "CBRNE", "Other",
]  # fmt: skip
ResponseType = Literal[
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"
]  # fmt: skip
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]

# --- value types shared by the models ---------------------------------------------------------

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CAP_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(?:-[a-zA-Z0-9]{1,8})*")


def _xml_chars(value: str) -> str:
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise ValueError(
            f"contains the character U+{ord(bad.group()):04X}, which XML cannot carry; remove it"
        )
    return value


def _time_as_text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"write the time as text like {CAP_DATETIME_EXAMPLE}, not as a number")
    return value


def _aware(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(
            f"the time has no UTC offset; give a UTC offset, e.g. {CAP_DATETIME_EXAMPLE}"
        )
    if offset.total_seconds() % 60:
        raise ValueError("the UTC offset must be whole minutes, e.g. +08:00")
    return value.replace(microsecond=0)


def _language_tag(value: str) -> str:
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a language tag like zh-CN or en-US")
    return value


Text = Annotated[str, AfterValidator(_xml_chars)]
"""A string XML can carry (no control characters other than tab and newlines)."""

CapDateTime = Annotated[datetime, BeforeValidator(_time_as_text), AfterValidator(_aware)]
"""A date-time with a UTC offset. CAP carries whole seconds, so fractions are dropped."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
Point = tuple[Finite, Finite]
"""One ``(latitude, longitude)`` pair in WGS 84 degrees."""


def parse_cap_datetime(text: str) -> datetime:
    """Parse a CAP date-time (``2026-07-01T08:00:00+08:00``); ValueError says what is wrong."""
    if not _CAP_DATETIME.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a CAP date-time; write it like {CAP_DATETIME_EXAMPLE} "
            "(whole seconds and a UTC offset, no Z)"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time") from None


def cap_datetime(value: datetime) -> str:
    """Format a date-time the way CAP writes it; UTC is ``-00:00`` as CAP 1.2 §3.3.2 asks."""
    text = value.isoformat(timespec="seconds")
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def decimal_text(value: float) -> str:
    """Write a number as an xs:decimal (never in exponent notation)."""
    # -0.0 as 0.0 (not "-0.0", nor "0"): equal numbers are written alike, so that writing,
    # reading and writing again gives the same bytes.
    return format(Decimal(repr(abs(value) if value == 0 else value)), "f")


def _parse_decimal(text: str, what: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"{what} {text!r} is not a decimal number")
    return float(text)


def _parse_point(token: str, what: str) -> Point:
    parts = token.split(",")
    if len(parts) != 2 or not all(_DECIMAL.fullmatch(part) for part in parts):
        raise ValueError(
            f"{what} {token!r} is not 'lat,lon' (two decimal numbers joined by a comma, no space)"
        )
    return float(parts[0]), float(parts[1])


def parse_polygon(text: str) -> list[Point]:
    """Parse CAP polygon text: whitespace-separated ``lat,lon`` pairs."""
    return [_parse_point(token, f"point {number}") for number, token in enumerate(text.split(), 1)]


def polygon_text(points: list[Point]) -> str:
    """Write a polygon as CAP text."""
    return " ".join(f"{decimal_text(lat)},{decimal_text(lon)}" for lat, lon in points)


def _polygon_from_text(value: object) -> object:
    return parse_polygon(value) if isinstance(value, str) else value


Polygon = Annotated[list[Point], BeforeValidator(_polygon_from_text)]


class CapModel(BaseModel):
    """Base of the CAP models: unknown fields are refused, so a misspelt field is never lost."""

    model_config = ConfigDict(extra="forbid")


# --- levels -----------------------------------------------------------------------------------


class Level(StrEnum):
    """The four warning colours of China's standard (I–IV), highest first."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def severity(self) -> Severity:
        """The CAP severity this level is sent as."""
        return _SEVERITY_BY_LEVEL[self]

    @property
    def rank(self) -> int:
        """4 for red down to 1 for blue; higher is more severe."""
        return _RANK_BY_LEVEL[self]

    @classmethod
    def from_severity(cls, severity: str) -> Level | None:
        """The level a CAP severity maps to; None for ``Unknown`` or anything else."""
        return _LEVEL_BY_SEVERITY.get(severity)


_SEVERITY_BY_LEVEL: dict[Level, Severity] = {
    Level.RED: "Extreme",
    Level.ORANGE: "Severe",
    Level.YELLOW: "Moderate",
    Level.BLUE: "Minor",
}
_LEVEL_BY_SEVERITY: dict[str, Level] = {sev: level for level, sev in _SEVERITY_BY_LEVEL.items()}
_RANK_BY_LEVEL: dict[Level, int] = {Level.RED: 4, Level.ORANGE: 3, Level.YELLOW: 2, Level.BLUE: 1}


def level_for_severity(severity: str) -> Level | None:
    """red↔Extreme, orange↔Severe, yellow↔Moderate, blue↔Minor; None otherwise."""
    return Level.from_severity(severity)


# --- models -----------------------------------------------------------------------------------


class NamedValue(CapModel):
    """A CAP ``valueName``/``value`` pair: an eventCode, parameter or geocode."""

    value_name: Text = Field(
        description="CAP <valueName>: the scheme, e.g. 'CPEAS Geographic Code' or 'SAME'."
    )
    value: Text = Field(description="CAP <value>: the value in that scheme (may be empty).")


# Identifiers and senders name a message (GB/T 35965.1's are about 40 characters); they are
# looked up, audited and logged, so a megabyte of one is refused before any of that.
MAX_NAME_LENGTH = 256


def _reference_token(value: str) -> str:
    if not value or any(char.isspace() or char == "," for char in value):
        raise ValueError(
            "must be non-empty, without spaces or commas (CAP joins it into sender,identifier,sent)"
        )
    return value


class Reference(CapModel):
    """An earlier alert this one names, as CAP writes it: ``sender,identifier,sent``."""

    sender: Annotated[Text, AfterValidator(_reference_token)] = Field(
        max_length=MAX_NAME_LENGTH, description="The <sender> of the earlier alert."
    )
    identifier: Annotated[Text, AfterValidator(_reference_token)] = Field(
        max_length=MAX_NAME_LENGTH, description="The <identifier> of the earlier alert."
    )
    sent: CapDateTime = Field(
        description=f"The <sent> time of the earlier alert, e.g. {CAP_DATETIME_EXAMPLE}."
    )

    def as_cap(self) -> str:
        """The CAP text of this reference: ``sender,identifier,sent``."""
        return f"{self.sender},{self.identifier},{cap_datetime(self.sent)}"

    @classmethod
    def from_cap(cls, text: str) -> Reference:
        """Parse one ``sender,identifier,sent`` entry; ValueError says what is wrong with it."""
        parts = text.split(",")
        if len(parts) != 3:
            raise ValueError(
                f"{text!r} is not sender,identifier,sent: it has {len(parts)} comma-separated "
                "part(s), not 3"
            )
        sender, identifier, sent = parts
        if not sender or not identifier:
            raise ValueError(
                f"{text!r} is not sender,identifier,sent: the sender or identifier is empty"
            )
        try:
            when = parse_cap_datetime(sent)
        except ValueError as exc:
            raise ValueError(
                f"{text!r} is not sender,identifier,sent: the sent part {exc}"
            ) from None
        return cls(sender=sender, identifier=identifier, sent=when)


class Resource(CapModel):
    """A CAP <resource>: a file or link that goes with the info block."""

    resource_desc: Text = Field(description="CAP <resourceDesc>: what the resource is.")
    mime_type: Text = Field(description="CAP <mimeType>, e.g. 'image/png'.")
    size: int | None = Field(default=None, description="CAP <size>: size in bytes.")
    uri: Text | None = Field(default=None, description="CAP <uri>: where to fetch it.")
    deref_uri: Text | None = Field(
        default=None, description="CAP <derefUri>: the content itself, base64-encoded."
    )
    digest: Text | None = Field(
        default=None, description="CAP <digest>: SHA-1 hash of the content."
    )


class Circle(CapModel):
    """A CAP <circle>: a centre point and a radius. Accepts the CAP text 'lat,lon radius' too."""

    lat: Finite = Field(description="Latitude of the centre, WGS 84 degrees (-90 to 90).")
    lon: Finite = Field(description="Longitude of the centre, WGS 84 degrees (-180 to 180).")
    radius_km: Finite = Field(description="Radius in kilometres (0 or more).")

    @model_validator(mode="before")
    @classmethod
    def _from_cap_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        tokens = data.split()
        if len(tokens) != 2:
            raise ValueError(
                f"{data!r} is not 'lat,lon radius' (the centre, a space, the radius in km)"
            )
        lat, lon = _parse_point(tokens[0], "centre")
        return {"lat": lat, "lon": lon, "radius_km": _parse_decimal(tokens[1], "radius")}

    @classmethod
    def from_cap(cls, text: str) -> Circle:
        """Parse CAP circle text ``lat,lon radius``."""
        return cls.model_validate(text)

    def as_cap(self) -> str:
        """The CAP text of this circle: ``lat,lon radius``."""
        return f"{decimal_text(self.lat)},{decimal_text(self.lon)} {decimal_text(self.radius_km)}"


class Area(CapModel):
    """A CAP <area>: where the info applies."""

    area_desc: Text = Field(description="CAP <areaDesc>: the area in words.")
    polygons: list[Polygon] = Field(
        default_factory=list,
        description=(
            "CAP <polygon>s: each a list of [lat, lon] points, first point repeated as the last, "
            "at least four points (the CAP text 'lat,lon lat,lon …' is accepted too)."
        ),
    )
    circles: list[Circle] = Field(default_factory=list, description="CAP <circle>s.")
    geocodes: list[NamedValue] = Field(
        default_factory=list,
        description=(
            "CAP <geocode>s. Division codes go as value_name 'CPEAS Geographic Code' with the "
            "12-digit code, e.g. 320481101000."
        ),
    )
    altitude: Finite | None = Field(
        default=None, description="CAP <altitude>: the floor (or only altitude), in feet."
    )
    ceiling: Finite | None = Field(
        default=None, description="CAP <ceiling>: the top of the area, in feet; needs altitude."
    )


class Info(CapModel):
    """A CAP <info> block: the event, how urgent, severe and certain, and where; one language."""

    language: Annotated[Text, AfterValidator(_language_tag)] = Field(
        default="en-US",
        description="CAP <language>: RFC 3066 tag, e.g. 'zh-CN'. CAP's default is en-US.",
    )
    categories: list[Category] = Field(
        min_length=1, description="CAP <category>s (at least one), e.g. ['Met']."
    )
    event: Text = Field(description="CAP <event>: the type of event, e.g. '暴雨' or 'Flood'.")
    response_types: list[ResponseType] = Field(
        default_factory=list, description="CAP <responseType>s: what people should do."
    )
    urgency: Urgency = Field(description="CAP <urgency>.")
    severity: Severity = Field(
        description="CAP <severity>. Extreme=red, Severe=orange, Moderate=yellow, Minor=blue."
    )
    certainty: Certainty = Field(description="CAP <certainty>.")
    audience: Text | None = Field(default=None, description="CAP <audience>: who it is meant for.")
    event_codes: list[NamedValue] = Field(
        default_factory=list, description="CAP <eventCode>s: system-specific event codes."
    )
    effective: CapDateTime | None = Field(
        default=None,
        description=f"CAP <effective>: when it takes effect, e.g. {CAP_DATETIME_EXAMPLE}.",
    )
    onset: CapDateTime | None = Field(
        default=None, description="CAP <onset>: when the hazard is expected to begin."
    )
    expires: CapDateTime | None = Field(
        default=None, description="CAP <expires>: when the info stops being valid; not before sent."
    )
    sender_name: Text | None = Field(
        default=None, description="CAP <senderName>: the issuing agency's name for people."
    )
    headline: Text | None = Field(default=None, description="CAP <headline>: a short headline.")
    description: Text | None = Field(default=None, description="CAP <description>: the event.")
    instruction: Text | None = Field(
        default=None, description="CAP <instruction>: what people should do."
    )
    web: Text | None = Field(default=None, description="CAP <web>: a link to more information.")
    contact: Text | None = Field(default=None, description="CAP <contact>: who to ask.")
    parameters: list[NamedValue] = Field(
        default_factory=list, description="CAP <parameter>s: system-specific values."
    )
    resources: list[Resource] = Field(default_factory=list, description="CAP <resource>s.")
    areas: list[Area] = Field(default_factory=list, description="CAP <area>s.")

    @property
    def level(self) -> Level | None:
        """The colour level this info's severity maps to, or None."""
        return Level.from_severity(self.severity)


class Alert(CapModel):
    """A CAP 1.2 <alert>: one warning message with its info blocks."""

    identifier: Text = Field(
        max_length=MAX_NAME_LENGTH,
        description="CAP <identifier>: unique for this sender; no spaces, commas, < or &.",
    )
    sender: Text = Field(
        max_length=MAX_NAME_LENGTH,
        description="CAP <sender>: who sends it; no spaces, commas, < or &.",
    )
    sent: CapDateTime = Field(
        description=f"CAP <sent>: when it was sent, with a UTC offset, e.g. {CAP_DATETIME_EXAMPLE}."
    )
    status: Status = Field(
        description="CAP <status>: Actual, Exercise (drills), System, Test, Draft."
    )
    msg_type: MsgType = Field(
        description="CAP <msgType>: Alert, Update (follow-up), Cancel, Ack or Error."
    )
    source: Text | None = Field(default=None, description="CAP <source>: the operator or device.")
    scope: Scope = Field(description="CAP <scope>: Public, Restricted or Private.")
    restriction: Text | None = Field(
        default=None,
        description="CAP <restriction>: who may see it; required when scope is Restricted.",
    )
    addresses: Text | None = Field(
        default=None, description="CAP <addresses>: the recipients; required when scope is Private."
    )
    codes: list[Text] = Field(
        default_factory=list, description="CAP <code>s: special handling codes."
    )
    note: Text | None = Field(default=None, description="CAP <note>: a remark on the message.")
    references: list[Reference] = Field(
        default_factory=list,
        description=(
            "CAP <references>: the earlier alerts this one updates or cancels. Each is an object "
            "or the CAP text 'sender,identifier,sent'; the whole CAP list as one string works too."
        ),
    )
    malformed_references: SkipJsonSchema[list[Text]] = Field(
        default_factory=list,
        description=(
            "Entries of the CAP references list that are not sender,identifier,sent, kept verbatim "
            "so that the rules can name them. Filled from 'references'; never sent by itself."
        ),
    )
    incidents: Text | None = Field(
        default=None, description="CAP <incidents>: incident names this alert belongs to."
    )
    infos: list[Info] = Field(
        default_factory=list, description="CAP <info> blocks, one per language."
    )
    has_signature: SkipJsonSchema[bool] = Field(
        default=False,
        exclude=True,
        description=(
            "True when the CAP XML carried an enveloped XML-DSig <Signature> (verified later, "
            "not here). Set by the XML parser only; never serialised."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _split_references(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("references") is None:
            return data
        raw = data["references"]
        items = raw.split() if isinstance(raw, str) else raw
        if not isinstance(items, list):
            return data
        good: list[Any] = []
        bad: list[Any] = list(data.get("malformed_references") or [])
        for item in items:
            if isinstance(item, str):
                try:
                    good.append(Reference.from_cap(item))
                except ValueError:
                    bad.append(item)
            else:
                good.append(item)
        return {**data, "references": good, "malformed_references": bad}

    def references_text(self) -> str:
        """The CAP <references> text: every entry, well-formed ones first, space-separated."""
        return " ".join([ref.as_cap() for ref in self.references] + self.malformed_references)

    @property
    def level(self) -> Level | None:
        """The highest colour level among the info blocks, or None when none maps to one."""
        levels = [info.level for info in self.infos if info.level is not None]
        return max(levels, key=lambda level: level.rank, default=None)
