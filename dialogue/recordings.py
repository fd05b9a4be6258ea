"""Persona recordings for real merchants: the script a voice talent reads, the import of their
takes (converted to the telephone format and loudness-normalised), and what is still missing.

Every file a persona needs (relative to its `audio/` folder) comes from `plan`: whole clips,
the static pieces of clips with `{variables}` (spliced around recorded numbers, dates and values),
the say-as tokens (零…九, 月, 日, 上午…), and the text values the tracks use.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from dialogue.audio import RATE, SAY_WORDS, clip_parts, safe_name
from dialogue.loader import Bundle
from dialogue.render import speak_value

TEXT_KINDS = ("text",)
TAKE_SUFFIXES = (".wav", ".mp3", ".m4a", ".ogg", ".flac", ".aac")
TARGET_DBFS = -20.0  # loudness of every imported take (RMS), so clips spliced together match
SILENT_DBFS = -50.0  # a take quieter than this has no voice in it
CLIPPED_SHARE = 0.001  # a take with more samples than this at full scale was recorded too loud


@dataclass(frozen=True, slots=True)
class Line:
    """One file to record: the exact words and how it is used."""

    text: str
    note: str


def plan(bundle: Bundle, persona_id: str) -> dict[Path, Line]:
    """Every file the persona needs (relative to its audio/ folder) → what to say."""
    persona = bundle.personas[persona_id]
    wanted: dict[Path, Line] = {}
    used_vars: set[str] = set()
    for clip_id, clip in persona.clips.items():
        parts = clip_parts(clip.text)
        if not any(kind == "var" for kind, _, _ in parts):
            path = Path(clip.file).relative_to("audio") if clip.file else Path(f"{clip_id}.wav")
            wanted[path] = Line(clip.text, "整句")
            continue
        for i, (kind, key, words) in enumerate(parts):
            if kind != "static":
                used_vars.add(str(key))
                continue
            before = parts[i - 1][1] if i > 0 and parts[i - 1][0] == "var" else None
            after = parts[i + 1][1] if i + 1 < len(parts) and parts[i + 1][0] == "var" else None
            notes = ([f"接在 {{{before}}} 之后"] if before else []) + ([f"后面接 {{{after}}}"] if after else [])
            wanted[Path(f"{clip_id}.{key}.wav")] = Line(words, f"拼接片段（{clip_id}）：" + "，".join(notes))
    for token in SAY_WORDS:
        wanted[Path("say") / f"{token}.wav"] = Line(token, "数字/日期/时间拼读用的单字词，平读，不带语气")
    values = {"agent_name": persona.name, "brand": persona.brand, **persona.variables}
    text_values = {values[n] for n in used_vars if n in values and n in ("agent_name", "brand")}
    for track in bundle.tracks.values():
        if track.persona != persona_id:
            continue
        for name, var in track.variables.items():
            if name in used_vars and var.type in TEXT_KINDS:  # what defaults and test customers say
                text_values.update(v for v in (var.default, var.sample) if v is not None)
    for value in sorted(text_values):
        wanted[Path("vars") / f"{safe_name(speak_value(value))}.wav"] = Line(value, "变量的值（商品名、品牌等），平读")
    return wanted


def write_script(lines: dict[Path, Line], out: Path) -> int:
    """The recording script as a CSV (UTF-8 with BOM for Excel): file, words, how it is used."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(["文件", "要读的文字", "说明"])
        for path, line in sorted(lines.items(), key=lambda kv: (len(kv[0].parts), str(kv[0]))):
            w.writerow([path.as_posix(), line.text, line.note])
    return len(lines)


def missing_audio(lines: dict[Path, Line], audio_dir: Path) -> list[Path]:
    """Files of the plan that are not under `audio_dir` (validate fails on any)."""
    return sorted(p for p in lines if not (audio_dir / p).is_file())


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)
    silent: list[Path] = field(default_factory=list)
    clipped: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.silent or self.clipped or self.unreadable)


def _take(src: Path, name: Path) -> Path | None:
    stem = str(src / name.with_suffix(""))  # names carry dots (clip.0.wav): append, never replace
    return next((Path(stem + s) for s in TAKE_SUFFIXES if Path(stem + s).is_file()), None)


def import_recordings(lines: dict[Path, Line], src: Path, audio_dir: Path) -> ImportReport:
    """Convert every take found under `src` (same relative names, any common format) to 8 kHz mono
    16-bit WAV at -20 dBFS into `audio_dir`. Silent or clipped takes are reported, not imported."""
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError

    report = ImportReport()
    wanted = {p.with_suffix("").as_posix() for p in lines}
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix.lower() in TAKE_SUFFIXES:
            rel = path.relative_to(src)
            if rel.with_suffix("").as_posix() not in wanted:
                report.extra.append(rel)
    for name in sorted(lines):
        take = _take(src, name)
        if take is None:
            report.missing.append(name)
            continue
        try:
            seg = AudioSegment.from_file(take)
        except (CouldntDecodeError, OSError, IndexError) as exc:
            report.unreadable.append((take.relative_to(src), str(exc).splitlines()[0][:120] if str(exc) else "undecodable"))
            continue
        if len(seg) == 0 or seg.dBFS < SILENT_DBFS:
            report.silent.append(name)
            continue
        samples = seg.get_array_of_samples()
        full = seg.max_possible_amplitude - 1
        if sum(1 for s in samples if abs(s) >= full) > CLIPPED_SHARE * len(samples):
            report.clipped.append(name)
            continue
        out = seg.set_channels(1).set_frame_rate(RATE).set_sample_width(2)
        out = out.apply_gain(TARGET_DBFS - out.dBFS)
        target = audio_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        out.export(target, format="wav")
        report.imported.append(name)
    return report
