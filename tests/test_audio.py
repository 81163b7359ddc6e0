"""Speaker audio: names by hash, synthesis with espeak-ng (when installed), GET /audio/….wav."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import IN_CI
from warnpub.api.app import create_app
from warnpub.api.audio import audio_dirs
from warnpub.config import Settings
from warnpub.render.audio import (
    Synthesiser,
    audio_name,
    default_audio_dir,
    find_audio,
    is_audio_name,
    prepare_dir,
    voice_for,
)
from warnpub.storage.engine import Database

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)


def needs_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        if IN_CI:
            pytest.fail("espeak-ng is not installed; .ci/run installs it with apt-get")
        pytest.skip("espeak-ng is not installed here (apt-get install espeak-ng); CI installs it")
    return path


# -- names ----------------------------------------------------------------------------------


def test_names_are_a_hash_of_voice_speed_and_text():
    name = audio_name("请注意", "cmn", 140)
    assert is_audio_name(name) and len(name) == 64
    assert name == audio_name("请注意", "cmn", 140)
    others = {
        audio_name("请注意！", "cmn", 140),
        audio_name("请注意", "en", 140),
        audio_name("请注意", "cmn", 160),
    }
    assert name not in others and len(others) == 3


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../../etc/passwd",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 63 + "/",
        "a" * 64 + "\n",
    ],
)
def test_anything_but_64_hex_digits_is_not_a_name(name):
    assert not is_audio_name(name)
    assert find_audio(name, [Path("/")]) is None


@pytest.mark.parametrize(
    ("language", "voice"),
    [
        ("zh-CN", "cmn"),
        ("zh", "cmn"),
        ("ZH_cn", "cmn"),
        ("en", "en"),
        ("en-GB", "en"),
        ("fr", None),
    ],
)
def test_voice_for_language(language, voice):
    assert voice_for(language) == voice


def test_voices_can_be_configured():
    assert voice_for("zh-HK", {"zh-hk": "yue", "zh": "cmn"}) == "yue"
    assert voice_for("zh-CN", {"zh-hk": "yue", "zh": "cmn"}) == "cmn"


def test_find_audio_looks_in_each_directory(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    name = audio_name("x", "en")
    (second / f"{name}.wav").write_bytes(WAV)
    assert find_audio(name, [first, second]) == second / f"{name}.wav"
    assert find_audio(audio_name("y", "en"), [first, second]) is None


def test_default_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    directory = prepare_dir(default_audio_dir())
    assert directory.parent == tmp_path and directory.stat().st_mode & 0o777 == 0o700
    link = tmp_path / "elsewhere"
    link.symlink_to(tmp_path)
    with pytest.raises(OSError, match="not a directory"):
        prepare_dir(link)


# -- synthesis ------------------------------------------------------------------------------


async def test_without_espeak_nothing_is_synthesised(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    synth = Synthesiser(tmp_path)
    assert not synth.available
    assert await synth.synthesise("请注意", "zh-CN") is None
    assert list(tmp_path.iterdir()) == []


async def test_a_failing_synthesiser_gives_no_audio(tmp_path, caplog):
    false = shutil.which("false")
    assert false is not None
    synth = Synthesiser(tmp_path, espeak=false)
    assert await synth.synthesise("请注意", "zh-CN") is None
    assert "espeak-ng (voice cmn) failed: exit status 1" in caplog.text
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


async def test_no_voice_for_the_language_gives_no_audio(tmp_path):
    synth = Synthesiser(tmp_path, espeak=shutil.which("false") or "false")
    assert await synth.synthesise("Bonjour", "fr") is None


async def test_espeak_synthesises_a_wav_once(tmp_path):
    needs_espeak()
    synth = Synthesiser(tmp_path / "audio")
    assert synth.available
    text = "这是一次应急演练，不是真实预警。请注意，请注意！请立即转移到安全地带。"
    names = await asyncio.gather(*(synth.synthesise(text, "zh-CN") for _ in range(3)))
    assert len(set(names)) == 1 and names[0] == audio_name(text, "cmn", synth.speed_wpm)
    path = tmp_path / "audio" / f"{names[0]}.wav"
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 10_000
    made = path.stat().st_mtime_ns
    assert await synth.synthesise(text, "zh-CN") == names[0]
    assert path.stat().st_mtime_ns == made  # served from the cache, not made again
    english = await synth.synthesise("Attention please. This is a drill.", "en")
    assert english is not None and english != names[0]
    assert [p.name for p in (tmp_path / "audio").iterdir() if p.suffix != ".wav"] == []


# -- GET /audio/{name}.wav --------------------------------------------------------------------


@pytest.fixture
async def audio_client(
    settings: Settings, db: Database, tmp_path: Path
) -> AsyncIterator[TestClient]:
    directory = tmp_path / "speaker-audio"
    directory.mkdir()
    settings.channels = {
        "speaker": [
            {"name": "county", "adapter": "mqtt_speaker", "audio_dir": str(directory)},
            {"name": "other", "adapter": "something-else", "audio_dir": "/etc"},
        ]
    }
    app = create_app(settings, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.audio_dir = directory  # type: ignore[attr-defined]
        yield c


def test_audio_dirs_come_from_speaker_instances(settings):
    settings.channels = {
        "speaker": [
            {"name": "a", "adapter": "mqtt_speaker", "audio_dir": "/srv/a"},
            {"name": "b", "adapter": "mqtt_speaker"},
            {"name": "c", "adapter": "boards", "audio_dir": "/etc"},
        ]
    }
    assert audio_dirs(settings) == [Path("/srv/a"), default_audio_dir()]


async def test_route_serves_a_synthesised_file(audio_client):
    name = audio_name("请注意", "cmn")
    (audio_client.audio_dir / f"{name}.wav").write_bytes(WAV)
    r = await audio_client.get(f"/audio/{name}.wav")
    assert r.status == 200
    assert r.headers["Content-Type"] == "audio/wav"
    assert "immutable" in r.headers["Cache-Control"]
    assert await r.read() == WAV


@pytest.mark.parametrize(
    "path",
    [
        "/audio/..%2F..%2F..%2Fetc%2Fpasswd",
        "/audio/%2e%2e%2f%2e%2e%2fetc%2fpasswd.wav",
        "/audio/..%2Fsecret.wav",
        "/audio/passwd.wav",
        "/audio/" + "A" * 64 + ".wav",
        "/audio/" + "a" * 64,
        "/audio/" + "a" * 64 + ".txt",
        "/audio/" + "a" * 64 + ".wav",  # well-formed, but no such file
    ],
)
async def test_route_refuses_anything_else(audio_client, path):
    # A file outside the audio directories that a traversal would reach.
    (audio_client.audio_dir.parent / "secret.wav").write_bytes(WAV)
    r = await audio_client.get(path)
    assert r.status == 404, path
    assert r.headers["Content-Type"].startswith("application/problem+json")


async def test_route_ignores_symlinks(audio_client, tmp_path):
    name = audio_name("x", "en")
    target = tmp_path / "outside.wav"
    target.write_bytes(WAV)
    os.symlink(target, audio_client.audio_dir / f"{name}.wav")
    assert (await audio_client.get(f"/audio/{name}.wav")).status == 404
