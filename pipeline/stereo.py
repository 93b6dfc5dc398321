"""Channel layouts of dialogue segments: true 2-channel dialogues and pseudo-stereo rendering.

A dialogue is ``"stereo"`` when the input has two channels with one speaker per channel (the
diarizer marks ``SpeakerSegment.channel`` 0/1 for such inputs), ``"pseudo_stereo"`` when a mono
dialogue is rendered into two channels by routing each speaker's diarized regions to its own channel
(``--pseudo_stereo``), and ``"mono"`` otherwise. Pure numpy functions; no Beam, no models.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.records import DialogueTurn, Recording, SpeakerSegment, Turn

logger = logging.getLogger(__name__)

MONO = "mono"
STEREO = "stereo"
PSEUDO_STEREO = "pseudo_stereo"
LAYOUTS = (MONO, STEREO, PSEUDO_STEREO)

# Regions are widened a little before routing: diarization boundaries are frame-quantised and
# clipping a word onset on one channel is worse than 50 ms of the other channel's background.
_REGION_PAD_S = 0.05
_FADE_S = 0.01


def speaker_channels(
    recording: Recording, diarization: Sequence[SpeakerSegment], turns: Sequence[Turn] = ()
) -> dict[str, int] | None:
    """The channel of each speaker when a 2-channel input has one speaker per channel.

    Args:
        recording: the recording (its ``num_channels`` must be 2).
        diarization: speaker segments; their ``channel`` says where each speaker was found.
        turns: used instead of ``diarization`` when that is empty.

    Returns:
        ``{speaker: channel}`` when both channels 0 and 1 are used and every speaker lives on
        exactly one channel, else ``None`` (the dialogue is then mono or pseudo-stereo).
    """
    if recording.num_channels != 2:
        return None
    items: Iterable = diarization if diarization else turns
    seen: dict[str, set[int]] = {}
    for item in items:
        seen.setdefault(item.speaker, set()).add(int(item.channel))
    if not seen or any(len(chans) != 1 for chans in seen.values()):
        return None
    mapping = {spk: next(iter(chans)) for spk, chans in seen.items()}
    if set(mapping.values()) != {0, 1}:
        return None
    return mapping


def role_regions(
    dialogue_start: float,
    dialogue_end: float,
    role_speakers: dict[str, str],
    diarization: Sequence[SpeakerSegment],
    turns: Sequence[DialogueTurn],
) -> dict[str, list[tuple[float, float]]]:
    """Speech regions of each role (``"S1"``/``"S2"``) inside a dialogue, in recording time.

    Diarized regions of the role's speaker are used when the diarization has that speaker, else
    the dialogue turns' spans. Regions are clipped to the dialogue span.
    """
    regions: dict[str, list[tuple[float, float]]] = {}
    for role, speaker in role_speakers.items():
        spans = [(s.start, s.end) for s in diarization if s.speaker == speaker]
        if not spans:
            spans = [(t.start, t.end) for t in turns if t.role == role]
        clipped = [(max(a, dialogue_start), min(b, dialogue_end)) for a, b in spans]
        regions[role] = [(a, b) for a, b in clipped if b > a]
    return regions


def _mask(
    num_samples: int, sample_rate: int, offset_s: float, spans: Sequence[tuple[float, float]]
) -> np.ndarray:
    """A 0..1 gain curve that is 1 inside ``spans`` (padded) with short linear fades."""
    mask = np.zeros(num_samples, dtype=np.float32)
    for a, b in spans:
        i = max(0, round((a - _REGION_PAD_S - offset_s) * sample_rate))
        j = min(num_samples, round((b + _REGION_PAD_S - offset_s) * sample_rate))
        if j > i:
            mask[i:j] = 1.0
    fade = max(1, int(_FADE_S * sample_rate))
    if fade > 1 and mask.any():
        kernel = np.ones(fade, dtype=np.float32) / fade
        mask = np.convolve(mask, kernel, mode="same").astype(np.float32)
    return mask


def render_pseudo_stereo(
    mono: np.ndarray,
    sample_rate: int,
    offset_s: float,
    regions: dict[str, list[tuple[float, float]]],
) -> np.ndarray:
    """Route each role's speech to its own channel: S1 → channel 0, S2 → channel 1.

    Outside a role's regions its channel is silent (as ZipVoice-Dialog-Stereo prompts are); where
    both speak (overlap) both channels carry the mix.

    Args:
        mono: the dialogue's audio, shape ``(samples,)``.
        sample_rate: its sample rate.
        offset_s: recording time of ``mono[0]`` (regions are in recording time).
        regions: ``{"S1": [(start, end), ...], "S2": [...]}`` from :func:`role_regions`.

    Returns:
        float32 array, shape ``(2, samples)``.
    """
    out = np.zeros((2, mono.shape[0]), dtype=np.float32)
    for channel, role in enumerate(("S1", "S2")):
        out[channel] = mono * _mask(mono.shape[0], sample_rate, offset_s, regions.get(role, ()))
    return out


def turn_channel(layout: str, role: str, speaker: str, channels: dict[str, int] | None) -> int:
    """The channel a dialogue turn is on for a layout (mono: 0; pseudo: S1→0, S2→1)."""
    if layout == STEREO and channels is not None:
        return channels[speaker]
    if layout == PSEUDO_STEREO:
        return 0 if role == "S1" else 1
    return 0
