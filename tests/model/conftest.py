"""Model-test fixtures: real dialogue cuts of the bundled sample, and a tiny trained checkpoint.

``trained_tiny_checkpoint`` trains the tiny network once per session on one real two-speaker
cut (memorisation) and hands out the experiment directory, the cut's text and how to build the
prompt, so other tests (training checks here, WER checks of inference) can reuse it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.model.model_cuts import (
    DIALOG_WINDOWS,
    MEMORISED_CUT,
    PROMPT_END_S,
    TINY_OVERRIDES,
    TRAIN_RECIPE,
    make_dialog_cuts,
    make_stereo_cut,
    write_cuts,
)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one intra-op thread for a module (``pytest.mark.usefixtures``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dialog_cuts_path(tmp_path_factory) -> Path:
    """cuts.jsonl.gz with the two real dialogue cuts of the sample."""
    return write_cuts(make_dialog_cuts(), tmp_path_factory.mktemp("cuts") / "cuts.jsonl.gz")


@pytest.fixture(scope="session")
def memorised_cut_path(tmp_path_factory) -> Path:
    """cuts.jsonl.gz with only the memorised cut, its offline-preset mels precomputed."""
    from model.audio.features import FeatureConfig, MelExtractor
    from model.training.data import store_features

    out = tmp_path_factory.mktemp("cuts1")
    cuts = [c for c in make_dialog_cuts() if c.id == MEMORISED_CUT]
    cuts = store_features(cuts, MelExtractor(FeatureConfig.offline()), out / "feats")
    return write_cuts(cuts, out / "cuts.jsonl.gz")


@pytest.fixture(scope="session")
def stereo_cuts_path(tmp_path_factory) -> Path:
    """cuts.jsonl.gz with one synthetic 2-channel cut (real audio, one speaker per channel)."""
    out = tmp_path_factory.mktemp("stereo")
    return write_cuts([make_stereo_cut(out)], out / "cuts.jsonl.gz")


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory) -> Path:
    """A network.json for the test-sized network (vocabulary filled in by the trainer)."""
    path = tmp_path_factory.mktemp("config") / "tiny-test.json"
    path.write_text(json.dumps(TINY_OVERRIDES))
    return path


@dataclass(frozen=True)
class TrainedCheckpoint:
    """The session's trained tiny model and what it memorised.

    Attributes:
        exp_dir: experiment dir: ``model.network.checkpoint.load_checkpoint(exp_dir)`` gives the EMA
            network; ``checkpoint-last.pt`` holds the raw weights too; ``features.json`` the
            feature configuration (offline preset: 22.05 kHz, 80 mels).
        cuts_path: manifest of the memorised cut (audio + precomputed log mel).
        cut_id: its id.
        window_s: (start, end) of the cut in ``pipeline/assets/sample.wav``.
        text: the cut's whole tagged text (what it was trained with).
        prompt_end_s: prompt = the cut's first ``prompt_end_s`` seconds (a turn boundary).
        prompt_text: the turns inside the prompt.
        target_text: the turns after it.
        train_seconds: wall time of training.
        losses: (mean loss of the first 10 steps, mean loss of the last 20).
    """

    exp_dir: Path
    cuts_path: Path
    cut_id: str
    window_s: tuple[float, float]
    text: str
    prompt_end_s: float
    prompt_text: str
    target_text: str
    train_seconds: float
    losses: tuple[float, float]


@pytest.fixture(scope="session")
def trained_tiny_checkpoint(tmp_path_factory, memorised_cut_path, tiny_config_path):
    """Train the test-sized network on the memorised cut once per session (~300 steps)."""
    import time

    from lhotse import CutSet

    from model.training.train import main

    exp_dir = tmp_path_factory.mktemp("trained") / "exp"
    t0 = time.perf_counter()
    args = ["--cuts", str(memorised_cut_path), "--exp-dir", str(exp_dir)]
    status = main([*args, "--config", str(tiny_config_path), *TRAIN_RECIPE])
    assert status == 0
    seconds = time.perf_counter() - t0
    losses = [json.loads(line)["loss"] for line in (exp_dir / "log" / "train.jsonl").open()]
    cut = next(iter(CutSet.from_file(memorised_cut_path)))
    turns = [(s.start, s.speaker, s.text) for s in sorted(cut.supervisions, key=lambda s: s.start)]
    prompt = [(spk, text) for start, spk, text in turns if start < PROMPT_END_S]
    target = [(spk, text) for start, spk, text in turns if start >= PROMPT_END_S]
    return TrainedCheckpoint(
        exp_dir=exp_dir,
        cuts_path=memorised_cut_path,
        cut_id=cut.id,
        window_s=DIALOG_WINDOWS[cut.id],
        text=cut.custom["text"],
        prompt_end_s=PROMPT_END_S,
        prompt_text=_tagged(prompt),
        target_text=_tagged(target),
        train_seconds=seconds,
        losses=(float(np.mean(losses[:10])), float(np.mean(losses[-20:]))),
    )


def _tagged(turns: list[tuple[str, str]]) -> str:
    """[S1] a b [S2] c: consecutive turns of one speaker merged, as model.training.data does."""
    merged: list[list[str]] = []
    for speaker, text in turns:
        if merged and merged[-1][0] == speaker:
            merged[-1][1] += " " + text
        else:
            merged.append([speaker, text])
    return " ".join(f"[{speaker}] {text}" for speaker, text in merged)
