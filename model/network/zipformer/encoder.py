"""Zipformer stacks: the layer stack, its down/up-sampled wrapper, and the TTS U-Net."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from model.network.zipformer.layers import BypassModule, Zipformer2EncoderLayer
from model.network.zipformer.positional import CompactRelPositionalEncoding, timestep_embedding
from model.network.zipformer.scaling import (
    FloatLike,
    ScheduledFloat,
    SwooshR,
    is_exporting,
    scaled_linear,
    to_tuple,
)

GUIDANCE_SCALE_EMBED_DIM = 192
"""Sinusoidal size of the distilled model's guidance-scale input (fixed upstream)."""


class Zipformer2Encoder(nn.Module):
    """A stack of identical Zipformer2 layers sharing one positional encoding.

    Args:
        encoder_layer: Layer to deep-copy ``num_layers`` times.
        num_layers: Number of layers.
        embed_dim: Channels.
        time_embed_dim: Size of the incoming time embedding, or -1 for none.
        pos_dim: Positional encoding size.
        warmup_begin: Batch count at which layer-skip warm-up starts.
        warmup_end: Batch count at which it ends.
        initial_layerdrop_rate: Layer-skip rate at the start of warm-up.
        final_layerdrop_rate: Layer-skip rate after warm-up (training only).
    """

    def __init__(
        self,
        encoder_layer: Zipformer2EncoderLayer,
        num_layers: int,
        embed_dim: int,
        time_embed_dim: int,
        pos_dim: int,
        warmup_begin: float,
        warmup_end: float,
        initial_layerdrop_rate: float = 0.5,
        final_layerdrop_rate: float = 0.05,
    ) -> None:
        super().__init__()
        self.encoder_pos = CompactRelPositionalEncoding(pos_dim, dropout_rate=0.15)
        self.time_emb = (
            nn.Sequential(SwooshR(), nn.Linear(time_embed_dim, embed_dim))
            if time_embed_dim != -1
            else None
        )
        self.layers = nn.ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        if not 0 <= warmup_begin <= warmup_end:
            raise ValueError(f"bad warm-up range {warmup_begin}..{warmup_end}")
        delta = (warmup_end - warmup_begin) / num_layers
        begin = warmup_begin
        for layer in self.layers:
            layer.bypass.skip_rate = ScheduledFloat(
                (begin, initial_layerdrop_rate), (begin + delta, final_layerdrop_rate), default=0.0
            )
            begin += delta

    def forward(
        self,
        src: Tensor,
        time_emb: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Args: src ``(T, B, C)``; time_emb ``(B, time_embed_dim)`` or None."""
        pos_emb = self.encoder_pos(src)
        if self.time_emb is not None:
            if time_emb is None:
                raise ValueError("this encoder needs a time embedding")
            time_emb = self.time_emb(time_emb)
        elif time_emb is not None:
            raise ValueError("this encoder takes no time embedding")
        out = src
        for layer in self.layers:
            out = layer(
                out,
                pos_emb,
                time_emb=time_emb,
                attn_mask=attn_mask,
                src_key_padding_mask=src_key_padding_mask,
            )
        return out


class SimpleDownsample(nn.Module):
    """Downsamples time by a learned softmax-weighted sum over each group of frames.

    The sequence is right-padded by repeating its last frame.
    """

    def __init__(self, downsample: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(downsample))
        self.downsample = downsample

    def forward(self, src: Tensor) -> Tensor:
        """``(T, B, C)`` -> ``(ceil(T / ds), B, C)``."""
        seq_len, batch_size, channels = src.shape
        ds = self.downsample
        d_seq_len = (seq_len + ds - 1) // ds
        pad = d_seq_len * ds - seq_len
        if pad:
            src = torch.cat([src, src[-1:].expand(pad, batch_size, channels)], dim=0)
        src = src.reshape(d_seq_len, ds, batch_size, channels)
        weights = self.bias.softmax(dim=0).unsqueeze(-1).unsqueeze(-1)
        return (src * weights).sum(dim=1)


class SimpleUpsample(nn.Module):
    """Upsamples time by repeating each frame ``upsample`` times."""

    def __init__(self, upsample: int) -> None:
        super().__init__()
        self.upsample = upsample

    def forward(self, src: Tensor) -> Tensor:
        """``(T, B, C)`` -> ``(T * upsample, B, C)``."""
        seq_len, batch_size, channels = src.shape
        src = src.unsqueeze(1).expand(seq_len, self.upsample, batch_size, channels)
        return src.reshape(seq_len * self.upsample, batch_size, channels)


class DownsampledZipformer2Encoder(nn.Module):
    """Runs an encoder at a reduced frame rate and combines its upsampled output with
    the input through a learned bypass (``out_combiner``).

    Args:
        encoder: The inner :class:`Zipformer2Encoder`.
        dim: Channels.
        downsample: Downsampling factor.
    """

    def __init__(self, encoder: Zipformer2Encoder, dim: int, downsample: int) -> None:
        super().__init__()
        self.downsample_factor = downsample
        self.downsample = SimpleDownsample(downsample)
        self.num_layers = encoder.num_layers
        self.encoder = encoder
        self.upsample = SimpleUpsample(downsample)
        self.out_combiner = BypassModule(dim, straight_through_rate=0)

    def forward(
        self,
        src: Tensor,
        time_emb: Tensor | None = None,
        attn_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Same contract as :meth:`Zipformer2Encoder.forward`."""
        src_orig = src
        ds = self.downsample_factor
        src = self.downsample(src)
        if time_emb is not None and time_emb.dim() == 3:
            time_emb = time_emb[::ds]
        if attn_mask is not None:
            attn_mask = attn_mask[..., ::ds, ::ds]
        if src_key_padding_mask is not None:
            src_key_padding_mask = src_key_padding_mask[..., ::ds]
        src = self.encoder(
            src, time_emb=time_emb, attn_mask=attn_mask, src_key_padding_mask=src_key_padding_mask
        )
        src = self.upsample(src)[: src_orig.shape[0]]
        return self.out_combiner(src_orig, src)


def _check_unet_factors(factors: Sequence[int]) -> None:
    """Checks the U-Net shape of the factors, e.g. (1, 2, 4, 2, 1)."""
    if factors[0] != 1 or factors[-1] != 1:
        raise ValueError(f"downsampling factors must start and end with 1: {factors}")
    mid = len(factors) // 2
    for i in range(1, mid + 1):
        if factors[i] != factors[i - 1] * 2:
            raise ValueError(f"downsampling factors must double up to the middle: {factors}")
    for i in range(mid + 1, len(factors)):
        if factors[i] * 2 != factors[i - 1]:
            raise ValueError(f"downsampling factors must halve after the middle: {factors}")


class TTSZipformer(nn.Module):
    """The Zipformer used by ZipVoice for both the text encoder and the FM decoder.

    With ``in_dim``/``out_dim`` given as pairs it holds two sets of input/output
    projections (``in_proj.0``/``in_proj.1``, ``out_proj.0``/``out_proj.1``, the
    stereo decoder) and picks the set whose input width matches ``x``.

    Args:
        in_dim: Input width, or a pair ``(stereo_in, mono_in)``.
        out_dim: Output width, or a pair matching ``in_dim``.
        downsampling_factor: Factor per stack (U-Net shaped; an int gives one stack).
        num_encoder_layers: Layers per stack (int = same for all).
        cnn_module_kernel: Conv kernel per stack (int = same for all).
        encoder_dim: Channels.
        query_head_dim: Query/key size per head.
        pos_head_dim: Positional query size per head.
        value_head_dim: Value size per head.
        num_heads: Attention heads.
        feedforward_dim: Feed-forward width.
        pos_dim: Positional encoding size.
        dropout: Feed-forward dropout; default schedule 0.3 -> 0.1 over 20k batches
            (applies only after :func:`set_batch_count`).
        warmup_batches: Layer-skip warm-up length.
        use_time_embed: Whether a time step conditions the stacks.
        time_embed_dim: Size of the sinusoidal time embedding.
        use_guidance_scale_embed: Whether a guidance scale is embedded (distilled model).
        guidance_scale_embed_dim: Sinusoidal size of the guidance-scale embedding.
    """

    def __init__(
        self,
        in_dim: int | tuple[int, int],
        out_dim: int | tuple[int, int],
        downsampling_factor: int | Sequence[int] = (2, 4),
        num_encoder_layers: int | Sequence[int] = 4,
        cnn_module_kernel: int | Sequence[int] = 31,
        encoder_dim: int = 384,
        query_head_dim: int = 24,
        pos_head_dim: int = 4,
        value_head_dim: int = 12,
        num_heads: int = 8,
        feedforward_dim: int = 1536,
        pos_dim: int = 192,
        dropout: FloatLike | None = None,
        warmup_batches: float = 4000.0,
        use_time_embed: bool = True,
        time_embed_dim: int = 192,
        use_guidance_scale_embed: bool = False,
        guidance_scale_embed_dim: int = GUIDANCE_SCALE_EMBED_DIM,
    ) -> None:
        super().__init__()
        if dropout is None:
            dropout = ScheduledFloat((0.0, 0.3), (20000.0, 0.1))
        if isinstance(downsampling_factor, int):
            downsampling_factor = (downsampling_factor,)
        factors = tuple(int(f) for f in downsampling_factor)
        _check_unet_factors(factors)
        num_stacks = len(factors)
        layers = to_tuple(num_encoder_layers, num_stacks)
        kernels = to_tuple(cnn_module_kernel, num_stacks)
        self.downsampling_factor = factors
        self.encoder_dim = encoder_dim
        self.use_time_embed = use_time_embed
        self.time_embed_dim = time_embed_dim
        self.guidance_scale_embed_dim = guidance_scale_embed_dim

        self.two_stream = isinstance(in_dim, (tuple, list))
        if self.two_stream != isinstance(out_dim, (tuple, list)):
            raise ValueError("in_dim and out_dim must both be ints or both be pairs")
        if self.two_stream:
            if len(in_dim) != 2 or len(out_dim) != 2:
                raise ValueError("two-stream projections need exactly two dims each")
            self.in_dims: tuple[int, ...] = tuple(in_dim)
            self.in_proj = nn.ModuleList([nn.Linear(d, encoder_dim) for d in in_dim])
            self.out_proj = nn.ModuleList([nn.Linear(encoder_dim, d) for d in out_dim])
        else:
            self.in_dims = (int(in_dim),)
            self.in_proj = nn.Linear(in_dim, encoder_dim)
            self.out_proj = nn.Linear(encoder_dim, out_dim)

        stack_time_dim = time_embed_dim if use_time_embed else -1
        encoders: list[nn.Module] = []
        for i, factor in enumerate(factors):
            layer = Zipformer2EncoderLayer(
                embed_dim=encoder_dim,
                pos_dim=pos_dim,
                num_heads=num_heads,
                query_head_dim=query_head_dim,
                pos_head_dim=pos_head_dim,
                value_head_dim=value_head_dim,
                feedforward_dim=feedforward_dim,
                dropout=dropout,
                cnn_module_kernel=kernels[i],
            )
            encoder: nn.Module = Zipformer2Encoder(
                layer,
                layers[i],
                embed_dim=encoder_dim,
                time_embed_dim=stack_time_dim,
                pos_dim=pos_dim,
                warmup_begin=warmup_batches * (i + 1) / (num_stacks + 1),
                warmup_end=warmup_batches * (i + 2) / (num_stacks + 1),
                final_layerdrop_rate=0.035 * (factor**0.5),
            )
            if factor != 1:
                encoder = DownsampledZipformer2Encoder(encoder, dim=encoder_dim, downsample=factor)
            encoders.append(encoder)
        self.encoders = nn.ModuleList(encoders)

        self.time_embed = (
            nn.Sequential(
                nn.Linear(time_embed_dim, time_embed_dim * 2),
                SwooshR(),
                nn.Linear(time_embed_dim * 2, time_embed_dim),
            )
            if use_time_embed
            else None
        )
        self.guidance_scale_embed = (
            scaled_linear(guidance_scale_embed_dim, time_embed_dim, bias=False, initial_scale=0.1)
            if use_guidance_scale_embed
            else None
        )

    def _stream_index(self, width: int) -> int:
        if width not in self.in_dims:
            raise ValueError(f"input width {width} is none of {self.in_dims}")
        return self.in_dims.index(width)

    def forward(
        self,
        x: Tensor,
        t: Tensor | None = None,
        padding_mask: Tensor | None = None,
        guidance_scale: Tensor | None = None,
    ) -> Tensor:
        """Runs the network.

        Args:
            x: ``(B, T, in_dim)``.
            t: ``(B,)`` time steps (required iff ``use_time_embed``).
            padding_mask: ``(B, T)`` bool, True = padding.
            guidance_scale: ``(B,)`` guidance scales (distilled model only).

        Returns:
            ``(B, T, out_dim)``.
        """
        if padding_mask is not None and not is_exporting() and not bool(padding_mask.any()):
            padding_mask = None  # nothing to mask: skips every masked_fill (same values)
        index = self._stream_index(x.size(2))
        in_proj = self.in_proj[index] if self.two_stream else self.in_proj
        out_proj = self.out_proj[index] if self.two_stream else self.out_proj
        x = in_proj(x.permute(1, 0, 2))

        time_emb = None
        if self.use_time_embed:
            if t is None:
                raise ValueError("this network needs a time step t")
            if t.dim() not in (1, 2):
                raise ValueError(f"t must be (B,) or (B, T), got {tuple(t.shape)}")
            time_emb = timestep_embedding(t, self.time_embed_dim)
            if guidance_scale is not None:
                if self.guidance_scale_embed is None:
                    raise ValueError("this network has no guidance-scale embedding")
                time_emb = time_emb + self.guidance_scale_embed(
                    timestep_embedding(guidance_scale, self.guidance_scale_embed_dim)
                )
            time_emb = self.time_embed(time_emb)
        elif t is not None:
            raise ValueError("this network takes no time step")

        for module in self.encoders:
            x = module(x, time_emb=time_emb, src_key_padding_mask=padding_mask)
        return out_proj(x).permute(1, 0, 2)
