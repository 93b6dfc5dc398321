"""Conversations with known turns, built from the two real voices of the bundled sample.

The bundled telephone call (``pipeline/assets/sample.wav`` + ``sample.rttm``) holds two real
speakers. Each reference turn, minus the parts where the other speaker overlaps it, is a piece of
one known voice; pieces re-assembled in a new order with clean gaps make a new conversation whose
reference is exact up to the pauses inside the original turns (the RTTM marks whole turns).
A third voice is made from the first speaker by shifting pitch and formants together (a resampling
pitch shift): a *synthetic* voice, used only to check that a third speaker is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.records import SpeakerSegment

SAMPLE_RATE = 16000
ASSETS = Path(__file__).resolve().parents[2] / "pipeline" / "assets"


def load_sample() -> tuple[np.ndarray, list[SpeakerSegment]]:
    """The bundled sample as float32 16 kHz mono, and its reference segments."""
    import soundfile as sf

    from pipeline.diarization.timeline import read_rttm

    wave, rate = sf.read(str(ASSETS / "sample.wav"), dtype="float32")
    assert rate == SAMPLE_RATE
    return wave, read_rttm(str(ASSETS / "sample.rttm"))["sample"]


def _subtract(span: tuple[float, float], others: Sequence[tuple[float, float]]):
    pieces = [span]
    for o_start, o_end in others:
        nxt = []
        for start, end in pieces:
            if o_end <= start or o_start >= end:
                nxt.append((start, end))
                continue
            if o_start > start:
                nxt.append((start, o_start))
            if o_end < end:
                nxt.append((o_end, end))
        pieces = nxt
    return pieces


def voice_pieces(
    wave: np.ndarray, reference: Sequence[SpeakerSegment], min_s: float = 0.6
) -> dict[str, list[np.ndarray]]:
    """Per reference speaker, the audio of its turns with the other speaker's turns cut out."""
    out: dict[str, list[np.ndarray]] = {}
    for seg in reference:
        others = [(o.start, o.end) for o in reference if o.speaker != seg.speaker]
        for start, end in _subtract((seg.start, seg.end), others):
            if end - start >= min_s:
                piece = wave[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
                out.setdefault(seg.speaker, []).append(piece)
    return out


def shifted_voice(pieces: Sequence[np.ndarray], factor: float) -> list[np.ndarray]:
    """A different (synthetic) voice: resample so pitch and formants move by ``factor``."""
    import soxr

    return [soxr.resample(p, SAMPLE_RATE, SAMPLE_RATE / factor).astype(np.float32) for p in pieces]


def assemble(
    turns: Sequence[tuple[str, np.ndarray]],
    seed: int = 0,
    gap_s=(0.4, 0.9),
    lead_s: float = 0.5,
    recording_id: str = "conv",
):
    """Concatenate ``(speaker, audio)`` turns with random clean gaps.

    Returns:
        ``(audio, reference segments)``.
    """
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead_s * SAMPLE_RATE), dtype=np.float32)]
    reference = []
    cursor = len(parts[0])
    for speaker, audio in turns:
        reference.append(
            SpeakerSegment(
                recording_id=recording_id,
                speaker=speaker,
                start=cursor / SAMPLE_RATE,
                end=(cursor + len(audio)) / SAMPLE_RATE,
            )
        )
        gap = np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE), dtype=np.float32)
        parts += [audio.astype(np.float32), gap]
        cursor += len(audio) + len(gap)
    return np.concatenate(parts), reference


def alternate(voices: dict[str, list[np.ndarray]], num_turns: int, seed: int = 0):
    """``num_turns`` turns that never give the floor to the same voice twice in a row."""
    rng = np.random.default_rng(seed)
    names = sorted(voices)
    used = {name: list(rng.permutation(len(voices[name]))) for name in names}
    turns, last = [], None
    for _ in range(num_turns):
        name = rng.choice([n for n in names if n != last])
        if not used[name]:
            used[name] = list(rng.permutation(len(voices[name])))
        turns.append((str(name), voices[name][used[name].pop()]))
        last = name
    return turns


def two_voice_conversation(seed: int = 0, num_turns: int = 14):
    """A clean two-voice conversation of the sample's two real speakers."""
    wave, reference = load_sample()
    voices = voice_pieces(wave, reference)
    return assemble(alternate(voices, num_turns, seed), seed=seed)


def three_voice_conversation(
    seed: int = 0, turns_per_pair: int = 6, factor: float = 0.6, source: str = "speaker90"
):
    """The two real voices plus a synthetic third (``source`` shifted by ``factor``), talking in
    pairs: A-B, then B-C, then A-C (``turns_per_pair`` turns each), as three people do."""
    wave, reference = load_sample()
    voices = voice_pieces(wave, reference)
    voices["shifted"] = shifted_voice(voices[source], factor)
    names = sorted(voices)
    turns = []
    for k, pair in enumerate(((0, 1), (1, 2), (0, 2))):
        sub = {names[i]: voices[names[i]] for i in pair}
        turns += alternate(sub, turns_per_pair, seed * 3 + k)
    return assemble(turns, seed=seed)


def long_conversation(minutes: float = 5.0, seed: int = 0, monologue_every: int = 20):
    """A long two-voice conversation; every ``monologue_every`` turns one voice holds the floor
    for several turns (> 10 s), so the other must be recognised again after a long absence."""
    wave, reference = load_sample()
    voices = voice_pieces(wave, reference)
    rng = np.random.default_rng(seed)
    names = sorted(voices)
    turns, total, k = [], 0.0, 0
    while total < minutes * 60:
        if k and k % monologue_every == 0:
            name = names[int(rng.integers(2))]
            chosen = [(name, voices[name][int(i)]) for i in rng.permutation(len(voices[name]))]
        else:
            name = names[k % 2]
            chosen = [(name, voices[name][int(rng.integers(len(voices[name])))])]
        turns += chosen
        total += sum(len(a) for _, a in chosen) / SAMPLE_RATE + 0.65 * len(chosen)
        k += 1
    return assemble(turns, seed=seed, recording_id="long")


def der(reference: Sequence[SpeakerSegment], hypothesis: Sequence[SpeakerSegment]):
    """Diarization error rate with pyannote.metrics: no collar, overlap scored.

    Returns:
        ``(der, components)`` with ``components`` = miss / false alarm / confusion rates.
    """
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    def annotation(segments):
        ann = Annotation()
        for i, seg in enumerate(segments):
            ann[Segment(seg.start, seg.end), i] = seg.speaker
        return ann

    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    ref, hyp = annotation(reference), annotation(hypothesis)
    uem = Timeline([Segment(0.0, max(seg.end for seg in [*reference, *hypothesis]))])
    detail = metric(ref, hyp, detailed=True, uem=uem)
    total = detail["total"]
    return detail["diarization error rate"], {
        "miss": detail["missed detection"] / total,
        "false_alarm": detail["false alarm"] / total,
        "confusion": detail["confusion"] / total,
    }
