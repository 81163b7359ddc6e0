"""``GET /audio/<name>.wav``: speaker scripts synthesised by espeak-ng, for speaker groups.

Names are SHA-256 hex digests (warnpub.render.audio.audio_name); anything else is a 404
before the file system is touched, so no path can be smuggled in. Files are looked up in the
``audio_dir`` of every configured ``mqtt_speaker`` instance, then in the default directory.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.config import Settings
from warnpub.problems import not_found
from warnpub.render.audio import SUFFIX, default_audio_dir, find_audio

routes = RouteTable()
ADAPTER = "mqtt_speaker"
CACHE = "public, max-age=31536000, immutable"  # a name is a hash of its content


def audio_dirs(settings: Settings) -> list[Path]:
    """Where synthesised scripts may be: each speaker instance's ``audio_dir``, then the default."""
    dirs: list[Path] = []
    for entry in settings.channels.get("speaker", []):
        directory = entry.get("audio_dir") if entry.get("adapter") == ADAPTER else None
        if isinstance(directory, str) and directory:
            dirs.append(Path(directory))
    dirs.append(default_audio_dir())
    return list(dict.fromkeys(dirs))


@routes.route(
    "GET",
    "/audio/{file}",
    auth="none",
    summary="A speaker script synthesised to WAV (the audio_url of a loudspeaker play command).",
    errors=(404,),
    response={
        "200": {
            "description": "The WAV file (RIFF, PCM); cacheable for ever",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def audio_file(request: web.Request) -> web.StreamResponse:
    file = request.match_info["file"]
    name = file.removesuffix(SUFFIX) if file.endswith(SUFFIX) else ""
    path = find_audio(name, audio_dirs(services(request).settings)) if name else None
    if path is None:
        raise not_found("no such audio file; names are 64 hex digits followed by .wav")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": CACHE})
