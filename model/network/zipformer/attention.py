"""Attention modules of the Zipformer: shared attention weights and their consumers.

Tensor layout follows upstream: sequences are ``(seq_len, batch, channels)`` and
attention weights are ``(num_heads, batch, tgt_len, src_len)``.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor, nn

from model.network.zipformer.scaling import (
    Balancer,
    FloatLike,
    ScheduledFloat,
    Whiten,
    is_exporting,
    scaled_linear,
)

_MASK_VALUE = -1000.0
# Query rows per block of the inference path (:func:`row_blocked_weights`): a block's scores
# (heads x batch x 64 x T floats) stay in cache between their three uses.
_ROW_BLOCK = 64
# Up to this many (head, item) slices a block's softmax is written in place slice by slice;
# beyond, one softmax and a copy cost less than the Python loop.
_SOFTMAX_SLICES = 16


def relative_to_absolute(pos_scores: Tensor) -> Tensor:
    """Turns scores over relative offsets into scores over key positions.

    Args:
        pos_scores: ``(H, B, T, 2T-1)``; the last axis indexes offsets ``-(T-1) .. T-1``.

    Returns:
        ``(H, B, T, T)`` where entry ``[h, b, i, j]`` is the score of offset ``j - i``.
    """
    num_heads, batch_size, seq_len, n = pos_scores.shape
    if n != 2 * seq_len - 1:
        raise ValueError(f"expected {2 * seq_len - 1} offsets, got {n}")
    pos_scores = pos_scores.contiguous()
    s0, s1, s2, s3 = pos_scores.stride()
    return pos_scores.as_strided(
        (num_heads, batch_size, seq_len, seq_len),
        (s0, s1, s2 - s3, s3),
        storage_offset=pos_scores.storage_offset() + s3 * (seq_len - 1),
    )


def row_blocked_weights(
    q: Tensor,
    k: Tensor,
    p: Tensor,
    pos: Tensor,
    attn_mask: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    block: int = _ROW_BLOCK,
) -> Tensor:
    """Attention weights ``softmax(q k + relative positional scores)``, a block of query rows at a time.

    The same values as scoring all rows at once (each row's sums are the same products), with a
    fraction of the memory traffic: the positional scores of a block of ``R`` rows need only
    ``T + R - 1`` of the ``2T - 1`` offsets, and a block's scores are added to, masked and
    normalised while they are in cache instead of as three ``(H, B, T, T)`` passes (and one of
    ``(H, B, T, 2T - 1)``) through memory. Inference only (no autograd graph is kept).

    Args:
        q: ``(H, B, T, dq)`` queries; k: ``(H, B, dq, T)`` keys; p: ``(H, B, T, dp)`` positional
            queries; pos: ``(H, 1 or B, dp, 2T - 1)`` projected relative encodings, offsets
            ``-(T-1) .. T-1``.
        attn_mask: ``(T, T)`` or ``(B, T, T)`` bool, True = masked.
        key_padding_mask: ``(B, T)`` bool, True = padding.

    Returns:
        ``(H, B, T, T)`` weights summing to 1 over the last axis.
    """
    num_heads, batch_size, seq_len, _ = q.shape
    q, p = q.contiguous(), p.contiguous()
    if attn_mask is not None and attn_mask.dim() == 3:
        attn_mask = attn_mask.unsqueeze(0)  # (1, B, T, T)
    padding = None if key_padding_mask is None else key_padding_mask.unsqueeze(0).unsqueeze(2)
    weights = torch.empty(num_heads, batch_size, seq_len, seq_len, dtype=q.dtype, device=q.device)
    for begin in range(0, seq_len, block):
        end = min(begin + block, seq_len)
        rows = end - begin
        scores = torch.matmul(q[:, :, begin:end], k)
        # offsets -(end-1) .. T-1-begin: row r's offset j - (begin + r) sits at j + rows-1-r
        offsets = torch.matmul(
            p[:, :, begin:end], pos[..., seq_len - end : 2 * seq_len - 1 - begin]
        )
        s0, s1, s2, s3 = offsets.stride()
        scores.add_(
            offsets.as_strided(
                (num_heads, batch_size, rows, seq_len),
                (s0, s1, s2 - s3, s3),
                storage_offset=offsets.storage_offset() + (rows - 1) * s3,
            )
        )
        if attn_mask is not None:
            scores.masked_fill_(attn_mask[..., begin:end, :], _MASK_VALUE)
        if padding is not None:
            scores.masked_fill_(padding, _MASK_VALUE)
        if num_heads * batch_size > _SOFTMAX_SLICES:
            weights[:, :, begin:end] = scores.softmax(dim=-1)
            continue
        for h in range(num_heads):  # one (head, item) slice of a block is contiguous: no copy
            for b in range(batch_size):
                torch.softmax(scores[h, b], dim=-1, out=weights[h, b, begin:end])
    return weights


class RelPositionMultiheadAttentionWeights(nn.Module):
    """Multi-head attention weights with relative positional scores.

    ``in_proj`` yields queries, keys and a per-head positional query; the positional
    query is matched against the projected relative encodings (``linear_pos``).

    Args:
        embed_dim: Input channels.
        pos_dim: Size of the positional encodings.
        num_heads: Number of heads.
        query_head_dim: Query/key size per head.
        pos_head_dim: Positional query size per head.
        dropout: Dropout on the weights in training.
        pos_emb_skip_rate: Probability (training) of leaving out the positional scores.
    """

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        dropout: float = 0.0,
        pos_emb_skip_rate: FloatLike | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.dropout = dropout
        self.pos_emb_skip_rate = (
            ScheduledFloat((0.0, 0.5), (4000.0, 0.0))
            if pos_emb_skip_rate is None
            else pos_emb_skip_rate
        )
        in_proj_dim = (2 * query_head_dim + pos_head_dim) * num_heads
        self.in_proj = scaled_linear(
            embed_dim, in_proj_dim, bias=True, initial_scale=query_head_dim**-0.25
        )
        self.whiten_keys = Whiten(num_groups=num_heads)
        self.balance_keys = Balancer(query_head_dim * num_heads, channel_dim=-1)
        self.linear_pos = scaled_linear(
            pos_dim, num_heads * pos_head_dim, bias=False, initial_scale=0.05
        )

    def forward(
        self,
        x: Tensor,
        pos_emb: Tensor,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Computes attention weights.

        Args:
            x: ``(T, B, embed_dim)``.
            pos_emb: ``(1 or B, 2T-1, pos_dim)``.
            key_padding_mask: ``(B, T)`` bool, True = padding (never attended to).
            attn_mask: ``(T, T)`` or ``(B, T, T)`` bool, True = masked.

        Returns:
            ``(num_heads, B, T, T)`` weights summing to 1 over the last axis.
        """
        x = self.in_proj(x)
        seq_len, batch_size, _ = x.shape
        h, dq, dp = self.num_heads, self.query_head_dim, self.pos_head_dim
        query_dim = dq * h
        q = x[..., :query_dim]
        k = self.whiten_keys(self.balance_keys(x[..., query_dim : 2 * query_dim]))
        p = x[..., 2 * query_dim :]

        q = q.reshape(seq_len, batch_size, h, dq).permute(2, 1, 0, 3)
        p = p.reshape(seq_len, batch_size, h, dp).permute(2, 1, 0, 3)
        k = k.reshape(seq_len, batch_size, h, dq).permute(2, 1, 3, 0)
        if key_padding_mask is not None and key_padding_mask.shape != (batch_size, seq_len):
            raise ValueError(
                f"key_padding_mask shape {tuple(key_padding_mask.shape)} != {(batch_size, seq_len)}"
            )
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            raise TypeError("attn_mask must be a bool tensor")
        if x.device.type == "cpu" and not (
            self.training or torch.is_grad_enabled() or is_exporting()
        ):
            pos = self.linear_pos(pos_emb)
            pos = pos.reshape(-1, 2 * seq_len - 1, h, dp).permute(2, 0, 3, 1)
            return row_blocked_weights(q, k, p, pos, attn_mask, key_padding_mask)

        attn_scores = torch.matmul(q, k)
        use_pos_scores = not self.training or random.random() >= float(self.pos_emb_skip_rate)
        if use_pos_scores:
            pos = self.linear_pos(pos_emb)
            pos = pos.reshape(-1, 2 * seq_len - 1, h, dp).permute(2, 0, 3, 1)
            pos_scores = relative_to_absolute(torch.matmul(p, pos))
            if torch.is_grad_enabled():
                attn_scores = attn_scores + pos_scores
            else:
                attn_scores.add_(pos_scores)

        if attn_mask is not None:
            attn_scores = attn_scores.masked_fill(attn_mask, _MASK_VALUE)
        if key_padding_mask is not None:
            attn_scores = attn_scores.masked_fill(key_padding_mask.unsqueeze(1), _MASK_VALUE)

        attn_weights = attn_scores.softmax(dim=-1)
        return nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)


class SelfAttention(nn.Module):
    """Applies precomputed attention weights to projected values.

    Args:
        embed_dim: Input and output channels.
        num_heads: Number of heads (must match the weights).
        value_head_dim: Value size per head.
    """

    def __init__(self, embed_dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, num_heads * value_head_dim, bias=True)
        self.out_proj = scaled_linear(
            num_heads * value_head_dim, embed_dim, bias=True, initial_scale=0.05
        )
        self.whiten = Whiten(num_groups=1)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        """Args: x ``(T, B, C)``; attn_weights ``(H, B, T, T)``. Returns ``(T, B, C)``."""
        seq_len, batch_size, _ = x.shape
        num_heads = attn_weights.shape[0]
        if attn_weights.shape != (num_heads, batch_size, seq_len, seq_len):
            raise ValueError(f"bad attention weights shape {tuple(attn_weights.shape)}")
        v = self.in_proj(x).reshape(seq_len, batch_size, num_heads, -1).permute(2, 1, 0, 3)
        out = torch.matmul(attn_weights, v)
        out = out.permute(2, 1, 0, 3).reshape(seq_len, batch_size, -1)
        return self.whiten(self.out_proj(out))


class NonlinAttention(nn.Module):
    """Gated attention-as-convolution: ``out_proj(attn(x * tanh(s)) * y)``.

    Args:
        channels: Input and output channels.
        hidden_channels: Width of the gated branch.
    """

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.in_proj = nn.Linear(channels, hidden_channels * 3, bias=True)
        self.balancer = Balancer(hidden_channels, channel_dim=-1)
        self.out_proj = scaled_linear(hidden_channels, channels, bias=True, initial_scale=0.05)
        self.whiten1 = Whiten(num_groups=1)
        self.whiten2 = Whiten(num_groups=1)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        """Args: x ``(T, B, C)``; attn_weights ``(H, B, T, T)`` (upstream passes H = 1)."""
        x = self.in_proj(x)
        seq_len, batch_size, _ = x.shape
        s, x, y = x.chunk(3, dim=2)
        s = torch.tanh(self.balancer(s))
        x = self.whiten1(x) * s
        num_heads = attn_weights.shape[0]
        if attn_weights.shape != (num_heads, batch_size, seq_len, seq_len):
            raise ValueError(f"bad attention weights shape {tuple(attn_weights.shape)}")
        x = x.reshape(seq_len, batch_size, num_heads, -1).permute(2, 1, 0, 3)
        x = torch.matmul(attn_weights, x)
        x = x.permute(2, 1, 0, 3).reshape(seq_len, batch_size, -1)
        return self.whiten2(self.out_proj(x * y))
