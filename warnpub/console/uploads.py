"""Roster files kept between the dry run and the confirmation.

A dry run stores the uploaded bytes under a random id (``secrets.token_urlsafe``) in
``[console] upload_dir`` (default: ``<system temp>/warnpub-console-uploads``), with a small
JSON note of who uploaded it and its file name. Only the same operator can confirm it; files
older than ``[console] upload_ttl_minutes`` are removed at the next upload and refused.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from warnpub.config import Settings

_ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    filename: str
    operator: str
    data: bytes


def directory(settings: Settings) -> Path:
    base = settings.console.upload_dir or str(Path(tempfile.gettempdir()) / "warnpub-console-uploads")
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _sweep(path: Path, ttl_s: float) -> None:
    cutoff = time.time() - ttl_s
    for f in path.glob("*"):
        try:
            if f.stat().st_mtime < cutoff:
                f.unlink()
        except OSError:
            pass


def keep(settings: Settings, data: bytes, filename: str, operator: str) -> str:
    path = directory(settings)
    _sweep(path, settings.console.upload_ttl_minutes * 60)
    upload_id = secrets.token_urlsafe(24)
    (path / f"{upload_id}.bin").write_bytes(data)
    (path / f"{upload_id}.json").write_text(
        json.dumps({"filename": filename, "operator": operator}), "utf-8"
    )
    return upload_id


def take(settings: Settings, upload_id: str, operator: str) -> Upload | None:
    """The upload, if it exists, is fresh and belongs to ``operator``."""
    if not _ID.match(upload_id):
        return None
    path = directory(settings)
    data_file, note_file = path / f"{upload_id}.bin", path / f"{upload_id}.json"
    try:
        if time.time() - data_file.stat().st_mtime > settings.console.upload_ttl_minutes * 60:
            return None
        note = json.loads(note_file.read_text("utf-8"))
        data = data_file.read_bytes()
    except (OSError, ValueError):
        return None
    if note.get("operator") != operator:
        return None
    return Upload(upload_id, str(note.get("filename", "roster.csv")), operator, data)


def drop(settings: Settings, upload_id: str) -> None:
    if _ID.match(upload_id):
        for suffix in (".bin", ".json"):
            (directory(settings) / f"{upload_id}{suffix}").unlink(missing_ok=True)
