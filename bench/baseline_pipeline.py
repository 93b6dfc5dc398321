"""The baseline the pipeline benchmark compares against: the default run's models and settings,
called the plain way: one file and one turn at a time, unbatched, in one process, with the
packages' own helpers (faster-whisper's ``decode_audio`` and ``WhisperModel.transcribe``,
silero's ``get_speech_timestamps``, ``speechmos.dnsmos.run``, Resemblyzer's ``embed_utterance``).
Diarization and the dialogue rules have no package helper: they call our pure functions.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BaselineModels:
    vad: object
    whisper: object
    diarization: object
    encoder: object
    load_s: float


@dataclass
class BaselineResult:
    stage_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    turns: int = 0
    dialogues: int = 0


def load_models() -> BaselineModels:
    from faster_whisper import WhisperModel
    from resemblyzer import VoiceEncoder
    from silero_vad import load_silero_vad

    from pipeline.asr.models import resolve_asr_model
    from pipeline.diarize import DiarizeOptions
    from pipeline.diarize import load_models as load_diarization

    started = time.perf_counter()
    whisper_dir, _ = resolve_asr_model("base")
    return BaselineModels(
        vad=load_silero_vad(onnx=True),
        whisper=WhisperModel(whisper_dir, device="cpu", compute_type="int8"),
        diarization=load_diarization(DiarizeOptions()),
        encoder=VoiceEncoder("cpu", verbose=False),
        load_s=time.perf_counter() - started,
    )


def process_file(path: str, models: BaselineModels) -> BaselineResult:
    """One file through every stage, one item at a time."""
    import torch
    from faster_whisper import decode_audio
    from resemblyzer import preprocess_wav
    from silero_vad import get_speech_timestamps
    from speechmos import dnsmos

    from pipeline.asr.plan import plan_turns
    from pipeline.decode import recording_id_for
    from pipeline.dialogue import DialogueOptions, segment_dialogues
    from pipeline.diarize import DiarizeOptions, diarize
    from pipeline.records import Recording, SpeechRegion, Turn, Word

    result = BaselineResult()
    tick = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        result.stage_s[stage] += now - tick
        tick = now

    audio = decode_audio(path, sampling_rate=16000)
    rid = recording_id_for(path)
    recording = Recording(rid, path, 16000, 1, len(audio) / 16000)
    lap("decode")
    stamps = get_speech_timestamps(
        torch.from_numpy(audio), models.vad, sampling_rate=16000, return_seconds=True
    )
    speech = [SpeechRegion(rid, s["start"], s["end"]) for s in stamps]
    lap("vad")
    segments = diarize(audio, DiarizeOptions(), models.diarization, rid, speech).segments
    lap("diarize")
    turns = []
    for i, span in enumerate(plan_turns(segments, speech, 0.5, 30.0)):
        if span.end - span.start < 0.3:
            continue
        start = max(0.0, span.start - 0.2)
        piece = audio[int(start * 16000) : int((span.end + 0.2) * 16000)]
        parts, info = models.whisper.transcribe(
            piece, beam_size=5, word_timestamps=True, condition_on_previous_text=False
        )
        parts = list(parts)
        words = tuple(
            Word(start + w.start, start + w.end, w.word, w.probability)
            for p in parts
            for w in (p.words or [])
        )
        turns.append(
            Turn(
                rid,
                f"{rid}-t{i:04d}",
                span.speaker,
                span.start,
                span.end,
                " ".join(p.text.strip() for p in parts),
                info.language,
                info.language_probability,
                float(np.mean([p.avg_logprob for p in parts])) if parts else 0.0,
                float(np.mean([p.no_speech_prob for p in parts])) if parts else 0.0,
                0.0,
                words,
            )
        )
    result.turns = len(turns)
    lap("asr")
    dialogues, dialogue_turns, _ = segment_dialogues(recording, turns, segments, DialogueOptions())
    lap("dialogue")
    for dialogue in dialogues:
        clip = audio[int(dialogue.start * 16000) : int(dialogue.end * 16000)]
        dnsmos.run(clip, 16000)
        for turn in dialogue_turns:
            if turn.dialogue_id == dialogue.dialogue_id and turn.end - turn.start >= 1.0:
                segment = audio[int(turn.start * 16000) : int(turn.end * 16000)]
                models.encoder.embed_utterance(preprocess_wav(segment, 16000))
    result.dialogues = len(dialogues)
    lap("filters")
    return result
