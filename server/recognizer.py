"""The call's ASR on the server: one recognizer per process, and the current node's hint phrases."""

from __future__ import annotations

import asyncio
from typing import Any

from core.conversation import SessionState
from server.context import ServerContext


async def recognizer(c: ServerContext) -> Any:
    """The ASR recognizer, loaded once per process (in a worker thread; the first call waits)."""
    fut = c.extras.get("asr")
    if fut is None:
        from asr import load_recognizer

        fut = asyncio.get_running_loop().run_in_executor(c.executor, load_recognizer, c.settings)
        c.extras["asr"] = fut
    try:
        return await asyncio.shield(fut)
    except Exception:
        c.extras.pop("asr", None)  # let a later request try again (e.g. after fixing the model path)
        raise


def hints_for(c: ServerContext, state: SessionState) -> Any:
    """The compiled hints of the node the call waits at, with this call's variable values."""
    from asr.types import AsrHints
    from dialogue.hints import phrases_for

    bundle = c.engine.bundle
    try:
        track = bundle.track(state.track_id)
    except KeyError:
        return AsrHints()
    return AsrHints(phrases_for(bundle.root, track, state.node, state.variables))
