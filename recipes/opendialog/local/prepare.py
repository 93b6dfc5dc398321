"""Gather the curated cuts for training and build a split-prompt test list.

Usage example:
    python recipes/opendialog/local/prepare.py --curated data/curated --out data/prepared

Writes ``OUT/cuts.jsonl.gz`` (every split of the curated corpus: a toy corpus trains on all of it)
and ``OUT/test_list.tsv`` in ZipVoice's 6-column split-prompt format
(``name  spk1_text  spk2_text  spk1_wav  spk2_wav  text``): each speaker's prompt is its longest turn
(up to 8 s) in the dialogue, and the text to synthesize is the dialogue's own script. The dialogue's real audio
goes to ``OUT/ground_truth/`` so the evaluation can score it as its reference row.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import soundfile as sf

logger = logging.getLogger(__name__)

MAX_PROMPT_S = 8.0  # a voice prompt is a few seconds of one speaker (ZipVoice uses 3-10 s)


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--curated", required=True, help="the curation run's --output")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-items", type=int, default=4, help="test list length")
    return parser.parse_args()


def main() -> None:
    from lhotse import CutSet

    from core.dialogue_script import dialogue_text

    args = get_args()
    curated, out = Path(args.curated), Path(args.out)
    parts = sorted((curated / "lhotse").glob("cuts_*.jsonl.gz"))
    if not parts:
        raise SystemExit(f"no curated cuts under {curated}/lhotse: run stage 1 first")
    cuts = CutSet.from_cuts(c for p in parts for c in CutSet.from_file(p))
    if len(cuts) == 0:
        raise SystemExit("the curated corpus holds no dialogue")
    out.mkdir(parents=True, exist_ok=True)
    cuts.to_file(out / "cuts.jsonl.gz")
    prompts = out / "prompts"
    prompts.mkdir(exist_ok=True)
    rows = []
    for cut in list(cuts)[: args.max_items]:
        prompt_turn = {}  # each speaker's prompt: their longest turn up to MAX_PROMPT_S
        for sup in sorted(cut.supervisions, key=lambda s: s.start):
            best = prompt_turn.get(sup.speaker)
            if sup.duration <= MAX_PROMPT_S and (best is None or sup.duration > best.duration):
                prompt_turn[sup.speaker] = sup
        if not {"S1", "S2"} <= prompt_turn.keys():
            continue
        paths = {}
        for role in ("S1", "S2"):
            sup = prompt_turn[role]
            piece = cut.truncate(
                offset=sup.start, duration=sup.duration, keep_excessive_supervisions=False
            )
            audio = piece.load_audio()
            paths[role] = prompts / f"{cut.id}_{role}.wav"
            sf.write(paths[role], audio.mean(axis=0), cut.sampling_rate)
        truth = out / "ground_truth"  # the dialogue's real audio: the table's reference row
        truth.mkdir(exist_ok=True)
        sf.write(truth / f"{cut.id}.wav", cut.load_audio().mean(axis=0), cut.sampling_rate)
        text = " ".join(dialogue_text(cut).split())
        rows.append(
            "\t".join(
                [
                    cut.id,
                    prompt_turn["S1"].text,
                    prompt_turn["S2"].text,
                    str(paths["S1"]),
                    str(paths["S2"]),
                    text,
                ]
            )
        )
    (out / "test_list.tsv").write_text("\n".join(rows) + "\n")
    logger.info("%d cuts, %d test items → %s", len(cuts), len(rows), out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
