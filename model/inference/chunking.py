"""Long dialogue scripts: split into exchanges, size the chunks, batch them, join the audio.

ZipVoice-Dialog generates a whole chunk in one non-autoregressive pass, so memory and quality
depend on the chunk length. Long scripts are therefore (ZipVoice §3):

1. split right before every ``[S1]`` (each piece is one S1 -> S2 exchange, so every chunk
   starts with ``[S1]`` and the speaker-turn embedding stays consistent with the prompt);
2. merged greedily, in order, while the prompt plus the chunk stays under about 40 s
   (the chunk's length is estimated from the prompt's seconds per token);
3. generated in batches (longest first) under a padded-duration budget, every chunk
   re-using the same prompt;
4. joined in script order with a 0.1 s linear cross-fade.

Everything here is pure (numbers, strings and numpy arrays), so it is unit-testable without
a model.

>>> split_before_s1("[S1] a [S2] b [S1] c [S2] d")
['[S1] a [S2] b', '[S1] c [S2] d']
>>> plan_chunks(["[S1] a", "[S1] b", "[S1] c"], [10, 10, 10], seconds_per_token=1.0,
...             prompt_s=5.0, max_chunk_s=30.0)
['[S1] a [S1] b', '[S1] c']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

MAX_CHUNK_S = 40.0
"""Upstream's target for prompt + chunk, in seconds."""
MAX_BATCH_S = 100.0
"""Upstream's ``--max-duration``: padded seconds (prompt included) per generation batch."""
CROSSFADE_S = 0.1
"""Length of the linear cross-fade between consecutive chunks."""
SHORT_TEXT_TOKENS = 30
"""Texts (chunks) with fewer tokens than this get a longer duration, see
:func:`target_num_frames`."""


def split_before_s1(text: str) -> list[str]:
    """Cut a dialogue script right before every ``[S1]`` turn.

    Args:
        text: a valid script (``[S1] ... [S2] ...``; see ``model.tokenizer.split_dialogue``).

    Returns:
        The pieces, each starting with ``[S1]``, in order (turn texts unchanged, joined with
        single spaces).

    Raises:
        DialogueFormatError: the script is not valid.
    """
    from model.tokenizer import SPEAKER_A_TAG, join_dialogue, split_dialogue

    pieces: list[list[tuple[str, str]]] = []
    for tag, turn in split_dialogue(text):
        if tag == SPEAKER_A_TAG or not pieces:
            pieces.append([])
        pieces[-1].append((tag, turn))
    return [join_dialogue(piece) for piece in pieces]


def plan_chunks(
    pieces: Sequence[str],
    piece_tokens: Sequence[int],
    *,
    seconds_per_token: float,
    prompt_s: float,
    max_chunk_s: float = MAX_CHUNK_S,
) -> list[str]:
    """Merge consecutive pieces into chunks of at most ``max_chunk_s`` with the prompt.

    A piece is added to the current chunk while ``prompt_s + tokens * seconds_per_token``
    stays within ``max_chunk_s``; a single piece longer than that becomes a chunk of its own
    (logged), since it cannot be cut elsewhere without breaking the ``[S1]`` rule.

    Args:
        pieces: script pieces (from :func:`split_before_s1`).
        piece_tokens: token count of each piece.
        seconds_per_token: the prompt's duration per token, divided by the speed.
        prompt_s: prompt duration in seconds.
        max_chunk_s: budget for prompt + chunk.

    Returns:
        The chunk texts (pieces joined by a space), in order.
    """
    if len(pieces) != len(piece_tokens):
        raise ValueError(f"{len(pieces)} pieces but {len(piece_tokens)} token counts")
    chunks: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for piece, tokens in zip(pieces, piece_tokens):
        fits = prompt_s + (current_tokens + tokens) * seconds_per_token <= max_chunk_s
        if current and not fits:
            chunks.append(" ".join(current))
            current, current_tokens = [], 0
        current.append(piece)
        current_tokens += tokens
        if not current[1:] and prompt_s + tokens * seconds_per_token > max_chunk_s:
            logger.warning(
                "one S1->S2 exchange is about %.0f s with the prompt (budget %.0f s): it is "
                "generated as one chunk; split it with more [S1] turns for better quality",
                prompt_s + tokens * seconds_per_token,
                max_chunk_s,
            )
    if current:
        chunks.append(" ".join(current))
    return chunks


def target_num_frames(
    prompt_frames: int,
    prompt_tokens: int,
    target_tokens: int,
    *,
    speed: float = 1.0,
    short_text_tokens: int = SHORT_TEXT_TOKENS,
) -> int:
    """Frames to generate for a target text: the prompt's frames per token, with a floor.

    Upstream's rule is ``ceil(prompt_frames / prompt_tokens * target_tokens / speed)``. With
    very short texts (one or two words) it drops syllables (ZipVoice issues #37, #92, #116;
    its README advises ``--speed 0.3-0.5``). Our rule: a text of N tokens is timed as if it
    had ``max(N, min(2 N, short_text_tokens))`` tokens. So texts of ``short_text_tokens`` or
    more are unchanged; shorter ones get at least ``short_text_tokens`` tokens' worth of
    frames, but never more than twice their own (an effective speed of 0.5 at most, the
    slow end of upstream's advice, reached at N <= short_text_tokens / 2). Edge silence this
    adds is trimmed from the output.

    Args:
        prompt_frames: frames of the prompt (its appended silence included).
        prompt_tokens: tokens of the prompt text (tags, spaces and punctuation included).
        target_tokens: tokens of the target text.
        speed: speaking-rate factor (> 0; 2 means twice as fast).
        short_text_tokens: the floor described above (0 disables it).

    Returns:
        The target frame count (>= 1).
    """
    if prompt_frames <= 0 or prompt_tokens <= 0 or target_tokens <= 0:
        raise ValueError(
            f"need positive counts, got prompt_frames={prompt_frames}, "
            f"prompt_tokens={prompt_tokens}, target_tokens={target_tokens}"
        )
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    effective = max(target_tokens, min(2 * target_tokens, short_text_tokens))
    return max(1, math.ceil(prompt_frames / prompt_tokens * effective / speed))


def plan_batches(
    lengths_s: Sequence[float], *, prompt_s: float, max_batch_s: float = MAX_BATCH_S
) -> list[list[int]]:
    """Group chunk indices into generation batches, longest chunks first.

    A batch's cost is its padded length: ``len(batch) * (prompt_s + longest chunk)``; it
    must stay within ``max_batch_s`` (a chunk alone may exceed it).

    Args:
        lengths_s: estimated duration of each chunk (without the prompt).
        prompt_s: prompt duration, added to every item.
        max_batch_s: padded-seconds budget per batch.

    Returns:
        Batches of indices into ``lengths_s``; every index appears once.
    """
    order = sorted(range(len(lengths_s)), key=lambda i: (-lengths_s[i], i))
    batches: list[list[int]] = []
    for index in order:
        if batches:
            batch = batches[-1]
            longest = max(lengths_s[i] for i in batch + [index])
            if (len(batch) + 1) * (prompt_s + longest) <= max_batch_s:
                batch.append(index)
                continue
        batches.append([index])
    return batches


def crossfade_join(chunks: Sequence[np.ndarray], fade_samples: int) -> np.ndarray:
    """Concatenate ``(channels, samples)`` arrays with a linear cross-fade between neighbours.

    Over the overlap, the end of one chunk is multiplied by a ramp going from 1 to 0 and the
    start of the next by the complementary ramp (the two sum to 1), then added. The overlap
    is ``min(fade_samples, len(left), len(right))``, so the result has
    ``sum(lengths) - sum(overlaps)`` samples.

    Args:
        chunks: arrays of shape ``(C, N_i)`` with the same C.
        fade_samples: cross-fade length in samples (0: plain concatenation).

    Returns:
        ``(C, total)`` float32.
    """
    if not chunks:
        raise ValueError("nothing to join")
    channels = {chunk.shape[0] for chunk in chunks}
    if len(channels) != 1 or any(chunk.ndim != 2 for chunk in chunks):
        raise ValueError(f"chunks must be (C, N) with one C, got {[c.shape for c in chunks]}")
    out = np.asarray(chunks[0], dtype=np.float32)
    for chunk in chunks[1:]:
        chunk = np.asarray(chunk, dtype=np.float32)
        overlap = max(0, min(fade_samples, out.shape[1], chunk.shape[1]))
        if overlap == 0:
            out = np.concatenate([out, chunk], axis=1)
            continue
        # fade-out weights run from 1 down to 0 exclusive; fade-in is the complement
        fade_out = 1.0 - np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        mixed = out[:, -overlap:] * fade_out + chunk[:, :overlap] * (1.0 - fade_out)
        out = np.concatenate([out[:, :-overlap], mixed, chunk[:, overlap:]], axis=1)
    return out
