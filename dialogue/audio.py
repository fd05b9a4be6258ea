"""Persona clip audio: prerecorded clips, and clips with variables spliced like an IVR's number
playback (二百九十九元, 十一月十一日, 晚上八点) from short say-as recordings.

Files of a persona folder (`scripts_zh/personas/<id>/audio/`):
- `<clip>.wav` — a clip without variables (or the clip's own `file:`);
- `<clip>.<n>.wav` — the n-th static piece of a clip with variables (n counts the pieces of
  text around the `{variables}`, from 0; empty pieces have no file);
- `say/<token>.wav` — one say-as token (digits, 十 百 千 万, units, 上午/明天/周一…);
- `vars/<value>.wav` — a text variable's value (product names…), recorded per value.

pydub is the audio library; espeak-ng (a binary) makes the demo persona's placeholder clips.
"""

from __future__ import annotations

import io
import re
import shutil
import string
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import cn2an
import numpy as np
from pydub import AudioSegment

from dialogue.loader import Bundle, load_persona
from dialogue.render import speak_value
from dialogue.schema import Persona

RATE = 8000  # telephone audio: 8 kHz mono 16-bit
DIGITS = "零一二三四五六七八九"
SAY_WORDS: tuple[str, ...] = (
    *DIGITS, "十", "百", "千", "万", "点", "半", "分", "元", "角", "月", "日", "号", "年",
    "上午", "下午", "晚上", "中午", "早上", "凌晨", "今天", "明天", "后天",
    "周一", "周二", "周三", "周四", "周五", "周六", "周日",
)
_WORDS_LONGEST_FIRST = sorted(SAY_WORDS, key=len, reverse=True)
_SKIP = set(" ，,、-—:：.。")
_FORMATTER = string.Formatter()
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class AudioMissing(FileNotFoundError):
    """A clip, piece, say-as or variable recording is missing; the message names the path."""


class Synth(Protocol):
    """Text → speech, for values no one recorded (placeholder voices, new product names)."""

    def __call__(self, text: str) -> AudioSegment: ...


# -- what a clip is made of ------------------------------------------------------------------
def clip_parts(text: str) -> list[tuple[str, int | str, str]]:
    """The pieces of a clip text: ("static", n, words) and ("var", name, "") in order."""
    parts: list[tuple[str, int | str, str]] = []
    for n, (literal, name, _spec, _conv) in enumerate(_FORMATTER.parse(text)):
        if literal:
            parts.append(("static", n, literal))
        if name is not None:
            parts.append(("var", name, ""))
    return parts


def safe_name(value: str) -> str:
    """A file name for a recorded value: letters, digits and CJK kept, the rest `_`."""
    name = re.sub(r"[^\w\u4e00-\u9fff]+", "_", value.strip()).strip("_")
    return name or "_"


def number_words(number: str) -> list[str]:
    """299 → 二 百 九 十 九; 29.9 → 二 十 九 点 九 (cn2an reading, one token per character)."""
    return list(cn2an.an2cn(number))


def say_tokens(value: Any, kind: str = "") -> list[str]:
    """Say-as tokens for an amount, a digit string, a date or time (spoken text or ISO).

    `kind` is the variable's declared type (amount | digits | date | time); empty: inferred.
    Raises ValueError for text that cannot be spoken from the say-as set.
    """
    text = speak_value(value)
    if kind == "digits" or (not kind and re.fullmatch(r"[\d\- ]{5,}", text)):
        return [DIGITS[int(ch)] for ch in text if ch.isdigit()]
    if kind == "amount" or (not kind and _NUMBER.fullmatch(text)):
        match = _NUMBER.fullmatch(text.replace(",", ""))
        if match is None:
            raise ValueError(f"amount {text!r} is not a number")
        return number_words(match.group())
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _SKIP:
            i += 1
            continue
        m = _NUMBER.match(text, i)
        if m:
            year = text.startswith("年", m.end())
            tokens += [DIGITS[int(d)] for d in m.group()] if year else number_words(m.group())
            i = m.end()
            continue
        word = next((w for w in _WORDS_LONGEST_FIRST if text.startswith(w, i)), None)
        if word is None:
            raise ValueError(f"cannot speak {text!r} from say-as clips (at {text[i:]!r})")
        tokens.append(word)
        i += len(word)
    return tokens


# -- files ------------------------------------------------------------------------------------
def _load(path: Path) -> AudioSegment:
    if not path.is_file():
        raise AudioMissing(f"missing audio file {path}")
    try:
        segment = AudioSegment.from_wav(path)
    except Exception as exc:  # pydub raises several kinds for a bad file
        raise AudioMissing(f"audio file {path} is not a readable WAV: {exc}") from exc
    return segment.set_frame_rate(RATE).set_channels(1).set_sample_width(2)


def _persona_source(source: Bundle | Path, persona_id: str) -> tuple[Persona, Path, dict[str, str]]:
    """The persona, its folder, and variable name → declared type (from the tracks)."""
    if isinstance(source, Bundle):
        types: dict[str, str] = {name: var.type for t in source.tracks.values() if t.persona == persona_id
                 for name, var in t.variables.items()}
        return source.personas[persona_id], source.persona_dir(persona_id), types
    directory = source / "personas" / persona_id if (source / "personas").is_dir() else source
    persona, _ = load_persona(directory)
    if persona.id != persona_id:
        raise ValueError(f"{directory} holds persona {persona.id!r}, not {persona_id!r}")
    return persona, directory, {}


def render_clip_audio(source: Bundle | Path, persona: str, clip_id: str, variables: Mapping[str, Any],
                      *, types: Mapping[str, str] | None = None, tts: Synth | None = None) -> AudioSegment:
    """The audio of one clip with its variables filled in, 8 kHz mono 16-bit.

    `source` is a loaded Bundle, a scripts folder or a persona folder. Amounts, digits, dates and
    times are spliced from `say/`; text values come from `vars/<value>.wav`, else from `tts` when
    given. Raises AudioMissing naming the file, KeyError for a variable with no value.
    """
    spec, directory, declared = _persona_source(source, persona)
    kinds = {**declared, **(types or {})}
    if clip_id not in spec.clips:
        raise KeyError(f"persona {persona!r} has no clip {clip_id!r}")
    clip = spec.clips[clip_id]
    audio_dir = directory / "audio"
    parts = clip_parts(clip.text)
    if not any(kind == "var" for kind, _, _ in parts):
        return _load(directory / clip.file if clip.file else audio_dir / f"{clip_id}.wav")
    values = {"agent_name": spec.name, "brand": spec.brand, **spec.variables, **variables}
    out = AudioSegment.silent(duration=0, frame_rate=RATE)
    for kind, key, _words in parts:
        if kind == "static":
            out += _load(audio_dir / f"{clip_id}.{key}.wav")
            continue
        name = str(key)
        if name not in values:
            raise KeyError(f"clip {clip_id!r} needs variable {name!r}, which has no value")
        out += _variable_audio(audio_dir, values[name], kinds.get(name, ""), tts)
    return out


def _variable_audio(audio_dir: Path, value: Any, kind: str, tts: Synth | None) -> AudioSegment:
    if kind in ("amount", "digits", "date", "time") or not kind:
        try:
            tokens = say_tokens(value, kind)
        except ValueError:
            if kind:  # declared as speakable but is not: the data is wrong
                raise
            tokens = []  # an undeclared value that is plain text
        if tokens:
            out = AudioSegment.silent(duration=0, frame_rate=RATE)
            for token in tokens:
                out += _load(audio_dir / "say" / f"{token}.wav")
            return out
    text = speak_value(value)
    path = audio_dir / "vars" / f"{safe_name(text)}.wav"
    if path.is_file() or tts is None:
        return _load(path)
    return tts(text).set_frame_rate(RATE).set_channels(1).set_sample_width(2)


# -- output -----------------------------------------------------------------------------------
def _ulaw(pcm: np.ndarray) -> bytes:
    """G.711 μ-law encoding of 16-bit samples (the 14-bit reference algorithm, as audioop)."""
    v = pcm.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + 33
    raw_seg = np.floor(np.log2(mag)).astype(np.int32) - 5
    seg = np.clip(raw_seg, 0, 7)
    mantissa = np.where(raw_seg >= 8, 0x0F, (mag >> (seg + 1)) & 0x0F)
    return (((seg << 4) | mantissa) ^ mask).astype(np.uint8).tobytes()


def export_wav(segment: AudioSegment, rate: int = RATE, encoding: str = "pcm") -> bytes:
    """A mono WAV file: 16-bit PCM, or 8-bit G.711 μ-law (`encoding="ulaw"`) for telephony."""
    if encoding not in ("pcm", "ulaw"):
        raise ValueError(f"encoding must be pcm or ulaw, got {encoding!r}")
    segment = segment.set_frame_rate(rate).set_channels(1).set_sample_width(2)
    if encoding == "pcm":
        buf = io.BytesIO()
        segment.export(buf, format="wav")
        return buf.getvalue()
    data = _ulaw(np.frombuffer(segment.raw_data, dtype="<i2"))
    fmt = struct.pack("<HHIIHHH", 7, 1, rate, rate, 1, 8, 0)  # WAVE_FORMAT_MULAW, cbSize 0
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, len(data))
              + b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b""))
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


# -- placeholder voice --------------------------------------------------------------------------
class EspeakSynth:
    """espeak-ng's Mandarin voice: robotic, but enough for demo clips. Needs the binary."""

    # "cmn-latn-pinyin": the plain "cmn" voice reads dictionary words as English-spelled pinyin
    # ("好" → "hao three"); this variant of the same Mandarin voice reads them as Mandarin.
    def __init__(self, voice: str = "cmn-latn-pinyin", speed: int = 250, binary: str = "espeak-ng") -> None:
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} not found on PATH (apt-get install -y espeak-ng)")
        self.binary, self.voice, self.speed = found, voice, speed

    def __call__(self, text: str) -> AudioSegment:
        result = subprocess.run([self.binary, "-v", self.voice, "-s", str(self.speed), "--stdout", text],
                                capture_output=True, check=False, timeout=60)
        if result.returncode != 0 or not result.stdout:
            raise RuntimeError(f"{self.binary} failed on {text!r}: {result.stderr.decode(errors='replace')[:200]}")
        segment = AudioSegment.from_wav(io.BytesIO(result.stdout))
        return segment.set_frame_rate(RATE).set_channels(1).set_sample_width(2)
