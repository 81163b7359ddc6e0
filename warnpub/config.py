"""Configuration: packaged defaults, then a TOML file, then ``WARNPUB_<SECTION>_<KEY>`` variables.

The documented default file is ``config/warnpub.toml`` (shipped inside the wheel as
``warnpub.defaults/warnpub.toml``). A site file named by ``--config`` or ``WARNPUB_CONFIG`` is
laid over it key by key; environment variables win over both.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from warnpub.problems import FieldError, Problem

LEVELS = ("red", "orange", "yellow", "blue")
SECRET_KEYS = frozenset({"secret_key", "password", "api_key", "token", "secret", "auth_value"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(1_048_576, gt=0)
    # Roster files uploaded to POST /api/v1/audience/import may be this large.
    max_upload_bytes: int = Field(64 * 1_048_576, gt=0)


class DatabaseConfig(_Section):
    url: str = "sqlite+aiosqlite:///var/warnpub.db"
    # PostgreSQL only: the schema (search_path) holding warnpub's tables; empty = the default.
    schema_name: str = ""
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError(
                "use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
            )
        return v


class SecurityConfig(_Section):
    secret_key: str = ""
    token_ttl_minutes: int = Field(720, gt=0)
    # Seconds a valid agency API key is remembered, not looked up again (auth.key_cache); 0: off.
    api_key_cache_seconds: float = Field(2.0, ge=0, le=60)


class GreenChannelRule(_Section):
    agencies: list[str]
    levels: list[Literal["red", "orange", "yellow", "blue"]]


class ReviewConfig(_Section):
    two_person_levels: list[Literal["red", "orange", "yellow", "blue"]] = ["red", "orange"]
    second_approver_roles: list[Literal["operator", "supervisor", "admin"]] = [
        "supervisor",
        "admin",
    ]
    deadline_minutes: dict[str, float] = {"red": 10, "orange": 15, "yellow": 30, "blue": 60}
    green_channel: list[GreenChannelRule] = []

    @field_validator("deadline_minutes")
    @classmethod
    def _every_level(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [lv for lv in LEVELS if lv not in v]
        unknown = [k for k in v if k not in LEVELS]
        if missing or unknown:
            raise ValueError(f"give a deadline for exactly {', '.join(LEVELS)}")
        return v


class Hazard(_Section):
    zh: str
    en: str
    category: str


class CapConfig(_Section):
    division_geocode_names: list[str] = ["CPEAS Geographic Code"]
    hazard_event_code: str = "warnpub:hazard"
    hazards: dict[str, Hazard] = {}
    # PEM files of certificates trusted to sign incoming CAP: a signer's own certificate, or a CA
    # that issued it (see docs/partners.md). Empty: signatures are checked for integrity only.
    trusted_certs: list[str] = []
    # The centre's PEM private key and certificate (chain): published CAP is signed when both are set.
    signing_key: str = ""
    signing_cert: str = ""

    @model_validator(mode="after")
    def _signing_pair(self) -> CapConfig:
        if bool(self.signing_key) != bool(self.signing_cert):
            raise ValueError("give signing_key and signing_cert together (or neither)")
        return self


class TimersConfig(_Section):
    tick_seconds: float = Field(1.0, gt=0)
    lease_seconds: float = Field(30, gt=0)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


ROUTE_CHANNELS = ("sms", "email", "voice", "speaker", "board", "relay")
# Channel kinds that can be configured: the route channels, and webhooks to partner systems
# (which get every released warning, not a route step of a person).
CHANNEL_KINDS = (*ROUTE_CHANNELS, "webhook")
TIER_GROUPS = ("devices", "special_needs", "village_contacts", "rural_residents", "urban_residents")


class AckConfig(_Section):
    roles: list[str] = ["village_contact", "town_duty_officer"]
    # Levels whose messages to those roles ask for an acknowledgement.
    levels: list[Literal["red", "orange", "yellow", "blue"]] = ["red", "orange", "yellow", "blue"]


class AudiencesConfig(_Section):
    phone_region: str = "CN"
    opt_out_levels: list[Literal["red", "orange", "yellow", "blue"]] = ["blue", "yellow"]
    tiers: list[str] = list(TIER_GROUPS)
    routes: dict[str, list[str]] = {"default": ["sms", "email"]}
    ack_required: AckConfig = AckConfig()
    roster_columns: dict[str, list[str]] = {}
    need_labels: dict[str, list[str]] = {}
    role_labels: dict[str, list[str]] = {}

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in TIER_GROUPS]
        if unknown or len(set(v)) != len(v) or set(v) != set(TIER_GROUPS):
            raise ValueError(
                f"list each of {', '.join(TIER_GROUPS)} exactly once, in priority order"
            )
        return v

    @field_validator("routes")
    @classmethod
    def _known_channels(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if "default" not in v:
            raise ValueError("give a default route")
        for rule, steps in v.items():
            for step in steps:
                bad = [c for c in step.split("+") if c not in ROUTE_CHANNELS]
                if bad or not step:
                    raise ValueError(
                        f"route {rule}: {step!r} names unknown channels {bad}; use {', '.join(ROUTE_CHANNELS)}"
                    )
        return v


class DispatchConfig(_Section):
    # How long a claimed delivery stays claimed before another worker may take it over.
    lease_seconds: float = Field(60, gt=0)
    # Deliveries claimed per round, per channel instance.
    claim_batch: int = Field(500, gt=0)
    # Retries of transient failures: exponential backoff with full jitter, up to a deadline.
    retry_base_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    retry_deadline_s: float = Field(3600.0, gt=0)
    # Circuit breaker: this many consecutive failures opens it for open_seconds.
    breaker_failures: int = Field(20, gt=0)
    breaker_open_s: float = Field(10.0, gt=0)
    # A gateway whose recent error rate passes this is demoted until it recovers.
    demote_error_rate: float = Field(0.5, gt=0, le=1)
    # A gateway is demoted while most of its recent messages wait longer than this for a receipt.
    demote_receipt_s: float = Field(120.0, gt=0)
    # A SENT message whose receipt has not come after this becomes final (expired).
    receipt_timeout_s: float = Field(3600.0, gt=0)
    # Plan rows written per transaction when a warning is approved.
    plan_chunk: int = Field(5000, gt=0)
    # "tiers": special needs and the other priority tiers first ([audiences] tiers);
    # "fifo": first come, first served — every target of a warning the same priority, people
    # planned in the order they are read (area order). For comparison (bench/drill.py) only.
    priority_order: Literal["tiers", "fifo"] = "tiers"


class RenderConfig(_Section):
    # A warning's SMS is kept within this many parts; longer text is cut and links to the full text.
    sms_max_parts: int = Field(3, ge=1, le=10)
    # Where the full text of a warning is published ({id} is the warning id).
    full_text_url: str = "http://127.0.0.1:8080/w/{id}"
    default_language: str = "zh-CN"


Milestone = Literal[
    "approved",
    "first_sent",
    "first_delivered",
    "delivered_50",
    "delivered_90",
    "delivered_99",
    "last_acknowledged",
]


class TimeTarget(_Section):
    """A clock the county keeps: ``milestone`` within ``minutes`` of ``since``."""

    name: str = Field(min_length=1, max_length=100)
    milestone: Milestone
    since: Literal["received", "approved"] = "approved"
    minutes: float = Field(gt=0)
    # Only warnings of these levels are held to it.
    levels: list[Literal["red", "orange", "yellow", "blue"]] = list(LEVELS)
    # delivered_NN counted within one tier group (e.g. "special_needs"); empty = every target.
    group: str = ""

    @field_validator("group")
    @classmethod
    def _known_group(cls, v: str) -> str:
        if v and v not in TIER_GROUPS:
            raise ValueError(f"use one of {', '.join(TIER_GROUPS)} (or leave it empty)")
        return v

    @model_validator(mode="after")
    def _group_with_percentile(self) -> TimeTarget:
        if self.group and not self.milestone.startswith("delivered_"):
            raise ValueError(
                f"group applies to delivered_50/90/99 only, not to {self.milestone}; drop it"
            )
        return self


class CoverageTarget(_Section):
    """A share of the targets (of one tier group, or all) that must be reached or acknowledged."""

    name: str = Field(min_length=1, max_length=100)
    percent: float = Field(gt=0, le=100)
    # "reached": delivered or acknowledged; "acknowledged": of the targets asked to acknowledge.
    measure: Literal["reached", "acknowledged"] = "reached"
    levels: list[Literal["red", "orange", "yellow", "blue"]] = list(LEVELS)
    group: str = ""

    @field_validator("group")
    @classmethod
    def _known_group(cls, v: str) -> str:
        if v and v not in TIER_GROUPS:
            raise ValueError(f"use one of {', '.join(TIER_GROUPS)} (or leave it empty)")
        return v


class ReportsConfig(_Section):
    """Coverage-and-time reports (docs/reports.md): the county's clocks and its targets."""

    # Major events: authoritative information out (received → first message sent) within
    # authoritative_minutes, and never later than authoritative_limit_minutes.
    major_levels: list[Literal["red", "orange", "yellow", "blue"]] = ["red", "orange"]
    authoritative_minutes: float = Field(180, gt=0)
    authoritative_limit_minutes: float = Field(300, gt=0)
    time_targets: list[TimeTarget] = [
        TimeTarget(name="reach the public", milestone="delivered_90", minutes=10),
        TimeTarget(
            name="special needs first", milestone="delivered_99", group="special_needs", minutes=10
        ),
    ]
    coverage_targets: list[CoverageTarget] = [
        CoverageTarget(name="everyone reached", percent=95),
        CoverageTarget(
            name="contacts acknowledged",
            measure="acknowledged",
            group="village_contacts",
            percent=90,
        ),
    ]
    # Unreached people and devices shown in text and JSON (CSV files list them all).
    unreached_limit: int = Field(10_000, ge=0)
    # Points per tier on the "delivery over time" chart.
    chart_points: int = Field(100, ge=2, le=1000)
    # Times in tables and on the page are shown in this zone (JSON and CSV carry UTC).
    display_timezone: str = "Asia/Shanghai"

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone name (e.g. Asia/Shanghai)") from None
        return v

    @model_validator(mode="after")
    def _limit_after_target(self) -> ReportsConfig:
        if self.authoritative_limit_minutes < self.authoritative_minutes:
            raise ValueError(
                "authoritative_limit_minutes must not be less than authoritative_minutes"
            )
        return self


class SpeakersConfig(_Section):
    """Village loudspeakers beyond the first play (docs/channels.md, "Loudspeakers")."""

    # Seconds between re-broadcasts of a warning in force on its speaker groups, per level;
    # a level not named is played once (plus the retries of groups that stay silent).
    rebroadcast_every_s: dict[Literal["red", "orange", "yellow", "blue"], float] = {
        "red": 1800.0,
        "orange": 3600.0,
    }
    # At most this many re-broadcasts per warning (0: until it expires or is cancelled).
    max_rounds: int = Field(0, ge=0, le=10_000)

    @field_validator("rebroadcast_every_s")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for level, seconds in v.items():
            if not seconds >= 1:
                raise ValueError(f"{level} = {seconds}: give at least 1 second")
        return v


LADDER_STEPS = ("resend", "duty_officer", "supervisors", "console")


class LadderConfig(_Section):
    """One level's escalation ladder (docs/last-kilometre.md, "Escalation")."""

    # Seconds to wait for an acknowledgement before each step.
    wait_s: float = Field(300.0, gt=0)
    # Taken in order, one per wait: resend (the person's next channel: voice, sms, email),
    # duty_officer (alert the town duty officers), supervisors (alert [escalation] supervisors),
    # console (an escalation in the operator console).
    steps: list[Literal["resend", "duty_officer", "supervisors", "console"]] = []
    # How many times the whole ladder is walked before the person is left as unacknowledged.
    repeat: int = Field(1, ge=1, le=20)


class EscalationConfig(_Section):
    """Acknowledgements and escalation ladders (docs/last-kilometre.md)."""

    # Per level; frozen into a warning when it is released. A level not named never escalates.
    ladders: dict[Literal["red", "orange", "yellow", "blue"], LadderConfig] = {}
    # Channels tried, in this order, by a "resend" step (only those with an instance).
    resend_channels: list[Literal["voice", "sms", "email"]] = ["voice", "sms", "email"]
    # Phone numbers (E.164 or national) and e-mail addresses told of review deadlines that
    # pass and of "supervisors" steps.
    supervisors: list[str] = []
    # How often the auditor looks for ladders that stalled (no timer, or a timer stuck).
    auditor_every_s: float = Field(60.0, gt=0)
    # Lifetime of the signed acknowledgement links, counted from the warning's release.
    link_ttl_hours: float = Field(72.0, gt=0)


class DrillsConfig(_Section):
    """Drills (CAP status Exercise; docs/drills.md)."""

    # Who a drill reaches when its CAP names no WARNPUB_DRILL_AUDIENCE parameter: "area"
    # (everyone and every device in its areas) or "consent" (people with drill_consent, and
    # the areas' devices). A list of people is always named in the CAP itself.
    audience: Literal["area", "consent"] = "area"
    # `warnpub drill run`: the drill warning's level (red/orange need two approvers) and how
    # long to wait for it to complete before printing the report.
    level: Literal["red", "orange", "yellow", "blue"] = "blue"
    wait_s: float = Field(300.0, gt=0)


class ConsoleConfig(_Section):
    """The operator console (docs/console.md): sign-in lock-out, live progress, roster uploads."""

    # A username with this many failed sign-ins within failure_window_minutes is refused for
    # lockout_minutes (counted from the audit log's login.failed entries; a success resets it).
    max_failed_logins: int = Field(5, ge=1, le=1000)
    failure_window_minutes: float = Field(15, gt=0)
    lockout_minutes: float = Field(15, gt=0)
    # How often the live progress view reads the counts of a warning being sent (seconds).
    progress_interval_s: float = Field(1.0, gt=0)
    # Where uploaded rosters wait between the dry run and the confirmation ("" = the system's
    # temporary directory), and how long they are kept.
    upload_dir: str = ""
    upload_ttl_minutes: float = Field(60, gt=0)
    # Audit log entries per page.
    audit_page_size: int = Field(50, ge=1, le=1000)


class ClusterConfig(_Section):
    """Several processes on PostgreSQL (docs/operations.md). SQLite runs one process and
    ignores this section."""

    # Every worker process writes its row in the workers table this often; the rate shares
    # of every gateway instance are recomputed from the rows at the same time.
    heartbeat_s: float = Field(2.0, gt=0)
    # A worker whose row was not written for this long is dead: its row is removed and the
    # others' shares grow. A worker that cannot write its row stops sending after half of it.
    dead_after_s: float = Field(10.0, gt=0)
    # One connection per worker process LISTENs for work (NOTIFY from triggers); polling
    # then only is a fallback, every poll_s. Without it (or while it reconnects) the usual
    # fast polling applies.
    listen: bool = True
    poll_s: float = Field(5.0, gt=0)
    # While claimed rows are in flight their leases are extended this often (0: a third of
    # [dispatch] lease_seconds).
    lease_heartbeat_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _dead_after_beats(self) -> ClusterConfig:
        if self.dead_after_s < 3 * self.heartbeat_s:
            raise ValueError(
                f"dead_after_s ({self.dead_after_s:g}) must be at least three heartbeats "
                f"(3 × heartbeat_s = {3 * self.heartbeat_s:g}): a worker stops sending after "
                "half of it without a heartbeat, before the others take over its share"
            )
        return self


class Settings(_Section):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    security: SecurityConfig = SecurityConfig()
    review: ReviewConfig = ReviewConfig()
    cap: CapConfig = CapConfig()
    timers: TimersConfig = TimersConfig()
    logging: LoggingConfig = LoggingConfig()
    audiences: AudiencesConfig = AudiencesConfig()
    dispatch: DispatchConfig = DispatchConfig()
    render: RenderConfig = RenderConfig()
    reports: ReportsConfig = ReportsConfig()
    speakers: SpeakersConfig = SpeakersConfig()
    drills: DrillsConfig = DrillsConfig()
    escalation: EscalationConfig = EscalationConfig()
    console: ConsoleConfig = ConsoleConfig()
    cluster: ClusterConfig = ClusterConfig()
    # Channel instances by kind: {"sms": [{"name": "sim", "adapter": "http_json", …}], …}.
    # Each adapter validates its own entries (see docs/channels.md).
    channels: dict[str, list[dict[str, Any]]] = {}

    @model_validator(mode="after")
    def _lease_heartbeat_fits(self) -> Settings:
        beat = self.cluster.lease_heartbeat_s
        if beat and beat >= self.dispatch.lease_seconds / 2:
            raise ValueError(
                f"cluster.lease_heartbeat_s ({beat:g}) must be less than half of "
                f"dispatch.lease_seconds ({self.dispatch.lease_seconds:g}): a row is sent only "
                "while at least half of its lease is left"
            )
        return self

    def hazard_for(self, text: str) -> str | None:
        """The hazard code that ``text`` names (a code, a Chinese or an English name)."""
        needle = text.strip()
        for code, hz in self.cap.hazards.items():
            if needle in (code, hz.zh) or needle.lower() == hz.en.lower():
                return code
        return None


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    sections = sorted(Settings.model_fields, key=len, reverse=True)
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("WARNPUB_") or name == "WARNPUB_CONFIG":
            continue
        rest = name[len("WARNPUB_") :].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                out.setdefault(section, {})[rest[len(section) + 1 :]] = _env_value(raw)
                break
    return out


def default_config_text() -> str:
    return resources.files("warnpub.defaults").joinpath("warnpub.toml").read_text("utf-8")


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Effective settings. Raises :class:`Problem` naming the key to fix on bad configuration."""
    environ = os.environ if environ is None else environ
    data = tomllib.loads(default_config_text())
    chosen = path or environ.get("WARNPUB_CONFIG")
    if chosen:
        file = Path(chosen)
        try:
            site = tomllib.loads(file.read_text("utf-8"))
        except FileNotFoundError:
            raise Problem(400, "Bad configuration", f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise Problem(400, "Bad configuration", f"{file} is not valid TOML: {exc}") from None
        if "review" in site and "green_channel" in site["review"]:
            data["review"].pop("green_channel", None)
        data = _deep_merge(data, site)
    data = _deep_merge(data, _env_overrides(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()
        ]
        raise Problem(
            400, "Bad configuration", "the configuration has errors", errors=errors
        ) from None


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret replaced by ``***`` (and passwords in URLs hidden)."""
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if key in SECRET_KEYS or key.endswith(("_secret", "_password", "_key", "_token")):
        return "***" if value else ""
    if key == "url" and isinstance(value, str) and "@" in value and ":" in value.split("@")[0]:
        scheme, _, rest = value.partition("://")
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return value


def show(settings: Settings) -> str:
    """The effective configuration as TOML-like text, secrets masked."""
    lines: list[str] = []
    for section, values in masked(settings.model_dump(mode="json")).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
