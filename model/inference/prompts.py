"""Speech prompts for zero-shot dialogue synthesis: decode, check, clean, normalise.

A prompt is audio of the two voices plus its transcript: either one merged recording with a
tagged transcript (``[S1] Hello. [S2] Hi there.``), or one recording per speaker (split
prompts) with plain transcripts, which are placed one after the other in time (and, for a
stereo model, each on its own channel: S1 left, S2 right, the other channel silent).

Preparation follows ZipVoice's non-raw inference (§3 of the reference):

- decode any format with PyAV (``core.audio_io.decode_audio``) at the model's rate;
- downmix to mono for a mono model; a stereo model needs a 2-channel merged prompt;
- silences longer than 1 s inside the prompt are cut down to 1 s and edge silences to
  0.1 s (frames below -50 dBFS are silence);
- 0.2 s of silence is appended, so that the prompt does not leak into the generated start;
- a prompt quieter than RMS 0.1 is scaled up to 0.1; the gain is kept so the output can be
  scaled back by the same ratio (:attr:`Prompt.rms_gain`).

Errors are :class:`PromptError` (a ``ValueError``) with a one-line message naming the file.

>>> samples = np.zeros((1, 16000), dtype=np.float32); samples[0, 4000:12000] = 0.05
>>> trim_silence(samples, 16000).shape  # 0.25 s of silence on each side -> 0.1 s
(1, 11200)
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.options import opt

logger = logging.getLogger(__name__)

SILENCE_THRESHOLD_DBFS = -50.0
MAX_INNER_SILENCE_S = 1.0
EDGE_SILENCE_S = 0.1
APPENDED_SILENCE_S = 0.2
TARGET_RMS = 0.1
LONG_PROMPT_S = 20.0
"""Prompts longer than this draw a warning (the README of upstream advises under 10 s)."""
MIN_SPEECH_S = 0.2
_FRAME_S = 0.01

AudioSource = str | os.PathLike | tuple[np.ndarray, int]
"""A prompt's audio: a file path, or ``(samples, sample_rate)`` with samples shaped
``(samples,)`` or ``(channels, samples)``."""


class PromptError(ValueError):
    """A prompt cannot be used: missing or unreadable audio, silence, bad transcript."""


@dataclass(frozen=True)
class Prompt:
    """A prepared prompt, ready for feature extraction.

    Attributes:
        samples: float32 ``(channels, samples)`` at ``sample_rate``, cleaned, normalised and
            followed by the appended silence.
        sample_rate: its rate (the model's).
        text: the tagged transcript (``[S1] ... [S2] ...``), punctuated.
        rms_gain: factor the audio was multiplied by (>= 1); divide the output by it.
    """

    samples: np.ndarray
    sample_rate: int
    text: str
    rms_gain: float

    @property
    def duration_s(self) -> float:
        """Duration in seconds (appended silence included)."""
        return self.samples.shape[1] / self.sample_rate

    @property
    def num_channels(self) -> int:
        """Channel count."""
        return self.samples.shape[0]


# ----------------------------------------------------------------------------- audio


def _describe(source: AudioSource) -> str:
    return "in-memory audio" if isinstance(source, tuple) else str(source)


def load_audio(source: AudioSource, sample_rate: int) -> np.ndarray:
    """Decode a prompt's audio at ``sample_rate`` as float32 ``(channels, samples)``.

    Args:
        source: a file path (any format PyAV reads) or ``(samples, rate)``.
        sample_rate: the rate to resample to.

    Raises:
        PromptError: missing file, undecodable content, no samples, or non-finite samples.
    """
    name = _describe(source)
    if isinstance(source, tuple):
        samples, rate = source
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2:
            raise PromptError(
                f"{name}: expected (samples,) or (channels, samples), got {samples.shape}"
            )
        if int(rate) != sample_rate and samples.shape[1]:
            import soxr

            samples = np.ascontiguousarray(
                soxr.resample(samples.T, int(rate), sample_rate, quality="HQ").T
            ).astype(np.float32)
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise PromptError(f"prompt audio not found: {path}")
        if os.path.isdir(path):
            raise PromptError(f"prompt audio is a directory: {path}")
        from core.audio_io import DecodeError, decode_audio

        try:
            samples = decode_audio(path, target_rate=sample_rate).samples
        except DecodeError as error:
            raise PromptError(f"cannot decode prompt audio {path}: {error}") from None
    if samples.shape[1] == 0:
        raise PromptError(f"prompt audio {name} has no samples")
    if not np.isfinite(samples).all():
        raise PromptError(f"prompt audio {name} holds NaN or infinite samples")
    return samples


def silent_frames(
    samples: np.ndarray,
    sample_rate: int,
    *,
    threshold_dbfs: float = SILENCE_THRESHOLD_DBFS,
    frame_s: float = _FRAME_S,
) -> np.ndarray:
    """Whether each ``frame_s`` frame is silent (RMS below ``threshold_dbfs`` on every channel).

    Args:
        samples: ``(channels, samples)``.
        sample_rate: their rate.
        threshold_dbfs: level below which a frame is silence (dB re full scale 1.0).
        frame_s: frame length (the last partial frame counts as a frame).

    Returns:
        bool ``(num_frames,)``.
    """
    frame = max(1, round(frame_s * sample_rate))
    num = -(-samples.shape[1] // frame)
    padded = np.zeros((samples.shape[0], num * frame), dtype=np.float64)
    padded[:, : samples.shape[1]] = samples
    power = np.square(padded).reshape(samples.shape[0], num, frame)
    # a partial last frame is averaged over its real samples only
    counts = np.full(num, frame, dtype=np.float64)
    counts[-1] = samples.shape[1] - (num - 1) * frame
    rms = np.sqrt(power.sum(-1) / counts)  # (C, num)
    threshold = 10.0 ** (threshold_dbfs / 20.0)
    return (rms < threshold).all(axis=0)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of True in ``flags``."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def trim_silence(
    samples: np.ndarray,
    sample_rate: int,
    *,
    max_inner_s: float | None = MAX_INNER_SILENCE_S,
    edge_s: float = EDGE_SILENCE_S,
    threshold_dbfs: float = SILENCE_THRESHOLD_DBFS,
) -> np.ndarray:
    """Shorten long silences: inner ones to ``max_inner_s``, leading/trailing ones to ``edge_s``.

    Channels are cut together (a frame is silent when every channel is), so a stereo
    recording stays aligned. An inner silence keeps half of ``max_inner_s`` next to each
    neighbouring speech region. All-silent audio becomes ``edge_s`` of it.

    Args:
        samples: ``(channels, samples)``.
        sample_rate: their rate.
        max_inner_s: longest inner silence kept (None: inner silences are kept as they are).
        edge_s: silence kept before the first and after the last speech frame.
        threshold_dbfs: silence level.

    Returns:
        The trimmed ``(channels, samples')`` (a new array).
    """
    frame = max(1, round(_FRAME_S * sample_rate))
    silent = silent_frames(samples, sample_rate, threshold_dbfs=threshold_dbfs)
    total = samples.shape[1]
    edge = round(edge_s * sample_rate)
    if silent.all():
        return samples[:, :edge].copy()
    keep = np.ones(total, dtype=bool)
    runs = _runs(silent)
    for start, end in runs:
        a, b = start * frame, min(end * frame, total)
        if start == 0:  # leading: keep the last edge samples before speech
            keep[: max(0, b - edge)] = False
        elif end == len(silent):  # trailing: keep the first edge samples after speech
            keep[a + edge :] = False
        elif max_inner_s is not None and b - a > round(max_inner_s * sample_rate):
            half = round(max_inner_s * sample_rate / 2)
            keep[a + half : b - half] = False
    return samples[:, keep].copy()


def normalize_rms(samples: np.ndarray, target_rms: float = TARGET_RMS) -> tuple[np.ndarray, float]:
    """Scale audio quieter than ``target_rms`` up to it (louder audio is left alone).

    Returns:
        ``(scaled samples, gain)`` with gain >= 1 (1 when unchanged).
    """
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms <= 0.0 or rms >= target_rms:
        return samples, 1.0
    gain = target_rms / rms
    return (samples * gain).astype(np.float32), gain


def to_channels(samples: np.ndarray, num_channels: int, *, name: str) -> np.ndarray:
    """Adapt a merged prompt to the model: mono models get the mix, stereo ones need 2 channels.

    Raises:
        PromptError: a stereo model given a prompt that is not 2-channel.
    """
    if num_channels == 1:
        return samples.mean(axis=0, keepdims=True) if samples.shape[0] > 1 else samples
    if samples.shape[0] != num_channels:
        raise PromptError(
            f"{name}: the stereo model needs a {num_channels}-channel merged prompt (S1 left, "
            f"S2 right), got {samples.shape[0]} channel(s); or give split prompts "
            "(--spk1-wav/--spk2-wav)"
        )
    return samples


# ----------------------------------------------------------------------------- text


def ends_with_punctuation(text: str) -> bool:
    """Whether the last non-space character is punctuation (any Unicode ``P*`` category)."""
    stripped = text.rstrip()
    return bool(stripped) and unicodedata.category(stripped[-1]).startswith("P")


def punctuate(text: str) -> str:
    """``text`` with ``.`` appended when it does not end with punctuation."""
    text = text.strip()
    return text if ends_with_punctuation(text) else text + "."


def punctuate_dialogue(text: str) -> str:
    """A validated script with every turn ending in punctuation, normalised spacing.

    Raises:
        DialogueFormatError: see ``model.tokenizer.split_dialogue``.
    """
    from model.tokenizer import join_dialogue, split_dialogue

    return join_dialogue([(tag, punctuate(turn)) for tag, turn in split_dialogue(text)])


def split_prompt_text(spk1_text: str, spk2_text: str) -> str:
    """The merged transcript of split prompts: ``[S1] t1 [S2] t2``.

    A transcript may start with its own tag (``[S1] ...`` for speaker 1); any other speaker
    tag inside it is an error.

    Raises:
        PromptError: empty transcript or a foreign speaker tag.
    """
    import re

    texts = []
    for number, text in ((1, spk1_text), (2, spk2_text)):
        own = f"[S{number}]"
        body = (text or "").strip()
        if body.startswith(own):
            body = body[len(own) :].strip()
        if re.search(r"\[[sS]\d+\]", body):
            raise PromptError(
                f"the speaker-{number} prompt transcript must be plain text, without speaker "
                f"tags: {text!r}"
            )
        if not body:
            raise PromptError(f"the speaker-{number} prompt transcript is empty")
        texts.append(punctuate(body))
    return f"[S1] {texts[0]} [S2] {texts[1]}"


def merged_prompt_text(text: str) -> str:
    """Check and punctuate a merged prompt transcript (``[S1] ... [S2] ...``).

    Raises:
        PromptError: the transcript is not a valid dialogue script.
    """
    from model.tokenizer import DialogueFormatError

    try:
        return punctuate_dialogue(text or "")
    except DialogueFormatError as error:
        raise PromptError(f"prompt transcript: {error}") from None


# ----------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptOptions:
    """How prompts are cleaned.

    Attributes:
        trim: cut long silences (False: ZipVoice's ``--raw-evaluation``, audio as given).
        max_inner_silence_s: longest inner silence kept when trimming.
        edge_silence_s: edge silence kept when trimming.
        appended_silence_s: silence appended at the end (always).
        target_rms: quieter prompts are scaled up to this RMS (0 disables).
        threshold_dbfs: silence level.
    """

    trim: bool = True
    max_inner_silence_s: float = MAX_INNER_SILENCE_S
    edge_silence_s: float = EDGE_SILENCE_S
    appended_silence_s: float = APPENDED_SILENCE_S
    target_rms: float = opt(
        TARGET_RMS, "quieter prompts are scaled up to this RMS (0: off)", group="generation"
    )
    threshold_dbfs: float = SILENCE_THRESHOLD_DBFS


def _clean(samples: np.ndarray, sample_rate: int, options: PromptOptions, name: str) -> np.ndarray:
    if options.trim:
        samples = trim_silence(
            samples,
            sample_rate,
            max_inner_s=options.max_inner_silence_s,
            edge_s=options.edge_silence_s,
            threshold_dbfs=options.threshold_dbfs,
        )
    speech = ~silent_frames(samples, sample_rate, threshold_dbfs=options.threshold_dbfs)
    if speech.sum() * _FRAME_S < MIN_SPEECH_S:
        raise PromptError(
            f"prompt audio {name} is silent (less than {MIN_SPEECH_S} s above "
            f"{options.threshold_dbfs:.0f} dBFS)"
        )
    return samples


def _finish(samples: np.ndarray, sample_rate: int, text: str, options: PromptOptions) -> Prompt:
    gain = 1.0
    if options.target_rms > 0:
        samples, gain = normalize_rms(samples, options.target_rms)
    tail = np.zeros((samples.shape[0], round(options.appended_silence_s * sample_rate)), np.float32)
    samples = np.concatenate([samples.astype(np.float32), tail], axis=1)
    duration = samples.shape[1] / sample_rate
    if duration > LONG_PROMPT_S:
        logger.warning(
            "the prompt is %.1f s long: prompts over %.0f s slow synthesis down and leave less "
            "room per chunk; under 10 s is recommended",
            duration,
            LONG_PROMPT_S,
        )
    return Prompt(np.ascontiguousarray(samples), sample_rate, text, gain)


def merged_prompt(
    audio: np.ndarray,
    text: str,
    *,
    sample_rate: int,
    num_channels: int,
    options: PromptOptions = PromptOptions(),
    name: str = "prompt",
) -> Prompt:
    """Prepare one recording of both voices with its tagged transcript.

    Args:
        audio: ``(channels, samples)`` at ``sample_rate`` (see :func:`load_audio`).
        text: ``[S1] ... [S2] ...`` transcript.
        sample_rate: the model's rate.
        num_channels: the model's output channels (1, or 2 for stereo).
        options: cleaning options.
        name: how errors refer to the audio.

    Raises:
        PromptError: bad transcript, wrong channel count for a stereo model, silent audio.
    """
    text = merged_prompt_text(text)
    samples = to_channels(audio, num_channels, name=name)
    return _finish(_clean(samples, sample_rate, options, name), sample_rate, text, options)


def split_prompts(
    audios: Sequence[np.ndarray],
    texts: Sequence[str],
    *,
    sample_rate: int,
    num_channels: int,
    options: PromptOptions = PromptOptions(),
    names: Sequence[str] = ("speaker-1 prompt", "speaker-2 prompt"),
) -> Prompt:
    """Prepare one recording per speaker: cleaned separately, then S1's followed by S2's.

    Each recording is downmixed to mono; a stereo model gets S1 on the left channel and S2
    on the right, the other channel silent.

    Raises:
        PromptError: bad transcript or silent audio.
    """
    if len(audios) != 2 or len(texts) != 2:
        raise ValueError("split prompts need exactly two recordings and two transcripts")
    text = split_prompt_text(texts[0], texts[1])
    parts = []
    for audio, name in zip(audios, names):
        mono = audio.mean(axis=0, keepdims=True) if audio.shape[0] > 1 else audio
        parts.append(_clean(mono, sample_rate, options, name))
    if num_channels == 1:
        samples = np.concatenate(parts, axis=1)
    else:
        first, second = parts
        samples = np.zeros((num_channels, first.shape[1] + second.shape[1]), np.float32)
        samples[0, : first.shape[1]] = first[0]
        samples[1, first.shape[1] :] = second[0]
    return _finish(samples, sample_rate, text, options)
