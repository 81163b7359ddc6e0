"""Structured logging: one JSON object per line; phone numbers, e-mail addresses, secrets and
person names masked.

:func:`mask` is applied to every message, extra and traceback. Besides phone numbers and e-mail
addresses it hides everything that looks like a credential: warnpub's own API keys (``wpk_``),
operator tokens (``wpt_``) and board tokens (``wpb_``), ``Bearer``/``Basic`` credentials,
passwords in URLs (``scheme://user:***@host``), secret query parameters (``?token=***``),
``X-Warnpub-Signature`` values, the signature part of acknowledgement links (``/a/<id>.***``)
and the bound parameters SQLAlchemy prints into its errors (names, numbers, hashes of rows).
Extras whose key names a person (``name``, ``person_name``, ``contact_name``, …) keep only their
first character (:func:`mask_name`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, TextIO

# E.164 numbers (+8613800000000) and bare Chinese mobile numbers (13800000000); not division
# codes (12 digits) or dates.
_PHONE = re.compile(r"(?<![\w+])(\+\d{8,15}|1[3-9]\d{9})(?!\d)")
# (Each starts where a word starts: a match tried at every letter of a long run of letters
# took quadratic time — 16,000 letters 0.35 s, a megabyte of agency text minutes.)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

SECRET_MASK = "***"  # noqa: S105 (the mask, not a secret)
# warnpub's own credentials: API keys wpk_<prefix>_<secret>, operator tokens wpt_<secret>,
# board tokens wpb_<secret>. An API key keeps its public lookup prefix (shown by `agency list`).
_TOKEN = re.compile(r"\b(wp[kbt])_([A-Za-z0-9_-]{8,})")
_KEY_PREFIX = re.compile(r"[0-9a-f]{12}_")
# Authorization header values, wherever they are quoted.
_AUTH_SCHEME = re.compile(
    r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]{6,}"
    r"|\b(Basic)\s+(?=[a-z0-9+/]*[A-Z0-9+/=])[A-Za-z0-9+/]{8,}=*"
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"'<>]*):[^\s@/\"'<>]+@")
# ?token=…&api_key=… ; also key = "value" / key: value in text (config dumps, reprs).
_SECRET_NAMES = (
    r"(?:[A-Za-z_]*(?:password|passwd|secret|token|api_?key|auth_value|apikey|access_key)"  # noqa: S105
    r"|sig|signature|key)"
)
_QUERY_SECRET = re.compile(rf"([?&;]{_SECRET_NAMES}=)[^&\s\"'<>#]+", re.IGNORECASE)
_ASSIGNED_SECRET = re.compile(
    r"((?<![A-Za-z0-9_])[A-Za-z_]*(?:password|passwd|secret|auth_value|api_key|apikey)"
    r"[\"']?\s*[=:]\s*[\"']?)(?!SecretStr\(|\*)([^\s\"',}]+)",
    re.IGNORECASE,
)
# X-Warnpub-Signature: t=…,v1=<hex>
_SIGNATURE = re.compile(r"\b(v1=)[0-9a-fA-F]{16,}")
# Acknowledgement links /a/<delivery id in base 36>.<12-character signature>
_ACK_LINK = re.compile(r"(/a/[0-9a-z]{1,12}\.)[A-Za-z0-9_-]{12}\b")
# SQLAlchemy errors print the row they failed on: "[parameters: (...)]".
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(?:\n|\(Background|$))", re.DOTALL)
# Extras that carry a person's name.
NAME_KEYS = frozenset(
    {"name", "person", "person_name", "contact_name", "relay_name", "display_name", "posted_by"}
)


def mask_secrets(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``***``."""
    text = _SQL_PARAMETERS.sub("[parameters: hidden]", text)
    text = _TOKEN.sub(_token_masked, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1) or m.group(2)} {SECRET_MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{SECRET_MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{SECRET_MASK}", text)
    text = _ASSIGNED_SECRET.sub(lambda m: f"{m.group(1)}{SECRET_MASK}", text)
    text = _SIGNATURE.sub(lambda m: f"{m.group(1)}{SECRET_MASK}", text)
    return _ACK_LINK.sub(lambda m: f"{m.group(1)}{SECRET_MASK}", text)


def _token_masked(m: re.Match[str]) -> str:
    kind, rest = m.group(1), m.group(2)
    if kind == "wpk" and _KEY_PREFIX.match(rest):
        return f"wpk_{rest[:12]}_{SECRET_MASK}"
    return f"{kind}_{SECRET_MASK}"


def mask_contacts(text: str) -> str:
    """Hide all but the last four digits of phone numbers and the local part of e-mails."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "*" * max(0, len(m.group(1)) - 4) + m.group(1)[-4:], text)


def mask(text: str) -> str:
    """Secrets hidden entirely; phone numbers to their last four digits; e-mails to the first
    character of the local part."""
    return mask_contacts(mask_secrets(text))


def mask_name(name: str | None) -> str:
    """A person's name to its first character, the rest one ``*`` each: 张三丰 → 张**."""
    if not name:
        return ""
    name = mask(name.strip())
    return name[:1] + "*" * (len(name) - 1) if name else ""


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, str):
        return mask_name(value) if key in NAME_KEYS else mask(value)
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, key) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = _masked(value, key)
        if record.exc_info:
            doc["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


class MaskingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: _masked(v, k)
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        }
        line = super().format(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return mask(line)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the handler was
    made: a command run in-process (tests, an embedding program) may swap or close the stream
    it started with."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


# aiosqlite's DEBUG lines print every SQL parameter (names, numbers, password hashes).
QUIET = ("apscheduler", "aiohttp.access", "alembic", "aiosqlite")


def quiet_libraries() -> None:
    """Hold the libraries that log too much, or log data, at WARNING whatever the level."""
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel("WARNING")
