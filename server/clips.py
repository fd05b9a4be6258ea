"""Clip audio for the gateway: `GET /v1/clips/{persona}/{clip}.wav?rate=8000&encoding=ulaw|pcm`
plus the clip's variables in the query (as dialogue.render.clip_url builds the play URLs).

Rendered with the conversation designer's dialogue.audio (pydub: recorded clip, or static pieces
spliced with say-as recordings), transcoded to the asked rate/encoding, and cached on disk under
<cache_dir>/clips keyed by everything that shapes the bytes (so a track reload with new text is
a new key). Open (no signature): the URLs are handed to the gateway's media player.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response

from dialogue.render import clip_variables
from server.context import ServerContext, ctx
from server.errors import NotFound, Unprocessable
from server.models import error_docs

ENCODINGS = {"ulaw": "ulaw", "mulaw": "ulaw", "pcm": "pcm", "pcm16": "pcm"}
RESERVED = {"rate", "encoding"}


def _cache_dir(c: ServerContext) -> Path:
    path = Path(c.settings.cache_dir) / "clips"
    path.mkdir(parents=True, exist_ok=True)
    return path


def render_clip(c: ServerContext, persona_id: str, clip: str, variables: dict[str, str], rate: int,
                encoding: str) -> Path:
    """The cached WAV file for this clip rendering (rendered now when missing). Runs in a worker thread."""
    from dialogue.audio import AudioMissing, export_wav, render_clip_audio

    bundle = c.engine.bundle
    persona = bundle.personas[persona_id]
    spec = persona.clips[clip]
    key = hashlib.sha256(repr((persona_id, clip, spec.text, getattr(spec, "file", None), sorted(variables.items()),
                               rate, encoding, str(bundle.persona_dir(persona_id)))).encode()).hexdigest()[:32]
    path = _cache_dir(c) / f"{persona_id}-{clip}-{key}.wav"
    if path.is_file():
        return path
    try:
        segment = render_clip_audio(bundle, persona_id, clip, variables)
        data = export_wav(segment, rate, encoding)
    except AudioMissing as exc:
        raise NotFound(f"no audio for clip {clip!r} of persona {persona_id!r}: {Path(str(exc).split()[-1]).name}"
                       ) from None
    except (KeyError, ValueError) as exc:
        raise Unprocessable(f"clip {clip!r}: {exc.args[0] if exc.args else exc}") from None
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: concurrent renders of one clip never serve a half file
    return path


def register(app: FastAPI) -> None:
    @app.get("/v1/clips/{persona}/{clip}.wav", tags=["clips"], response_class=Response,
             responses={200: {"description": "WAV audio", "content": {"audio/wav": {}}},
                        **error_docs(404, 422)})
    async def clip_audio(
        request: Request,
        persona: Annotated[str, PathParam(max_length=64)],
        clip: Annotated[str, PathParam(max_length=64)],
        rate: Annotated[int, Query(ge=8000, le=48000, description="sample rate, Hz")] = 8000,
        encoding: Annotated[str, Query(pattern="^(ulaw|mulaw|pcm|pcm16)$", description="ulaw | pcm")] = "pcm",
    ) -> Response:
        """A persona clip as WAV (variables of the clip from the query, as in the play URLs)."""
        c = ctx(request)
        bundle = c.engine.bundle
        if persona not in bundle.personas:
            raise NotFound(f"unknown persona {persona!r}")
        if clip not in bundle.personas[persona].clips:
            raise NotFound(f"persona {persona!r} has no clip {clip!r}")
        wanted = set(clip_variables(bundle.personas[persona], clip))
        variables: dict[str, Any] = {k: v[:200] for k, v in request.query_params.items()
                                     if k in wanted and k not in RESERVED}
        path = await asyncio.get_running_loop().run_in_executor(
            c.executor, render_clip, c, persona, clip, variables, rate, ENCODINGS[encoding])
        return FileResponse(path, media_type="audio/wav",
                            headers={"Cache-Control": "public, max-age=86400"})
