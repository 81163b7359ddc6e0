"""Speaker scripts synthesised to WAV files with espeak-ng, when it is installed.

A loudspeaker group gets the script as text and, where this host has ``espeak-ng`` (the Debian
package of that name), also a WAV file of it at ``<audio_base_url>/<name>.wav``. Without
espeak-ng nothing is synthesised and the group's own synthesiser reads the text.

Files are named by a SHA-256 of the synthesiser, voice, speed and text (64 lower-case hex
digits), so one script is synthesised once however many groups play it, a changed script gets
a new name, and a name can be checked without touching the file system (``GET /audio/…`` serves
only such names: no path can be smuggled in).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

log = logging.getLogger("warnpub.render.audio")

ESPEAK = "espeak-ng"
SUFFIX = ".wav"
# Language (primary subtag, or a full tag) → espeak-ng voice: Mandarin and English.
DEFAULT_VOICES: Mapping[str, str] = {"zh": "cmn", "en": "en"}
DEFAULT_SPEED_WPM = 140  # a little slower than espeak-ng's 175: loudspeakers echo
_NAME = re.compile(r"^[0-9a-f]{64}$")
_PARALLEL = 2  # espeak-ng processes at once per synthesiser
_FAILED_KEPT = 1024
_RETRY_FAILED_S = 300.0  # a script that could not be synthesised is tried again after this


def espeak_path() -> str | None:
    """The espeak-ng executable on PATH, or None when it is not installed."""
    return shutil.which(ESPEAK)


def voice_for(language: str, voices: Mapping[str, str] = DEFAULT_VOICES) -> str | None:
    """The espeak-ng voice for a language tag (exact tag first, then its primary subtag)."""
    table = {k.lower(): v for k, v in voices.items()}
    tag = language.strip().replace("_", "-").lower()
    return table.get(tag) or table.get(tag.split("-", 1)[0])


def audio_name(text: str, voice: str, speed_wpm: int = DEFAULT_SPEED_WPM) -> str:
    """The file name (without ``.wav``) of ``text`` spoken by ``voice`` at ``speed_wpm``."""
    key = "\x00".join((ESPEAK, voice, str(speed_wpm), text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_audio_name(name: str) -> bool:
    """True for names :func:`audio_name` makes (64 lower-case hex digits) and nothing else."""
    return bool(_NAME.fullmatch(name))


def default_audio_dir() -> Path:
    """``<temp dir>/warnpub-audio-<uid>``: used when a speaker instance sets no ``audio_dir``."""
    return Path(tempfile.gettempdir()) / f"warnpub-audio-{os.getuid()}"


def prepare_dir(directory: Path) -> Path:
    """Create ``directory`` (mode 0700) if needed and check that it is a real directory of ours,
    so nobody else can plant a file under a name we will serve."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if directory.is_symlink() or not directory.is_dir():
        raise OSError(f"{directory} is not a directory")
    if info.st_uid != os.getuid():
        raise OSError(f"{directory} belongs to another user (uid {info.st_uid})")
    return directory


def find_audio(name: str, directories: Iterable[Path]) -> Path | None:
    """The file for ``name`` (without ``.wav``) in the first directory holding it; None for a
    name that is not one of ours or a file that does not exist."""
    if not is_audio_name(name):
        return None
    for directory in directories:
        path = directory / f"{name}{SUFFIX}"
        if path.is_file() and not path.is_symlink():
            return path
    return None


class Synthesiser:
    """Synthesises scripts into ``directory`` with espeak-ng; one file per name, made once."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        voices: Mapping[str, str] = DEFAULT_VOICES,
        speed_wpm: int = DEFAULT_SPEED_WPM,
        timeout_s: float = 30.0,
        espeak: str | None = None,
    ) -> None:
        self.directory = directory or default_audio_dir()
        self.voices = dict(voices)
        self.speed_wpm = speed_wpm
        self.timeout_s = timeout_s
        self.espeak = espeak if espeak is not None else espeak_path()
        self._pending: dict[str, asyncio.Future[str | None]] = {}
        self._failed: dict[str, float] = {}  # name → when it could not be made (monotonic)
        self._sem = asyncio.Semaphore(_PARALLEL)

    @property
    def available(self) -> bool:
        return self.espeak is not None

    def __repr__(self) -> str:
        return f"Synthesiser(directory={str(self.directory)!r}, espeak={self.espeak!r})"

    async def synthesise(self, text: str, language: str) -> str | None:
        """The name of a WAV of ``text`` in ``directory``, made now if needed; None when
        espeak-ng is missing, no voice serves ``language``, or synthesis failed (logged)."""
        voice = voice_for(language, self.voices)
        if self.espeak is None or voice is None or not text.strip():
            return None
        name = audio_name(text, voice, self.speed_wpm)
        failed_at = self._failed.get(name)
        if failed_at is not None and time.monotonic() - failed_at < _RETRY_FAILED_S:
            return None
        if (self.directory / f"{name}{SUFFIX}").is_file():
            return name
        pending = self._pending.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[name] = future
        try:
            made = await self._make(self.espeak, text, voice, name)
        except BaseException:
            future.set_result(None)
            raise
        finally:
            self._pending.pop(name, None)
        if made is None:
            self._failed[name] = time.monotonic()
            while len(self._failed) > _FAILED_KEPT:
                del self._failed[next(iter(self._failed))]
        future.set_result(made)
        return made

    async def _make(self, espeak: str, text: str, voice: str, name: str) -> str | None:
        target = self.directory / f"{name}{SUFFIX}"
        async with self._sem:
            try:
                prepare_dir(self.directory)
                fd, part = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".part")
                os.close(fd)
            except OSError as exc:
                log.warning("speaker audio: cannot write to %s: %s", self.directory, exc)
                return None
            try:
                problem = await self._run(espeak, text, voice, part)
                if problem is None:
                    problem = _wav_problem(Path(part))
                if problem is not None:
                    log.warning("speaker audio: espeak-ng (voice %s) failed: %s", voice, problem)
                    return None
                os.chmod(part, 0o644)
                os.replace(part, target)
                return name
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)

    async def _run(self, espeak: str, text: str, voice: str, out: str) -> str | None:
        args = [espeak, "-v", voice, "-s", str(self.speed_wpm), "-b", "1", "-w", out, "--stdin"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return f"cannot run {espeak}: {exc}"
        try:
            _, err = await asyncio.wait_for(
                proc.communicate(text.encode("utf-8")), timeout=self.timeout_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return f"no result within {self.timeout_s:g} s"
        if proc.returncode != 0:
            detail = err.decode("utf-8", "replace").strip()[:200]
            return f"exit status {proc.returncode}: {detail}"
        return None


def _wav_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
        size = path.stat().st_size
    except OSError as exc:
        return f"no output: {exc}"
    if size <= 44 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return f"the output is not a WAV file ({size} bytes)"
    return None
