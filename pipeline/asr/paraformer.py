"""FunASR Paraformer for Chinese turns (``--zh_asr paraformer``).

The model is loaded with ``funasr.AutoModel`` from a hub alias (``paraformer-zh``, which FunASR
maps to the ModelScope SeACo-Paraformer large, 16 kHz, vocab 8404), a hub id, or a local
directory holding ``config.yaml`` + ``model.pt`` + ``tokens.json`` (+ ``am.mvn``). No package on
the registries ships Paraformer weights: the real ones come from the hub (ModelScope by
default, ``--paraformer_hub hf`` for Hugging Face), or a directory downloaded beforehand.

Paraformer gives text and per-unit timestamps (a unit is a Chinese character or an English
word) but no confidence, so the turns it transcribes carry NaN ``avg_logprob`` and word
``probability``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.text_norm import is_cjk_char
from pipeline.records import Word

logger = logging.getLogger(__name__)

__all__ = ["ParaformerResult", "ParaformerTranscriber", "join_units"]


@dataclass(frozen=True)
class ParaformerResult:
    """Text and unit timings of one chunk (times in recording seconds)."""

    text: str
    words: tuple[Word, ...] = ()


def join_units(units: Sequence[str]) -> str:
    """Join recognised units: no space around CJK characters, one space between other words.

    >>> join_units(["我", "用", "iphone", "app", "吗"])
    '我用iphone app吗'
    """
    text = ""
    for unit in units:
        if text and not is_cjk_char(text[-1]) and not is_cjk_char(unit[0]):
            text += " "
        text += unit
    return text


def _torch_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


class ParaformerTranscriber:
    """Batched Paraformer recognition of 16 kHz chunks.

    Args:
        model: ``paraformer-zh`` (hub alias), a hub id, or a local model directory.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        batch_size: chunks per forward pass.
        threads: torch intra-op threads; 0 keeps the process's current setting.
        word_timestamps: ask for per-unit timestamps.
        hub: ``ms`` (ModelScope) or ``hf`` (Hugging Face), for names that are not directories.
    """

    def __init__(
        self,
        model: str = "paraformer-zh",
        device: str = "cpu",
        batch_size: int = 8,
        threads: int = 0,
        word_timestamps: bool = True,
        hub: str = "ms",
    ):
        import torch

        from core.startup_noise import import_funasr

        AutoModel = import_funasr().AutoModel  # noqa: N806 - funasr's class

        # AutoModel calls logging.basicConfig(level=...) and torch.set_num_threads(ncpu):
        # hand it the current values so loading it changes neither
        root_level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self.batch_size = batch_size
        self.word_timestamps = word_timestamps
        try:
            self.model = AutoModel(
                model=model,
                device=_torch_device(device),
                hub=hub,
                ncpu=threads or torch.get_num_threads(),
                disable_update=True,
                disable_pbar=True,
                log_level=root_level,
            )
        except Exception as exc:  # funasr reports a failed download as a later, unrelated error
            raise RuntimeError(
                f"--paraformer_model {model!r} could not be loaded ({type(exc).__name__}: "
                f"{exc}); hub names need network access to {hub!r}, or give a local directory "
                "with config.yaml, model.pt and tokens.json"
            ) from exc
        logger.info("Paraformer loaded from %s", self.model.model_path or model)

    def transcribe(
        self, chunks: Sequence[np.ndarray], offsets_s: Sequence[float]
    ) -> list[ParaformerResult]:
        """Recognise ``chunks`` (16 kHz mono float32); word times are shifted by ``offsets_s``."""
        results: list[ParaformerResult] = []
        for begin in range(0, len(chunks), self.batch_size):
            batch = [
                np.ascontiguousarray(c, dtype=np.float32)
                for c in chunks[begin : begin + self.batch_size]
            ]
            keys = [f"chunk{begin + k}" for k in range(len(batch))]
            raw = self.model.generate(
                input=batch, key=keys, batch_size=len(batch), output_timestamp=self.word_timestamps
            )
            by_key = {r.get("key"): r for r in raw if isinstance(r, dict)}
            for k, key in enumerate(keys):
                # a batch where no chunk yields a token comes back as one keyless empty result
                results.append(
                    self._result(by_key.get(key, {}), offsets_s[begin + k], len(batch[k]) / 16000.0)
                )
        return results

    @staticmethod
    def _result(raw: dict[str, Any], offset_s: float, duration_s: float) -> ParaformerResult:
        text = str(raw.get("text", "") or "").strip()
        stamps = raw.get("timestamp") or []
        units = text.split()
        if not stamps:
            return ParaformerResult(text=join_units(units) if units else text)
        if len(stamps) != len(units):
            logger.debug(
                "Paraformer: %d units but %d timestamps; words dropped", len(units), len(stamps)
            )
            return ParaformerResult(text=join_units(units))
        words, cursor = [], offset_s
        end_s = offset_s + duration_s
        for unit, (start_ms, end_ms) in zip(units, stamps):
            start = min(max(offset_s + start_ms / 1000.0, cursor), end_s)
            end = min(max(offset_s + end_ms / 1000.0, start), end_s)
            words.append(
                Word(start=round(start, 3), end=round(end, 3), text=unit, probability=math.nan)
            )
            cursor = start
        return ParaformerResult(text=join_units(units), words=tuple(words))
