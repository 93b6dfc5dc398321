"""Exponential moving average of a network's weights (the "averaged model" kept while training).

Upstream keeps a running average updated every 200 steps and averages checkpoints at the end;
an EMA with a warm-up of its decay serves the same purpose in one pass and is what F5-TTS and
the Distill stage-2 teacher use. The shadow weights are float32 whatever the training dtype.

>>> ema = ModelEma(network, decay=0.999)  # doctest: +SKIP
>>> ema.update(network, step)             # after each optimizer step  # doctest: +SKIP
>>> network_avg.load_state_dict(ema.state_dict_for(network))  # doctest: +SKIP
"""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)


@torch.no_grad()
def ema_update(
    average: dict[str, torch.Tensor], state: dict[str, torch.Tensor], decay: float
) -> None:
    """``average = decay·average + (1 − decay)·state`` in place, for every floating-point tensor
    of ``average``; its other tensors are copied from ``state``.

    ``average`` is :class:`ModelEma`'s shadow, or a module's ``state_dict()`` (whose tensors share
    the module's storage, so the module itself becomes the average: the Distill stage-2 teacher).
    """
    for name, avg in average.items():
        value = state[name].detach()
        if avg.is_floating_point():
            avg.mul_(decay).add_(value.to(avg.dtype), alpha=1.0 - decay)
        else:
            avg.copy_(value)


class ModelEma:
    """EMA of all floating-point parameters and buffers of a module.

    The effective decay at update ``step`` is ``min(decay, (1 + step) / (10 + step))`` when
    ``warmup`` is on, so early weights (random) are forgotten quickly.

    Args:
        model: the module to average (its current weights start the average).
        decay: the asymptotic decay in (0, 1).
        warmup: ramp the decay up as above.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay={decay}: need 0 < decay < 1")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: value.detach().float().clone()
            for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    def decay_at(self, step: int) -> float:
        """The decay used for the update at ``step`` (0-based)."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the model's current weights into the average.

        Args:
            model: the trained module (same structure as at construction).
            step: 0-based index of the optimizer step just taken.
        """
        state = model.state_dict()
        for name, avg in self.shadow.items():
            if avg.device != state[name].device:
                self.shadow[name] = avg.to(state[name].device)
        ema_update(self.shadow, state, self.decay_at(step))
        self.num_updates += 1

    def state_dict_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """A state dict for ``model`` with the averaged weights (non-float entries copied).

        Args:
            model: a module of the averaged structure (gives dtypes and non-float buffers).

        Returns:
            A state dict loadable by ``model.load_state_dict``.
        """
        out = {}
        for name, value in model.state_dict().items():
            if name in self.shadow:
                out[name] = self.shadow[name].to(device=value.device, dtype=value.dtype).clone()
            else:
                out[name] = value.detach().clone()
        return out

    def state_dict(self) -> dict:
        """Serializable state (shadow weights on CPU)."""
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "num_updates": self.num_updates,
            "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (tensors keep this object's devices).

        Raises:
            ValueError: the saved average covers other tensors than this one.
        """
        if set(state["shadow"]) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(state["shadow"]))
            extra = sorted(set(state["shadow"]) - set(self.shadow))
            raise ValueError(f"EMA state mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name] = value.to(self.shadow[name].device).float().clone()
