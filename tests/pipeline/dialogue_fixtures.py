"""Builders of dialogue-stage inputs from the bundled sample (no ASR or diarization model needed).

``sample_work()`` reads ``pipeline/assets/sample.wav`` with soundfile and makes Turns from the
reference transcript (``sample.stm``) with speakers from the reference diarization
(``sample.rttm``); word times are spread over each utterance in proportion to word length, since
the STM has none. Synthetic helpers build small turn lists for the rule tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.records import Recording, RecordingWork, SpeakerSegment, Turn, Word

ASSETS = Path(__file__).resolve().parents[2] / "pipeline" / "assets"
SAMPLE_ID = "sample-00000000"


def read_rttm(
    path: Path = ASSETS / "sample.rttm", recording_id: str = SAMPLE_ID
) -> list[SpeakerSegment]:
    segs = []
    for line in path.read_text().splitlines():
        f = line.split()
        start, dur = float(f[3]), float(f[4])
        segs.append(SpeakerSegment(recording_id, f[7], start, start + dur))
    return sorted(segs, key=lambda s: s.start)


def read_stm(path: Path = ASSETS / "sample.stm") -> list[tuple[str, float, float, str]]:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split(maxsplit=5)
        rows.append((f[2], float(f[3]), float(f[4]), f[5]))
    return rows


def spread_words(text: str, start: float, end: float, gap_s: float = 0.04) -> tuple[Word, ...]:
    """Word timings spread over ``[start, end]`` in proportion to each word's length."""
    tokens = text.split()
    total = sum(len(t) for t in tokens)
    usable = (end - start) - gap_s * (len(tokens) - 1)
    words, t = [], start
    for tok in tokens:
        d = usable * len(tok) / total
        words.append(Word(t, t + d, " " + tok, 0.9))
        t += d + gap_s
    return tuple(words)


def sample_turns(recording_id: str = SAMPLE_ID) -> list[Turn]:
    """Reference turns of the sample, speakers named as in the RTTM (``speaker90``/``91``)."""
    rttm = read_rttm(recording_id=recording_id)
    turns = []
    for i, (_name, start, end, text) in enumerate(read_stm()):
        overlap: dict[str, float] = {}
        for s in rttm:
            overlap[s.speaker] = overlap.get(s.speaker, 0.0) + max(
                0.0, min(end, s.end) - max(start, s.start)
            )
        speaker = max(sorted(overlap), key=lambda k: overlap[k])
        turns.append(
            Turn(
                recording_id,
                f"{recording_id}-{i:06d}",
                speaker,
                start,
                end,
                text,
                language="en",
                language_prob=0.99,
                avg_logprob=-0.25,
                no_speech_prob=0.02,
                compression_ratio=1.3,
                words=spread_words(text, start, end),
            )
        )
    return turns


def sample_audio() -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(ASSETS / "sample.wav", dtype="float32", always_2d=True)
    return audio.T.copy(), sr


def sample_work(recording_id: str = SAMPLE_ID, uri: str | None = None) -> RecordingWork:
    audio, sr = sample_audio()
    rec = Recording(
        recording_id=recording_id,
        uri=uri or str(ASSETS / "sample.wav"),
        sample_rate=sr,
        num_channels=1,
        duration_s=audio.shape[1] / sr,
        codec="pcm_s16le",
        content_sha1="sample-sha1",
        speech_s=22.0,
        speech_ratio=0.73,
        bandwidth_hz=0.0,
    )
    return RecordingWork(
        recording=rec,
        audio=audio,
        diarization=tuple(read_rttm(recording_id=recording_id)),
        turns=tuple(sample_turns(recording_id)),
    )


def reference_dialogue_turns() -> list[tuple[str, str]]:
    """The STM turns with consecutive same-speaker utterances merged: ``(speaker, text)``."""
    merged: list[list[str]] = []
    for name, _s, _e, text in read_stm():
        if merged and merged[-1][0] == name:
            merged[-1][1] += " " + text
        else:
            merged.append([name, text])
    return [(n, t) for n, t in merged]


def make_turn(
    speaker: str,
    start: float,
    end: float,
    text: str,
    recording_id: str = "rec",
    channel: int = 0,
    words: Sequence[Word] | None = None,
    language: str = "en",
) -> Turn:
    return Turn(
        recording_id,
        f"{recording_id}-{speaker}-{start:.2f}",
        speaker,
        start,
        end,
        text,
        language=language,
        words=tuple(words) if words is not None else spread_words(text, start, end),
        channel=channel,
    )


def make_recording(
    recording_id: str = "rec",
    duration_s: float = 120.0,
    num_channels: int = 1,
    sample_rate: int = 16000,
    uri: str = "/dev/null",
    content_sha1: str = "",
) -> Recording:
    return Recording(
        recording_id, uri, sample_rate, num_channels, duration_s, content_sha1=content_sha1
    )
