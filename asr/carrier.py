"""Calls that never reached the customer: operator announcements, voicemail, call screening,
ring-back music (彩铃) — recognised from the first seconds of the callee's audio.

Two detectors, both cheap:
- `classify_text`: rules on the recogniser's text of the first utterance. Announcements are fixed
  sentences (「您拨打的电话已关机 / 是空号 / 已停机 / 正在通话中 / 暂时无法接通」), so a few key
  words decide, allowing the homophones a small model writes (关机/关闭, 停机/挺机…). A person who
  says 「我现在不方便」 is not a screening assistant: the rules need the announcement's frame
  (您拨打的 / 机主 / 助理 / 留言).
- `tonal_fraction`: music and tones from signal features. A ring-back tone or a note of music
  holds one spectral peak steady for a tenth of a second and more; speech glides (its pitch and
  formants move every few frames) and stops between syllables. The share of frames inside such
  steady runs is near 0 for speech and high for tones and music.

Reason tags are the contract's (dialogue.vocab.UNREACHABLE_REASONS).
"""

from __future__ import annotations

import re

import numpy as np

from asr.normalize import normalize_text

# Key words of each kind of line, as a small model may write them: matched on the characters and,
# failing that, on their sound (toneless pinyin with the usual accent merges, asr.hotwords), so
# 以关机 / 与关机 still read 已关机 and 一战停服务 reads 暂停服务. Order matters: the first kind
# that matches wins (空号 before 无法接通: "空号，无法接通" is an invalid number).
_KEYS: tuple[tuple[str, tuple[str, ...], bool], ...] = (  # (reason, words, needs the announcement's frame)
    ("invalid_number", ("空号", "查证后再拨"), False),
    ("suspended", ("停机", "暂停服务", "欠费"), False),
    ("powered_off", ("关机",), False),
    ("busy", ("正在通话", "通话中", "用户忙", "线路忙", "占线"), True),
    ("voicemail", ("留言", "语音信箱", "提示音后", "嘀声后"), False),
    ("call_screening", ("机主", "智能助理", "智能助手", "电话秘书", "语音助手", "电话助理", "说明来意",
                        "说明您的来意"), False),
    ("no_answer", ("无法接通", "无人接听", "无法接听", "不在服务区"), True),
    ("invalid_number", ("号码不存在", "不存在", "号码有误"), True),
)
# An announcement speaks of "the number you dialled"; alone, 无法接听 or 通话中 could be a person.
_FRAME = ("拨打", "对不起", "稍后再拨", "您所拨", "用户")
# A screening assistant asks what the call is about in place of the owner who cannot answer.
_SCREENING = re.compile(r"接听.{0,6}请问|请问.{0,6}(?:什么事|哪位|来意)")


def _sound(text: str) -> str:
    from asr.hotwords import _fuzzy, _pinyin

    return " " + " ".join(_fuzzy(s) for s in _pinyin(text)) + " "


def _has(norm: str, sound: str, words: tuple[str, ...]) -> bool:
    return any(w in norm for w in words) or any(_sound(w) in sound for w in words)


def classify_text(text: str) -> str | None:
    """The reason tag an announcement / greeting implies, or None (a person, or nothing known)."""
    norm = normalize_text(text)
    if not norm:
        return None
    sound = _sound(norm)
    framed = _has(norm, sound, _FRAME)
    for reason, words, needs_frame in _KEYS:
        if _has(norm, sound, words) and (framed or not needs_frame):
            return reason
    if _SCREENING.search(norm):
        return "call_screening"
    return None


# -- tones and music ---------------------------------------------------------------------------

_FRAME_S = 0.032
_HOP_S = 0.016


def _steady_frames(samples: np.ndarray, rate: int, min_run_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(steady, audible) per 16 ms hop: audible frames whose strongest spectral peak (200-3400 Hz,
    standing well out of its frame) stays within one bin for at least `min_run_s`."""
    x = samples.astype(np.float64)
    if samples.dtype.kind == "i":
        x = x / 32768.0
    n, hop = int(_FRAME_S * rate), int(_HOP_S * rate)
    if len(x) < n * 4:
        return np.zeros(0, bool), np.zeros(0, bool)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    spec = np.abs(np.fft.rfft(frames, axis=1))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spec = spec[:, (freqs >= 200) & (freqs <= 3400)]  # what survives a telephone line
    energy = np.sqrt(np.mean(frames**2, axis=1))
    audible = energy > max(10 ** (-45 / 20), 0.05 * float(np.max(energy)))
    peak = np.argmax(spec, axis=1)
    prominent = spec[np.arange(len(spec)), peak] > 6.0 * (np.median(spec, axis=1) + 1e-12)
    ok = audible & prominent
    steady = np.zeros(len(peak), bool)
    need = max(2, round(min_run_s / _HOP_S))
    start = 0
    for i in range(1, len(peak) + 1):
        if i == len(peak) or not (ok[i] and abs(int(peak[i]) - int(peak[i - 1])) <= 1):
            if i - start >= need and ok[start]:
                steady[start:i] = True
            start = i
    return steady, audible


def tonal_fraction(samples: np.ndarray, rate: int, *, min_run_s: float = 0.12) -> float:
    """Share of the audible frames in steady-peak runs: 1.0 for a tone, ~1 for music, 0.0-0.6
    for (synthetic, very steady) speech — too close to decide alone; see `line_signal`."""
    steady, audible = _steady_frames(samples, rate, min_run_s)
    return float(steady[audible].mean()) if audible.sum() >= 4 else 0.0


def line_signal_s(pcm16k: bytes, speech: list[tuple[float, float]] | None = None) -> float:
    """Seconds of tone or music in 16 kHz PCM: steady-peak audible frames outside the speech
    segments (Silero VAD, which is trained to reject music, decides what is speech)."""
    x = np.frombuffer(pcm16k, "<i2")
    if speech is None:
        from asr.vad import VadConfig, speech_segments

        speech = [(s.start_s, s.speech_end_s) for s in speech_segments(pcm16k, VadConfig())]
    steady, _ = _steady_frames(x, 16000, 0.12)
    t = np.arange(len(steady)) * _HOP_S
    for a, b in speech:
        steady[(t >= a - 0.1) & (t <= b + 0.1)] = False
    return float(steady.sum() * _HOP_S)


def is_line_signal(pcm16k: bytes, min_s: float = 1.5) -> bool:
    """Ring-back tone or music (彩铃) for at least `min_s` rather than a voice: the callee's
    phone is still ringing, or plays music instead of answering."""
    return line_signal_s(pcm16k) >= min_s


def screen_recording(pcm16k: bytes, text: str, first_turn: bool) -> str | None:
    """For a recorded turn with no words in it: "no_answer" when it is ring-back or music (彩铃)
    at the call's first listen. Words are the engine's to judge (`classify_text`)."""
    if not first_turn or text.strip():
        return None
    return "no_answer" if is_line_signal(pcm16k) else None
