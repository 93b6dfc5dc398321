"""Real dialogue cuts of the bundled sample (lhotse objects) for the model tests.

Two dialogue windows of ``pipeline/assets/sample.wav`` with their reference turns
(``sample.stm``) as supervisions (speakers S1/S2), and a synthetic 2-channel cut made from the
first window (each speaker's turns on their own channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLE_WAV = REPO / "pipeline" / "assets" / "sample.wav"
SAMPLE_STM = REPO / "pipeline" / "assets" / "sample.stm"

# two dialogue windows of the sample's reference turns (seconds), each starting with [S1]
DIALOG_WINDOWS = {
    "sample-d0000": (6.58, 10.90),  # Diane (S1) / Sheila (S2): "Hello? / Hello? / Oh, hello. ..."
    "sample-d0001": (14.34, 21.60),  # Sheila (S1) / Diane (S2): "And I'm Sheila in Texas ..."
}

# the memorised cut and the training recipe of the session checkpoint. The cut is 4.3 s, not
# 6-10 s: memorising it well enough to reproduce its target takes ~1500 steps of this network
# (0.06 s each on one core), and a 7.7 s cut needs more steps of 1.8x the cost.
MEMORISED_CUT = "sample-d0000"
PROMPT_END_S = 1.70  # 39 % of the cut: after "[S1] Hello? [S2] Hello?", before "Oh, hello."
TINY_OVERRIDES = {  # the "tiny" preset made ~2x cheaper on CPU: 3 decoder stacks, 1.2 M params
    # (keep fm_decoder_dim above the 80 mel bins: the decoder must carry the noise through
    # to cancel it, and a 64-d bottleneck left a loss floor of ~0.28)
    "preset": "tiny",
    "fm_decoder_downsampling_factor": [1, 2, 1],
    "fm_decoder_num_layers": [1, 1, 1],
    "fm_decoder_cnn_module_kernel": [15, 9, 15],
    "fm_decoder_num_heads": 2,
    "text_encoder_num_heads": 2,
    "text_encoder_num_layers": 1,
    "text_encoder_feedforward_dim": 128,
    "text_encoder_dim": 64,
    "time_embed_dim": 64,
    "text_embed_dim": 64,
}
TRAIN_STEPS = 1500
# Tight clipping (0.05) matters: the flow loss near t = 1 has rare, huge gradients; clipped,
# the reproduction error after 1000 steps fell from 0.88 (clip 5) to 0.43 (log-mel L1).
# fmt: off
TRAIN_RECIPE = (
    "--precomputed-feats", "--num-steps", str(TRAIN_STEPS), "--lr", "3e-3",
    "--lr-schedule", "cosine", "--warmup-steps", "20", "--grad-clip", "0.05",
    "--ema-decay", "0.995", "--save-every", str(TRAIN_STEPS), "--log-every", "1",
    "--max-duration", "30", "--num-buckets", "1", "--num-workers", "0", "--no-progress",
    "--device", "cpu", "--seed", "7", "--regularisation", "none", "--num-threads", "1",
)
# fmt: on


def read_stm(path: Path = SAMPLE_STM) -> list[tuple[str, float, float, str]]:
    """(speaker, start_s, end_s, text) of each reference turn."""
    turns = []
    for line in path.read_text().splitlines():
        _, _, speaker, start, end, text = line.split(maxsplit=5)
        turns.append((speaker, float(start), float(end), text.strip()))
    return turns


def dialogue_supervisions(cut_id: str, start: float, end: float, *, channels=None):
    """One SupervisionSegment per reference turn inside the window, speakers S1/S2."""
    from lhotse import SupervisionSegment

    sups, labels = [], {}
    for i, (speaker, t0, t1, text) in enumerate(read_stm()):
        if t0 < start or t1 > end:
            continue
        label = labels.setdefault(speaker, f"S{len(labels) + 1}")
        channel = 0 if channels is None else channels[label]
        sups.append(
            SupervisionSegment(
                id=f"{cut_id}-{i:03d}",
                recording_id="sample",
                start=t0 - start,
                duration=t1 - t0,
                channel=channel,
                text=text,
                speaker=label,
                language="en",
            )
        )
    return sups


def make_dialog_cuts(with_custom_text: bool = True):
    """The two dialogue cuts (MonoCut) of the sample, lhotse objects."""
    from lhotse import MonoCut, Recording

    recording = Recording.from_file(SAMPLE_WAV, recording_id="sample")
    cuts = []
    for cut_id, (start, end) in DIALOG_WINDOWS.items():
        sups = dialogue_supervisions(cut_id, start, end)
        cut = MonoCut(
            id=cut_id,
            start=start,
            duration=round(end - start, 3),
            channel=0,
            recording=recording,
            supervisions=sups,
        )
        if with_custom_text and cut_id == MEMORISED_CUT:
            from core.dialogue_script import dialogue_text

            cut.custom = {"text": dialogue_text(cut)}
        cuts.append(cut)
    return cuts


def write_cuts(cuts, path: Path) -> Path:
    from lhotse import CutSet

    CutSet.from_cuts(cuts).to_file(path)
    return path


def make_stereo_cut(out_dir: Path):
    """A 2-channel cut of the first window: S1's turns on the left, S2's on the right."""
    import soundfile as sf
    from lhotse import MultiCut, Recording

    start, end = DIALOG_WINDOWS[MEMORISED_CUT]
    audio, rate = sf.read(SAMPLE_WAV, dtype="float32")
    segment = audio[int(start * rate) : int(end * rate)]
    stereo = np.zeros((segment.shape[0], 2), dtype=np.float32)
    sups = dialogue_supervisions("sample-s0000", start, end, channels={"S1": 0, "S2": 1})
    for sup in sups:
        a, b = int(sup.start * rate), int(sup.end * rate)
        stereo[a:b, sup.channel] = segment[a:b]
    path = out_dir / "stereo.wav"
    sf.write(path, stereo, rate)
    recording = Recording.from_file(path, recording_id="stereo")
    sups = [s.__class__(**{**s.to_dict(), "recording_id": "stereo"}) for s in sups]
    return MultiCut(
        id="stereo-s0000",
        start=0.0,
        duration=recording.duration,
        channel=[0, 1],
        recording=recording,
        supervisions=sups,
    )


def quick_run_args(max_duration_s: float) -> list[str]:
    """Data and device flags of the quick CLI runs (train, distill): CPU, one bucket, no
    loader workers, no progress bar, batches of at most ``max_duration_s`` seconds."""
    return [
        *("--max-duration", str(max_duration_s), "--num-buckets", "1", "--num-workers", "0"),
        *("--no-progress", "--device", "cpu"),
    ]
