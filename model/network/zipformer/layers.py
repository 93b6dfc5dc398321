"""The Zipformer2 encoder layer and its feed-forward, convolution and bypass blocks."""

from __future__ import annotations

import copy
import random

import torch
from torch import Tensor, nn

from model.network.zipformer.attention import (
    NonlinAttention,
    RelPositionMultiheadAttentionWeights,
    SelfAttention,
)
from model.network.zipformer.scaling import (
    ActivationDropoutAndLinear,
    Balancer,
    BiasNorm,
    FloatLike,
    ScheduledFloat,
    Whiten,
    limit_param_value,
    sequence_dropout_mask,
)


class FeedforwardModule(nn.Module):
    """Linear, SwooshL, dropout (mask shared over time), linear.

    Args:
        embed_dim: Input and output channels.
        feedforward_dim: Hidden width.
        dropout: Dropout probability or schedule.
    """

    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: FloatLike) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, feedforward_dim)
        self.hidden_balancer = Balancer(feedforward_dim, channel_dim=-1)
        self.out_proj = ActivationDropoutAndLinear(
            feedforward_dim,
            embed_dim,
            activation="SwooshL",
            dropout_p=dropout,
            dropout_shared_dim=0,
            bias=True,
            initial_scale=0.1,
        )
        self.out_whiten = Whiten(num_groups=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.hidden_balancer(self.in_proj(x))
        return self.out_whiten(self.out_proj(x))


class ConvolutionModule(nn.Module):
    """GLU, depthwise convolution (padding frames zeroed first), SwooshR, linear.

    Args:
        channels: Input and output channels.
        kernel_size: Odd kernel size of the depthwise convolution.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_proj = nn.Linear(channels, 2 * channels)
        self.balancer1 = Balancer(channels, channel_dim=-1)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.balancer2 = Balancer(channels, channel_dim=1)
        self.whiten = Whiten(num_groups=1)
        self.out_proj = ActivationDropoutAndLinear(
            channels, channels, activation="SwooshR", dropout_p=0.0, initial_scale=0.05
        )

    def forward(self, x: Tensor, src_key_padding_mask: Tensor | None = None) -> Tensor:
        """Args: x ``(T, B, C)``; src_key_padding_mask ``(B, T)``, True = padding."""
        x, s = self.in_proj(x).chunk(2, dim=2)
        x = x * torch.sigmoid(self.balancer1(s))
        x = x.permute(1, 2, 0)  # (B, C, T)
        if src_key_padding_mask is not None:
            x = x.masked_fill(src_key_padding_mask.unsqueeze(1), 0.0)
        x = self.balancer2(self.depthwise_conv(x))
        x = x.permute(2, 0, 1)
        return self.out_proj(self.whiten(x))


class BypassModule(nn.Module):
    """Learned per-channel interpolation ``orig + (new - orig) * scale``.

    In training the scale is kept within ``[scale_min, scale_max]`` (through its
    gradient) and whole sequences are randomly bypassed with ``skip_rate``.

    Args:
        embed_dim: Channels.
        skip_rate: Per-sequence probability of returning ``orig`` (training).
        straight_through_rate: Per-sequence probability of returning ``new`` (training).
        scale_min: Lower limit of the scale (training).
        scale_max: Upper limit of the scale (training).
    """

    def __init__(
        self,
        embed_dim: int,
        skip_rate: FloatLike = 0.0,
        straight_through_rate: FloatLike = 0.0,
        scale_min: FloatLike | None = None,
        scale_max: FloatLike = 1.0,
    ) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.skip_rate = copy.deepcopy(skip_rate)
        self.straight_through_rate = copy.deepcopy(straight_through_rate)
        self.scale_min = (
            ScheduledFloat((0.0, 0.9), (20000.0, 0.2), default=0.0)
            if scale_min is None
            else copy.deepcopy(scale_min)
        )
        self.scale_max = copy.deepcopy(scale_max)

    def _scale(self, batch_size: int) -> Tensor:
        if not self.training:
            return self.bypass_scale
        scale = limit_param_value(self.bypass_scale, float(self.scale_min), float(self.scale_max))
        skip_rate = float(self.skip_rate)
        if skip_rate != 0.0:
            keep = torch.rand((batch_size, 1), device=scale.device) > skip_rate
            scale = scale * keep
        straight_rate = float(self.straight_through_rate)
        if straight_rate != 0.0:
            through = torch.rand((batch_size, 1), device=scale.device) < straight_rate
            scale = torch.maximum(scale, through.to(scale.dtype))
        return scale

    def forward(self, src_orig: Tensor, src: Tensor) -> Tensor:
        """Args: both ``(T, B, C)``."""
        scale = self._scale(src.shape[1])
        if torch.is_grad_enabled():
            return src_orig + (src - src_orig) * scale
        return torch.addcmul(src_orig, src - src_orig, scale)


def _default_layer_schedules() -> dict[str, ScheduledFloat]:
    return {
        "attention_skip_rate": ScheduledFloat((0.0, 0.2), (4000.0, 0.05), (16000, 0.0), default=0),
        "conv_skip_rate": ScheduledFloat((0.0, 0.2), (4000.0, 0.05), (16000, 0.0), default=0),
        "const_attention_rate": ScheduledFloat((0.0, 0.25), (4000.0, 0.025), default=0),
        "ff2_skip_rate": ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0)),
        "ff3_skip_rate": ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0)),
        "bypass_skip_rate": ScheduledFloat((0.0, 0.5), (4000.0, 0.02), default=0),
    }


class Zipformer2EncoderLayer(nn.Module):
    """One Zipformer2 layer: 3 feed-forwards, non-linear attention, 2 self-attentions
    sharing one weight computation, 2 convolutions, mid and final bypass, BiasNorm.

    The time embedding (when given) is added at layer entry and before each
    convolution module.

    Args:
        embed_dim: Channels.
        pos_dim: Positional encoding size.
        num_heads: Attention heads.
        query_head_dim: Query/key size per head.
        pos_head_dim: Positional query size per head.
        value_head_dim: Value size per head.
        feedforward_dim: Width of the middle feed-forward (the others use 3/4 and 5/4).
        dropout: Feed-forward dropout (float or schedule).
        cnn_module_kernel: Depthwise convolution kernel size.
    """

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        value_head_dim: int,
        feedforward_dim: int,
        dropout: FloatLike = 0.1,
        cnn_module_kernel: int = 31,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        schedules = _default_layer_schedules()
        self.bypass = BypassModule(embed_dim, skip_rate=schedules["bypass_skip_rate"])
        self.bypass_mid = BypassModule(embed_dim)
        self.attention_skip_rate = schedules["attention_skip_rate"]
        self.conv_skip_rate = schedules["conv_skip_rate"]
        self.const_attention_rate = schedules["const_attention_rate"]
        self.ff2_skip_rate = schedules["ff2_skip_rate"]
        self.ff3_skip_rate = schedules["ff3_skip_rate"]

        self.self_attn_weights = RelPositionMultiheadAttentionWeights(
            embed_dim,
            pos_dim=pos_dim,
            num_heads=num_heads,
            query_head_dim=query_head_dim,
            pos_head_dim=pos_head_dim,
            dropout=0.0,
        )
        self.self_attn1 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedforwardModule(embed_dim, (feedforward_dim * 3) // 4, dropout)
        self.feed_forward2 = FeedforwardModule(embed_dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedforwardModule(embed_dim, (feedforward_dim * 5) // 4, dropout)
        self.nonlin_attention = NonlinAttention(embed_dim, hidden_channels=3 * embed_dim // 4)
        self.conv_module1 = ConvolutionModule(embed_dim, cnn_module_kernel)
        self.conv_module2 = ConvolutionModule(embed_dim, cnn_module_kernel)
        self.norm = BiasNorm(embed_dim)
        self.balancer1 = Balancer(embed_dim, channel_dim=-1)
        self.balancer_na = Balancer(embed_dim, channel_dim=-1)
        self.balancer_ff2 = Balancer(embed_dim, channel_dim=-1)
        self.balancer_ff3 = Balancer(embed_dim, channel_dim=-1)
        self.whiten = Whiten(num_groups=1)
        self.balancer2 = Balancer(embed_dim, channel_dim=-1)

    def _rate(self, schedule: FloatLike) -> float:
        return float(schedule) if self.training else 0.0

    @staticmethod
    def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
        return x if mask is None else x * mask

    def forward(
        self,
        src: Tensor,
        pos_emb: Tensor,
        time_emb: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Runs the layer.

        Args:
            src: ``(T, B, C)``.
            pos_emb: ``(1, 2T-1, pos_dim)``.
            time_emb: ``(B, C)`` or ``(T, B, C)``, or None.
            attn_mask: Optional ``(T, T)`` / ``(B, T, T)`` bool mask, True = masked.
            src_key_padding_mask: ``(B, T)`` bool, True = padding.

        Returns:
            ``(T, B, C)``.
        """
        src_orig = src
        attn_weights = self.self_attn_weights(
            src, pos_emb=pos_emb, attn_mask=attn_mask, key_padding_mask=src_key_padding_mask
        )
        if time_emb is not None:
            src = src + time_emb
        src = src + self.feed_forward1(src)

        attn_drop = sequence_dropout_mask(src, self._rate(self.attention_skip_rate), self.training)
        selected = attn_weights[0:1]
        if self.training and random.random() < float(self.const_attention_rate):
            # Uniform weights over the attended positions: pushes the non-linear
            # attention towards time averaging early in training.
            selected = (selected > 0.0).to(selected.dtype)
            selected = selected / selected.sum(dim=-1, keepdim=True)
        na = self.balancer_na(self.nonlin_attention(src, selected))
        src = src + self._masked(na, attn_drop)
        src = src + self._masked(self.self_attn1(src, attn_weights), attn_drop)

        if time_emb is not None:
            src = src + time_emb
        conv_drop = sequence_dropout_mask(src, self._rate(self.conv_skip_rate), self.training)
        src = src + self._masked(self.conv_module1(src, src_key_padding_mask), conv_drop)

        ff2_drop = sequence_dropout_mask(src, self._rate(self.ff2_skip_rate), self.training)
        src = src + self._masked(self.balancer_ff2(self.feed_forward2(src)), ff2_drop)

        src = self.bypass_mid(src_orig, src)
        src = src + self._masked(self.self_attn2(src, attn_weights), attn_drop)

        if time_emb is not None:
            src = src + time_emb
        conv_drop = sequence_dropout_mask(src, self._rate(self.conv_skip_rate), self.training)
        src = src + self._masked(self.conv_module2(src, src_key_padding_mask), conv_drop)

        ff3_drop = sequence_dropout_mask(src, self._rate(self.ff3_skip_rate), self.training)
        src = src + self._masked(self.balancer_ff3(self.feed_forward3(src)), ff3_drop)

        src = self.norm(self.balancer1(src))
        src = self.bypass(src_orig, src)
        return self.whiten(self.balancer2(src))
