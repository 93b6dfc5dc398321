"""Convert our dialogue corpus to and from the formats other tools train on.

    python -m pipeline.output.interop to-zipvoice-tsv --cuts output/corpus/cuts_train.jsonl.gz --out train.tsv
    python -m pipeline.output.interop to-opendialog --cuts CUTS --out DIR        # DIR/manifest.jsonl + DIR/audio/
    python -m pipeline.output.interop from-opendialog --manifest manifest.en.jsonl --out cuts.jsonl.gz
    python -m pipeline.output.interop to-hf --output-dir output [--out output/hf]   # Hugging Face

* ZipVoice TSV: ``id \\t text \\t wav \\t start \\t end`` (upstream's custom-data format; the text
  starts with ``[S1]``).
* OpenDialog: ``manifest.jsonl`` lines ``{"id", "text", "path"}`` (the released corpus's fields),
  ``path`` relative to the manifest's folder, one audio file per dialogue.
* Hugging Face: Parquet shards per split with the clips as FLAC in an ``audio`` column, and a
  dataset card (:mod:`pipeline.output.hf_export`, :mod:`pipeline.output.hf_card`);
  ``datasets.load_dataset(<export dir>)`` loads it.
* Import: each OpenDialog line becomes a Lhotse ``MonoCut`` with one supervision holding the
  tagged text (and ``custom["text"]``), which ``model.training.train`` reads like our own cuts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.dialogue_script import dialogue_text, starts_with_first_speaker
from pipeline.output import hf_card, hf_export

logger = logging.getLogger(__name__)


def _cut_text(cut) -> str:
    return dialogue_text(cut)


def _cut_source(cut) -> tuple[str, float, float]:
    """(audio path, start, end) of a cut that points into one file."""
    track = cut.tracks[0].cut if hasattr(cut, "tracks") else cut
    source = track.recording.sources[0].source
    return source, round(track.start, 3), round(track.start + track.duration, 3)


def zipvoice_tsv_lines(cuts: Iterable) -> Iterator[str]:
    """One ZipVoice TSV line per cut."""
    for cut in cuts:
        wav, start, end = _cut_source(cut)
        text = " ".join(_cut_text(cut).split())
        yield f"{cut.id}\t{text}\t{wav}\t{start}\t{end}"


def to_opendialog(cuts: Iterable, out_dir: Path, audio_format: str = "flac") -> int:
    """Write ``out_dir/manifest.jsonl`` and one audio file per cut; returns the count."""
    import soundfile as sf

    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(out_dir / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for cut in cuts:
            audio = cut.load_audio()  # (channels, samples)
            rel = Path("audio") / f"{cut.id}.{audio_format}"
            sf.write(out_dir / rel, audio.T, cut.sampling_rate)
            manifest.write(
                json.dumps(
                    {"id": cut.id, "text": _cut_text(cut), "path": str(rel)}, ensure_ascii=False
                )
                + "\n"
            )
            count += 1
    return count


def from_opendialog(manifest: Path, audio_root: Path | None = None):
    """An OpenDialog-format manifest → a Lhotse CutSet (lazy audio, one cut per line).

    Raises:
        ValueError: a line lacks ``id``/``text``/``path`` or its text does not start with [S1].
    """
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    root = audio_root or manifest.parent
    cuts = []
    with open(manifest, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {"id", "text", "path"} - row.keys()
            if missing:
                raise ValueError(f"{manifest}:{number}: missing {sorted(missing)}")
            text = row["text"].strip()
            if not starts_with_first_speaker(text):
                raise ValueError(f"{manifest}:{number}: text must start with [S1]: {text[:40]!r}")
            path = Path(row["path"])
            recording = Recording.from_file(
                path if path.is_absolute() else root / path, recording_id=row["id"]
            )
            sup = SupervisionSegment(
                id=row["id"],
                recording_id=row["id"],
                start=0.0,
                duration=recording.duration,
                channel=0,
                text=text,
                language=row.get("language"),
            )
            cuts.append(
                MonoCut(
                    id=row["id"],
                    start=0.0,
                    duration=recording.duration,
                    channel=0,
                    recording=recording,
                    supervisions=[sup],
                    custom={"text": text},
                )
            )
    return CutSet.from_cuts(cuts)


def export_to_hf(config: hf_export.HfExportConfig) -> hf_export.HfExport:
    """A finished run's corpus → Hugging Face Parquet shards and dataset card.

    Raises:
        ValueError: the run wrote no corpus cuts.
    """
    export = hf_export.write_shards(config)
    hf_card.write_card(config.output_dir, export)
    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.output.interop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tsv = sub.add_parser("to-zipvoice-tsv", help="our cuts → ZipVoice custom-data TSV")
    tsv.add_argument("--cuts", required=True)
    tsv.add_argument("--out", required=True)
    od = sub.add_parser("to-opendialog", help="our cuts → OpenDialog manifest.jsonl + audio")
    od.add_argument("--cuts", required=True)
    od.add_argument("--out", required=True)
    od.add_argument("--audio-format", default="flac", choices=("flac", "wav"))
    imp = sub.add_parser("from-opendialog", help="OpenDialog manifest.jsonl → Lhotse cuts")
    imp.add_argument("--manifest", required=True)
    imp.add_argument("--audio-root", default=None)
    imp.add_argument("--out", required=True)
    hf = sub.add_parser("to-hf", help="a run's output dir → Hugging Face Parquet + dataset card")
    hf.add_argument("--output-dir", required=True, help="the run's --output")
    hf.add_argument("--out", default="", help="the export folder (default: OUTPUT_DIR/hf)")
    hf.add_argument("--shard-rows", type=int, default=1000, help="dialogues per Parquet shard")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        if args.command == "to-hf":
            if not os.path.isdir(args.output_dir):
                raise FileNotFoundError(f"--output-dir {args.output_dir} does not exist")
            export = export_to_hf(
                hf_export.HfExportConfig(args.output_dir, args.out, args.shard_rows)
            )
            print(f"{export.num_examples} dialogues → {export.export_dir}")
            return 0
        if args.command == "from-opendialog":
            cuts = from_opendialog(
                Path(args.manifest), Path(args.audio_root) if args.audio_root else None
            )
            cuts.to_file(args.out)
            print(f"{len(cuts)} cuts → {args.out}")
            return 0
        from lhotse import CutSet

        if not os.path.isfile(args.cuts):
            raise FileNotFoundError(f"--cuts {args.cuts} does not exist")
        cuts = CutSet.from_file(args.cuts)
        if args.command == "to-zipvoice-tsv":
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", encoding="utf-8") as out:
                n = sum(out.write(line + "\n") > 0 for line in zipvoice_tsv_lines(cuts))
            print(f"{n} lines → {args.out}")
        else:
            n = to_opendialog(cuts, Path(args.out), args.audio_format)
            print(f"{n} dialogues → {args.out}/manifest.jsonl")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
