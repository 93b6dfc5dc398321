"""Scaling primitives of the Zipformer: activations, BiasNorm, schedules, regularisers.

Plain-torch implementations (no k2). The forward values match upstream ZipVoice's
``scaling.py``; the training-only gradient tricks are simplified:

* ``Balancer`` and ``Whiten`` only modify gradients upstream; here they are identity
  modules in both modes (documented gap: no gradient regularisation).
* ``SwooshL`` / ``SwooshR`` use ordinary autograd instead of upstream's 8-bit stored
  derivative (same function, exact gradient).
* ``limit_param_value`` is implemented (gradient sign flip outside ``[min, max]``).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

_SWOOSH_L_OFFSET = 4.0
_SWOOSH_L_CONST = 0.035
_SWOOSH_R_OFFSET = 1.0
_SWOOSH_R_CONST = 0.313261687
_SWOOSH_SLOPE = 0.08


def _swoosh(x: Tensor, offset: float, const: float) -> Tensor:
    """``softplus(x - offset) - 0.08 x - const`` in float32.

    Without autograd (inference, ``no_grad``) the tail runs in place on the softplus
    output: two passes over the tensor fewer, the same values up to rounding.
    """
    dtype = x.dtype
    x = x.float()
    if torch.is_grad_enabled() or is_exporting():
        y = nn.functional.softplus(x - offset, beta=1.0, threshold=30.0)
        return (y - _SWOOSH_SLOPE * x - const).to(dtype)
    return _swoosh_less_const(x, offset).sub_(const).to(dtype)


def _swoosh_less_const(x: Tensor, offset: float) -> Tensor:
    """``softplus(x - offset) - 0.08 x`` of a float32 ``x`` for inference, in a new tensor."""
    return _shifted_softplus(x, offset).add_(x, alpha=-_SWOOSH_SLOPE)


def _shifted_softplus(x: Tensor, offset: float) -> Tensor:
    """``softplus(x - offset)`` for inference, in a new tensor.

    On the CPU it is ``log1p(exp(x - offset))`` computed in place (torch's ``softplus`` kernel
    evaluates the same expression, with a threshold test, about 20 % slower). Above 30 that is
    ``x - offset`` to within an ulp, as the threshold gives; where ``exp`` overflows (above 88)
    the elements are replaced by ``x - offset``.
    """
    if x.device.type != "cpu":
        return nn.functional.softplus(x - offset, beta=1.0, threshold=30.0)
    y = torch.sub(x, offset)
    y.exp_().log1p_()
    if y.max() == math.inf:
        y = torch.where(torch.isinf(y), x - offset, y)
    return y


def is_exporting() -> bool:
    """True while tracing, scripting, exporting or compiling: data-dependent shortcuts
    (in-place tails, skipping an all-False mask) stay out of recorded graphs."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + exp(x - 4)) - 0.08 x - 0.035 (computed in float32)."""
    return _swoosh(x, _SWOOSH_L_OFFSET, _SWOOSH_L_CONST)


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + exp(x - 1)) - 0.08 x - 0.313261687 (computed in float32)."""
    return _swoosh(x, _SWOOSH_R_OFFSET, _SWOOSH_R_CONST)


class SwooshL(nn.Module):
    """Module wrapper of :func:`swoosh_l`."""

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_l(x)


class SwooshR(nn.Module):
    """Module wrapper of :func:`swoosh_r`."""

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_r(x)


class ScheduledFloat(nn.Module):
    """A float that follows a piecewise-linear schedule over the training batch count.

    It is an ``nn.Module`` (without parameters or buffers) only so that
    :func:`set_batch_count` finds it through ``model.modules()``. ``float(self)``
    returns ``default`` when the module is in eval mode or no batch count was set,
    otherwise the schedule evaluated at ``batch_count`` (constant beyond the ends).

    Args:
        *points: ``(batch_count, value)`` pairs with strictly increasing batch counts.
        default: Value in eval mode or before any batch count is set.
    """

    def __init__(self, *points: tuple[float, float], default: float = 0.0) -> None:
        super().__init__()
        if not points:
            raise ValueError("ScheduledFloat needs at least one (x, y) point")
        xs = [float(p[0]) for p in points]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError(f"schedule x values must increase strictly: {xs}")
        self.points: tuple[tuple[float, float], ...] = tuple(
            (float(x), float(y)) for x, y in points
        )
        self.default = float(default)
        self.batch_count: float | None = None

    def value_at(self, batch_count: float) -> float:
        """Evaluates the schedule at ``batch_count``."""
        pts = self.points
        if batch_count <= pts[0][0]:
            return pts[0][1]
        if batch_count >= pts[-1][0]:
            return pts[-1][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if x0 <= batch_count <= x1:
                return y0 + (y1 - y0) * (batch_count - x0) / (x1 - x0)
        raise AssertionError("unreachable")

    def __float__(self) -> float:
        if self.batch_count is None or not self.training:
            return self.default
        return self.value_at(self.batch_count)

    def extra_repr(self) -> str:
        return f"points={self.points}, default={self.default}, batch_count={self.batch_count}"


FloatLike = float | ScheduledFloat


def set_batch_count(model: nn.Module, batch_count: float) -> None:
    """Sets the training batch count on every :class:`ScheduledFloat` inside ``model``."""
    for module in model.modules():
        if isinstance(module, ScheduledFloat):
            module.batch_count = float(batch_count)


class _LimitParamValue(torch.autograd.Function):
    """Identity forward; backward flips gradient signs that push x further out of range."""

    @staticmethod
    def forward(ctx, x: Tensor, min_value: float, max_value: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.min_value = min_value
        ctx.max_value = max_value
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        flip_low = (grad > 0) & (x < ctx.min_value)
        flip_high = (grad < 0) & (x > ctx.max_value)
        grad = torch.where(flip_low | flip_high, -grad, grad)
        return grad, None, None


def limit_param_value(
    x: Tensor, min_value: float, max_value: float, prob: float = 0.6, training: bool = True
) -> Tensor:
    """Keeps a parameter mostly inside ``[min_value, max_value]`` through its gradient.

    Identity in the forward pass. In training, with probability ``prob``, the backward
    pass flips gradient components that would move elements further out of range.
    """
    if max_value < min_value:
        raise ValueError(f"max_value {max_value} < min_value {min_value}")
    if training and torch.is_grad_enabled() and random.random() < prob:
        return _LimitParamValue.apply(x, min_value, max_value)
    return x


class BiasNorm(nn.Module):
    """Zipformer's LayerNorm replacement: ``x * rms(x - bias)^-1 * exp(log_scale)``.

    The bias only enters the scale computation, not the output offset.

    Args:
        num_channels: Size of the channel axis.
        channel_dim: Channel axis (negative counts from the end).
        log_scale: Initial log of the output scale.
        log_scale_min: Lower limit enforced on ``log_scale`` during training.
        log_scale_max: Upper limit enforced on ``log_scale`` during training.
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int = -1,
        log_scale: float = 1.0,
        log_scale_min: float = -1.5,
        log_scale_max: float = 1.5,
    ) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale_min = log_scale_min
        self.log_scale_max = log_scale_max

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[self.channel_dim] != self.num_channels:
            raise ValueError(
                f"BiasNorm expects {self.num_channels} channels on dim {self.channel_dim}, "
                f"got shape {tuple(x.shape)}"
            )
        channel_dim = self.channel_dim % x.ndim
        bias = self.bias.view([-1] + [1] * (x.ndim - channel_dim - 1))
        log_scale = limit_param_value(
            self.log_scale, self.log_scale_min, self.log_scale_max, training=self.training
        )
        scales = torch.mean((x - bias) ** 2, dim=channel_dim, keepdim=True) ** -0.5
        return x * (scales * log_scale.exp())


def scaled_linear(
    in_features: int, out_features: int, bias: bool = True, initial_scale: float = 1.0
) -> nn.Linear:
    """An ``nn.Linear`` whose initial weight is multiplied by ``initial_scale``.

    The bias (if any) is drawn from ``U(-0.1 * initial_scale, 0.1 * initial_scale)``.
    """
    linear = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        linear.weight.mul_(initial_scale)
        if linear.bias is not None:
            nn.init.uniform_(linear.bias, -0.1 * initial_scale, 0.1 * initial_scale)
    return linear


class ActivationDropoutAndLinear(nn.Module):
    """Swoosh activation, dropout (mask optionally shared along one axis), then linear.

    Holds ``weight`` and ``bias`` directly (upstream's parameter names).

    Args:
        in_channels: Input size.
        out_channels: Output size.
        bias: Whether to use a bias.
        activation: ``"SwooshL"`` or ``"SwooshR"``.
        dropout_p: Dropout probability (float or schedule), applied in training only.
        dropout_shared_dim: Axis along which the dropout mask is shared, or None.
        initial_scale: Initial weight scale, as in :func:`scaled_linear`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        activation: str = "SwooshL",
        dropout_p: FloatLike = 0.0,
        dropout_shared_dim: int | None = -1,
        initial_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in ("SwooshL", "SwooshR"):
            raise ValueError(f"unsupported activation {activation!r}")
        linear = scaled_linear(in_channels, out_channels, bias=bias, initial_scale=initial_scale)
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self.activation = activation
        self.dropout_p = dropout_p
        self.dropout_shared_dim = dropout_shared_dim

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training or torch.is_grad_enabled() or is_exporting()):
            return self._inference(x)
        x = swoosh_l(x) if self.activation == "SwooshL" else swoosh_r(x)
        p = float(self.dropout_p)
        if self.training and p > 0.0:
            shape = list(x.shape)
            if self.dropout_shared_dim is not None:
                shape[self.dropout_shared_dim] = 1
            mask = (torch.rand(shape, device=x.device) > p).to(x.dtype) / (1.0 - p)
            x = x * mask
        return nn.functional.linear(x, self.weight, self.bias)

    def _inference(self, x: Tensor) -> Tensor:
        """The same output with one pass over the hidden tensor fewer: the activation's
        constant goes into the bias, ``W (h - c) + b = W h + (b - c W 1)``."""
        if self.activation == "SwooshL":
            offset, const = _SWOOSH_L_OFFSET, _SWOOSH_L_CONST
        else:
            offset, const = _SWOOSH_R_OFFSET, _SWOOSH_R_CONST
        hidden = _swoosh_less_const(x.float(), offset).to(x.dtype)
        bias = self.weight.sum(dim=1).mul_(-const)
        if self.bias is not None:
            bias.add_(self.bias)
        return nn.functional.linear(hidden, self.weight, bias)


class Balancer(nn.Module):
    """Placeholder for upstream's gradient Balancer: identity in forward and backward.

    Upstream only changes gradients (to keep per-channel statistics in range); this
    port does not, so it is an exact identity. The constructor accepts and ignores the
    upstream arguments so call sites read the same.
    """

    def __init__(self, num_channels: int, channel_dim: int, **_: object) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim

    def forward(self, x: Tensor) -> Tensor:
        return x


class Whiten(nn.Module):
    """Placeholder for upstream's whitening-penalty module: identity (see :class:`Balancer`)."""

    def __init__(self, num_groups: int = 1, **_: object) -> None:
        super().__init__()
        self.num_groups = num_groups

    def forward(self, x: Tensor) -> Tensor:
        return x


def sequence_dropout_mask(
    x: Tensor, rate: float, training: bool, batch_dim: int = 1
) -> Tensor | None:
    """A per-sequence keep mask of shape ``(batch, 1)`` (None when inactive).

    Args:
        x: Tensor whose ``batch_dim`` axis is the batch.
        rate: Probability of dropping a whole sequence.
        training: Whether the module is training.
        batch_dim: Axis of ``x`` holding the batch.
    """
    if rate == 0.0 or not training:
        return None
    batch_size = x.shape[batch_dim]
    return (torch.rand(batch_size, 1, device=x.device) > rate).to(x.dtype)


def to_tuple(value: int | Sequence[int], length: int) -> tuple[int, ...]:
    """Expands an int (or 1-sequence) to a tuple of ``length`` ints; checks the length."""
    if isinstance(value, int):
        return (value,) * length
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * length
    if len(value) != length:
        raise ValueError(f"expected {length} values, got {len(value)}: {value}")
    return value
