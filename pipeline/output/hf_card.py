"""The dataset card (``README.md``) of a Hugging Face export (:mod:`pipeline.output.hf_export`).

Its YAML header is what ``datasets`` and the Hub read: the ``default`` config's splits and files,
the features, languages, licences and size category. Its body says how the corpus was made: the
pipeline version, the models (with their sha256), the filters and their thresholds, hours in and
out, rejects by stage and reason, and the licences (dialogues and hours per licence; input files
without a licence counted and flagged).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from collections import Counter
from typing import Any

import yaml

from pipeline.output.hf_export import DATA_DIR, HfExport, arrow_schema, hf_features, yaml_features
from pipeline.output.run_files import read_table

CARD_NAME = "README.md"
UNKNOWN_LICENCE = "unknown"
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def size_category(n: int) -> str:
    """The Hub's size category of ``n`` examples.

    >>> size_category(1), size_category(12_000)
    ('n<1K', '10K<n<100K')
    """
    for bound, name in _SIZES:
        if n < bound:
            return name
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def licence_ids(export: HfExport) -> list[str]:
    """The licences of the exported dialogues, lower-cased (``unknown`` for those without)."""
    return sorted({(name or UNKNOWN_LICENCE).lower() for name in export.dialogues_by_licence})


def card_header(export: HfExport, features: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML header (a dict)."""
    licences = licence_ids(export) or [UNKNOWN_LICENCE]
    return {
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": s.name, "path": f"{DATA_DIR}/{s.name}-*.parquet"}
                    for s in export.splits
                ],
            }
        ],
        "dataset_info": {
            "features": yaml_features(features),
            "splits": [
                {"name": s.name, "num_bytes": s.num_bytes, "num_examples": s.num_examples}
                for s in export.splits
            ],
            "dataset_size": sum(s.num_bytes for s in export.splits),
        },
        "language": list(export.languages),
        "license": licences[0] if len(licences) == 1 else licences,
        "size_categories": [size_category(export.num_examples)],
        "task_categories": ["text-to-speech", "automatic-speech-recognition"],
        "tags": ["dialogue", "two-speaker", "conversational-speech"],
        "pretty_name": "Two-speaker dialogue corpus",
    }


def _effective_options(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """A stage's options as the run used them: the manifest's (non-default) values over the
    dataclass's defaults."""
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = given.get(f.name, default)
    return out


def _pipeline_version() -> str:
    try:
        return importlib.metadata.version("opendialog-curate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def card_body(output_dir: str, export: HfExport) -> list[str]:
    """The card's markdown body, line by line."""
    from pipeline.dialogue import DialogueOptions
    from pipeline.filters import FilterOptions

    manifest_path = os.path.join(output_dir, "run_manifest.json")
    manifest: dict[str, Any] = {}
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    given = manifest.get("options", {})
    recordings = read_table(output_dir, "recordings").to_pylist()
    rejects = read_table(output_dir, "rejects").to_pylist()
    hours_in = sum(r["duration_s"] for r in recordings) / 3600
    unlicensed = [r for r in recordings if not r.get("licence")]
    lines = [
        "# Two-speaker dialogue corpus",
        "",
        "Curated from long-form recordings by the OpenDialog-style curation pipeline: "
        "decode → VAD → diarization → ASR → two-speaker dialogue segments → quality filters.",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("path/to/this/folder", split="train")',
        'clip = ds[0]["audio"]  # clip["array"], clip["sampling_rate"]',
        "```",
        "",
        "## How it was made",
        "",
        f"- pipeline version: {_pipeline_version()} (git {manifest.get('git_revision', 'unknown')})",
        f"- audio: FLAC, 16-bit, {export.sample_rate} Hz; 2 channels for stereo and "
        "pseudo-stereo dialogues (S1 left)",
    ]
    if given.get("input_metadata"):
        listing = manifest.get("input_metadata", {})
        lines.append(f"- input metadata listing sha256: {listing.get('sha256', 'unknown')}")
    lines += ["", "### Models", ""]
    models = manifest.get("models", {})
    lines += _table(
        ("stage model", "id", "sha256"),
        [
            (name, os.path.basename(str(m.get("id", ""))), str(m.get("sha256", ""))[:16] or "–")
            for name, m in sorted(models.items())
        ],
    )
    lines += ["", "### Filters and their thresholds", ""]
    settings = {
        **_effective_options(DialogueOptions, given),
        **_effective_options(FilterOptions, given),
    }
    lines += _table(("option", "value"), [(f"`--{k}`", v) for k, v in settings.items()])
    lines += ["", "## Hours in and out", ""]
    file_rejects = [r for r in rejects if not r["item_id"]]
    lines += _table(
        ("", "files", "dialogues", "hours"),
        [
            ("input (decoded)", len(recordings), "", f"{hours_in:.4f}"),
            ("input (rejected whole)", len(file_rejects), "", ""),
        ]
        + [
            (f"corpus `{s.name}`", "", s.num_examples, f"{s.seconds / 3600:.4f}")
            for s in export.splits
        ]
        + [
            (f"corpus, {layout}", "", "", f"{seconds / 3600:.4f}")
            for layout, seconds in export.seconds_by_layout.items()
        ],
    )
    lines += ["", "## Rejects", ""]
    counts = Counter(
        (r["stage"], r["reason"], "file" if not r["item_id"] else "item") for r in rejects
    )
    lines += _table(
        ("stage", "reason", "level", "count"),
        [(*key, n) for key, n in sorted(counts.items())],
    )
    lines += ["", "## Licences", ""]
    lines += _table(
        ("licence", "dialogues", "hours"),
        [
            (name or UNKNOWN_LICENCE, export.dialogues_by_licence[name], f"{seconds / 3600:.4f}")
            for name, seconds in export.seconds_by_licence.items()
        ],
    )
    lines.append("")
    if unlicensed:
        lines.append(
            f"**Warning: {len(unlicensed)} of {len(recordings)} input files have no licence** "
            "(their dialogues are marked `unknown`); check their terms before any use."
        )
    else:
        lines.append(f"Every one of the {len(recordings)} input files has a licence.")
    lines.append("")
    return lines


def write_card(output_dir: str, export: HfExport) -> str:
    """Write ``README.md`` (YAML header + body) into the export; returns its path."""
    features = hf_features(arrow_schema(export.sample_rate), export.sample_rate)
    header = yaml.safe_dump(
        card_header(export, features), sort_keys=False, allow_unicode=True, width=1000
    )
    text = "---\n" + header + "---\n\n" + "\n".join(card_body(output_dir, export))
    path = os.path.join(export.export_dir, CARD_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path
