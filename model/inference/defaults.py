"""A checkpoint's sampling defaults: its ``inference.json``, else upstream's for its variant.

``inference.json`` sits in a checkpoint directory (``model.network.student`` writes one for every
distilled student; an ONNX export copies it)::

    {"num_step": 4, "guidance_scale": 1.5, "t_shift": 0.5, "guidance_input": true, ...}

``num_step``/``guidance_scale``/``t_shift`` are what the inference CLI uses when the user gives
none. Reading is lenient: a missing field takes its default, ``num_steps`` is read as
``num_step``, and unknown fields are ignored. No torch import, so that inspecting a checkpoint
stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFERENCE_FILE = "inference.json"

TEACHER_DEFAULTS = {
    "zipvoice": (16, 1.0),
    "dialog": (16, 1.5),
    "dialog_stereo": (16, 1.5),
    "distill": (8, 3.0),
}
"""Upstream's default ``(num_step, guidance_scale)`` per variant (reference §1.7-1.8); any other
variant (or an unknown one) gets ZipVoice-Dialog's 16 steps, guidance 1.5."""


@dataclass(frozen=True)
class InferenceDefaults:
    """Sampling defaults saved with a checkpoint (``inference.json``).

    Attributes:
        num_step: Euler steps.
        guidance_scale: CFG weight w (an input of a distilled network).
        t_shift: time warp of the Euler grid.
        guidance_input: the network takes w as an input (distilled: one pass per step).
        distill_stage: 1 or 2 for a distilled network, 0 otherwise.
        teacher: where the distillation teacher came from (informational).
    """

    num_step: int = 16
    guidance_scale: float = 1.5
    t_shift: float = 0.5
    guidance_input: bool = False
    distill_stage: int = 0
    teacher: str = ""

    def __post_init__(self) -> None:
        if self.num_step < 1:
            raise ValueError(f"num_step={self.num_step}: need >= 1")
        if self.t_shift <= 0:
            raise ValueError(f"t_shift={self.t_shift}: need > 0")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale={self.guidance_scale}: need >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def for_variant(cls, variant: str | None) -> InferenceDefaults:
        """Upstream's defaults for a network variant without ``inference.json``."""
        num_step, guidance = TEACHER_DEFAULTS.get(variant, (16, 1.5))
        return cls(num_step=num_step, guidance_scale=guidance, guidance_input=variant == "distill")


def write_inference_defaults(defaults: InferenceDefaults, directory: str | Path) -> Path:
    """Writes ``directory/inference.json``; returns its path."""
    path = Path(directory) / INFERENCE_FILE
    path.write_text(json.dumps(defaults.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def read_inference_defaults(directory: str | Path) -> InferenceDefaults | None:
    """``directory/inference.json`` if present, else None.

    Raises:
        ValueError: the file is not a JSON object of valid defaults.
    """
    path = Path(directory) / INFERENCE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(InferenceDefaults)}
        base = InferenceDefaults()
        return InferenceDefaults(
            **{
                **{k: v for k, v in data.items() if k in fields},
                "num_step": int(data.get("num_step", data.get("num_steps", base.num_step))),
                "guidance_scale": float(data.get("guidance_scale", base.guidance_scale)),
                "t_shift": float(data.get("t_shift", base.t_shift)),
            }
        )
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: unreadable sampling defaults ({error})") from None


def inference_defaults(directory: str | Path | None, variant: str | None) -> InferenceDefaults:
    """The checkpoint's ``inference.json`` when present, else :meth:`InferenceDefaults.for_variant`.

    Raises:
        ValueError: an unreadable ``inference.json``.
    """
    defaults = read_inference_defaults(directory) if directory is not None else None
    return defaults if defaults is not None else InferenceDefaults.for_variant(variant)
