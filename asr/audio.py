"""Audio in: WAV (PCM 8/16/24/32-bit, float, mu-law, A-law), raw PCM / G.711 with a declared
rate, MP3/OGG/FLAC through pydub when ffmpeg is installed. Output is always mono 16-bit PCM at
`target_rate`. Anything that is not audio raises `AudioError` with a message a caller can show.
"""

from __future__ import annotations

import io
import shutil
import struct
from dataclasses import dataclass
from functools import cache
from math import gcd

import numpy as np

from asr.errors import AudioError

__all__ = ["Audio", "AudioError", "Resampler", "decode", "encode_wav", "mulaw_encode", "resample"]

# Accepted spellings of `declared_encoding` (gateway conventions: FreeSWITCH, jambonz, Twilio, RTP).
_PCM16 = {"pcm", "pcm16", "pcm_s16le", "s16le", "linear16", "l16", "slin", "lpcm"}
_MULAW = {"mulaw", "ulaw", "mu-law", "u-law", "pcmu", "g711u", "g711_ulaw", "audio/x-mulaw"}
_ALAW = {"alaw", "a-law", "pcma", "g711a", "g711_alaw", "audio/x-alaw"}

_WAV_PCM, _WAV_FLOAT, _WAV_ALAW, _WAV_MULAW, _WAV_EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_MAX_RATE = 192_000


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono signed 16-bit little-endian PCM."""

    pcm: bytes
    sample_rate: int
    source_rate: int
    source_encoding: str  # "pcm16", "pcm8", "mulaw", "alaw", "float32", "mp3", ...

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    @property
    def samples(self) -> np.ndarray:
        """int16 samples (a read-only view)."""
        return np.frombuffer(self.pcm, dtype="<i2")


# --------------------------------------------------------------------------- G.711 tables


@cache
def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@cache
def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign, exponent, mantissa = a & 0x80, (a >> 4) & 0x07, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def mulaw_decode(data: bytes) -> np.ndarray:
    return _mulaw_table()[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    return _alaw_table()[np.frombuffer(data, dtype=np.uint8)]


def mulaw_encode(samples: np.ndarray) -> bytes:
    """int16 → G.711 mu-law bytes (14-bit reference algorithm, same codes as audioop.lin2ulaw)."""
    v = samples.astype(np.int32) >> 2
    sign = np.where(v < 0, 0x80, 0)
    mag = np.minimum(np.minimum(np.abs(v), 8159) + 33, 0x1FFF)  # audioop saturates at 0x1FFF
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 5, 0, 7)
    mantissa = (mag >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


# --------------------------------------------------------------------------- resampling


@cache
def _filter_bank(up: int, down: int, taps_per_phase: int = 24) -> tuple[np.ndarray, int]:
    """Polyphase bank of a Kaiser-windowed sinc low-pass at the lower Nyquist, shape (up, taps),
    and its delay in output samples. The centre sits on a multiple of `down` so that the delay
    is a whole number of output samples (no sub-sample phase shift)."""
    taps_per_phase = -(-taps_per_phase * max(up, down) // up)  # enough taps when decimating
    n = up * taps_per_phase
    centre = int((n - 1) / 2 // down) * down
    cutoff = 0.5 / max(up, down) * 0.94  # cycles per upsampled sample, a little below Nyquist
    t = np.arange(n) - centre
    window = np.zeros(n)
    window[: 2 * centre + 1] = np.kaiser(2 * centre + 1, 8.0)
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * window * up
    # Phase p holds taps p, p+up, ... reversed, so that output = bank[p] . history.
    return h.reshape(taps_per_phase, up).T[:, ::-1].copy(), centre // down


class Resampler:
    """Stateful rational resampler (streaming-safe: feed frames of any size, get contiguous output)."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if not (0 < src_rate <= _MAX_RATE and 0 < dst_rate <= _MAX_RATE):
            raise AudioError(f"unsupported sample rate {src_rate} → {dst_rate} Hz")
        g = gcd(src_rate, dst_rate)
        self.up, self.down = dst_rate // g, src_rate // g
        bank: np.ndarray = np.ones((1, 1))
        self.delay_out = 0
        if self.up != self.down:
            bank, self.delay_out = _filter_bank(self.up, self.down)
        self._bank = bank
        self.taps = self._bank.shape[1]
        self._hist = np.zeros(self.taps - 1)
        self._t = 0  # next output position, in upsampled samples, relative to the history start

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64)
        if self.up == self.down:
            return x.copy()
        buf = np.concatenate([self._hist, x])
        n_in = len(buf) - (self.taps - 1)  # input positions with full history
        # Output k sits at upsampled position t_k; it needs input index (t_k // up) + taps - 1.
        last = n_in * self.up
        pos = np.arange(self._t, last, self.down)
        out = np.empty(len(pos))
        for lo in range(0, len(pos), 8192):  # bounded memory on long files
            p = pos[lo : lo + 8192]
            idx = (p // self.up)[:, None] + np.arange(self.taps)[None, :]
            out[lo : lo + 8192] = np.einsum("ij,ij->i", buf[idx], self._bank[p % self.up])
        self._t = (pos[-1] + self.down if len(pos) else self._t) - n_in * self.up
        self._hist = buf[n_in:] if self.taps > 1 else np.zeros(0)
        return out


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot resample with the filter delay removed (output length = len * dst / src)."""
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.float64)
    r = Resampler(src_rate, dst_rate)
    want = len(samples) * dst_rate // src_rate
    pad = np.zeros(r.taps * r.down // r.up + r.taps + 1)
    out = np.concatenate([r.process(samples), r.process(pad)])
    return out[r.delay_out : r.delay_out + want]


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


# --------------------------------------------------------------------------- containers


def _parse_wav(data: bytes) -> tuple[np.ndarray, int, str]:
    """→ (float samples in int16 scale, mono), rate, encoding name."""
    if len(data) < 12 or data[8:12] != b"WAVE":
        raise AudioError("RIFF file is not WAVE")
    pos, fmt, payload = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioError("WAV fmt chunk is truncated")
            fmt = body
        elif cid == b"data":
            if size in (0, 0xFFFFFFFF) or (size > len(body) and size >= 0x7FFFF000):
                body = data[pos + 8 :]  # streamed WAV with unknown length: take what is there
            elif size > len(body):
                raise AudioError(f"WAV is truncated: data chunk says {size} bytes, file has {len(body)}")
            payload = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise AudioError("WAV has no fmt chunk")
    if payload is None:
        raise AudioError("WAV has no data chunk (truncated file?)")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAV_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels < 1 or not (1000 <= rate <= _MAX_RATE):
        raise AudioError(f"WAV header is invalid: {channels} channels at {rate} Hz")
    width = max(bits // 8, 1)
    if block_align != channels * width:
        block_align = channels * width
    usable = len(payload) - len(payload) % block_align
    raw = payload[:usable]
    if tag == _WAV_PCM and bits == 16:
        x, enc = np.frombuffer(raw, "<i2").astype(np.float64), "pcm16"
    elif tag == _WAV_PCM and bits == 8:
        x, enc = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0, "pcm8"
    elif tag == _WAV_PCM and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x, enc = (np.where(v >= 1 << 23, v - (1 << 24), v) / 256.0), "pcm24"
    elif tag == _WAV_PCM and bits == 32:
        x, enc = np.frombuffer(raw, "<i4") / 65536.0, "pcm32"
    elif tag == _WAV_FLOAT and bits in (32, 64):
        f = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float64)
        x, enc = np.nan_to_num(f) * 32767.0, f"float{bits}"
    elif tag == _WAV_MULAW and bits == 8:
        x, enc = mulaw_decode(raw).astype(np.float64), "mulaw"
    elif tag == _WAV_ALAW and bits == 8:
        x, enc = alaw_decode(raw).astype(np.float64), "alaw"
    else:
        raise AudioError(f"unsupported WAV encoding (format tag {tag}, {bits} bits)")
    if channels > 1:
        x = x[: len(x) - len(x) % channels].reshape(-1, channels).mean(axis=1)
    return x, rate, enc


def _sniff_compressed(data: bytes) -> str | None:
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    return None


def _decode_compressed(data: bytes, kind: str) -> tuple[np.ndarray, int, str]:
    if shutil.which("ffmpeg") is None and shutil.which("avconv") is None:
        raise AudioError(f"{kind.upper()} input needs ffmpeg on PATH (apt-get install ffmpeg); send WAV instead")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydub warns about audioop's deprecation on import
        from pydub import AudioSegment
        from pydub.exceptions import CouldntDecodeError

    try:
        seg = AudioSegment.from_file(io.BytesIO(data), format=kind)
    except (CouldntDecodeError, IndexError, OSError) as exc:
        raise AudioError(f"could not decode {kind.upper()} audio (truncated or corrupt?)") from exc
    width = seg.sample_width
    dtype: str | None = {1: "i1", 2: "<i2", 4: "<i4"}.get(width)
    if dtype is None:
        raise AudioError(f"unsupported {kind.upper()} sample width {width}")
    x = np.frombuffer(seg.raw_data, dtype=dtype).astype(np.float64) * (32768.0 / (1 << (8 * width - 1)))
    if seg.channels > 1:
        x = x[: len(x) - len(x) % seg.channels].reshape(-1, seg.channels).mean(axis=1)
    return x, int(seg.frame_rate), kind


def _decode_raw(data: bytes, rate: int, encoding: str) -> tuple[np.ndarray, int, str]:
    enc = encoding.strip().lower()
    if enc in _PCM16:
        return np.frombuffer(data[: len(data) - len(data) % 2], "<i2").astype(np.float64), rate, "pcm16"
    if enc in _MULAW:
        return mulaw_decode(data).astype(np.float64), rate, "mulaw"
    if enc in _ALAW:
        return alaw_decode(data).astype(np.float64), rate, "alaw"
    raise AudioError(f"unknown declared encoding {encoding!r}; use pcm16, mulaw or alaw")


def decode(
    data: bytes,
    *,
    declared_rate: int | None = None,
    declared_encoding: str | None = None,
    target_rate: int = 16000,
) -> Audio:
    """Decode any supported input to mono int16 PCM at `target_rate`.

    A container (WAV/MP3/OGG/FLAC) is recognised from its first bytes and its own header wins;
    headerless data needs `declared_rate` (and `declared_encoding`, default pcm16).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AudioError("audio must be bytes")
    data = bytes(data)
    if not data:
        raise AudioError("empty audio input")
    if data[:4] in (b"RIFF", b"RIFX", b"RF64"):
        if data[:4] != b"RIFF":
            raise AudioError(f"{data[:4].decode()} WAV is not supported; send little-endian RIFF WAV")
        x, rate, enc = _parse_wav(data)
    elif (kind := _sniff_compressed(data)) is not None:
        x, rate, enc = _decode_compressed(data, kind)
    elif declared_rate is not None or declared_encoding is not None:
        if declared_rate is None or not (1000 <= declared_rate <= _MAX_RATE):
            raise AudioError(f"raw audio needs a declared sample rate in Hz, got {declared_rate!r}")
        x, rate, enc = _decode_raw(data, declared_rate, declared_encoding or "pcm16")
    else:
        head = data[:8].hex(" ")
        raise AudioError(
            f"not a recognised audio format (first bytes: {head}); send WAV, MP3 or OGG, "
            "or raw audio with a declared encoding and sample rate"
        )
    if len(x) == 0:
        raise AudioError("audio contains no samples (truncated file?)")
    y = resample(x, rate, target_rate) if rate != target_rate else x
    return Audio(to_int16(y).tobytes(), target_rate, rate, enc)


def encode_wav(pcm: bytes, sample_rate: int, encoding: str = "pcm16") -> bytes:
    """Mono WAV bytes from int16 PCM; `encoding` "pcm16" or "mulaw" (for tests and tools)."""
    if encoding == "mulaw":
        payload, tag, bits = mulaw_encode(np.frombuffer(pcm, "<i2")), _WAV_MULAW, 8
    elif encoding == "pcm16":
        payload, tag, bits = pcm, _WAV_PCM, 16
    else:
        raise AudioError(f"cannot encode {encoding!r}")
    width = bits // 8
    fmt = struct.pack("<HHIIHH", tag, 1, sample_rate, sample_rate * width, width, bits)
    if tag != _WAV_PCM:
        fmt += b"\x00\x00"  # cbSize for non-PCM formats
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload))
    return b"RIFF" + struct.pack("<I", len(body) + len(payload) + (len(payload) & 1)) + body + payload + (
        b"\x00" if len(payload) & 1 else b""
    )
