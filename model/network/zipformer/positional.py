"""Positional and timestep encodings of the Zipformer."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from model.network.zipformer.scaling import FloatLike


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(t f_k), sin(t f_k)]`` with ``f_k = max_period^(-k/half)``.

    Args:
        timesteps: Shape ``(N,)`` or ``(N, T)``.
        dim: Output size (odd sizes get one trailing zero).
        max_period: Controls the lowest frequency.

    Returns:
        Shape ``(N, dim)``, or ``(T, N, dim)`` for 2-D input.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=timesteps.device)
        / half
    )
    if timesteps.dim() == 2:
        timesteps = timesteps.transpose(0, 1)
    args = timesteps[..., None].float() * freqs
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[..., :1])], dim=-1)
    return embedding


class CompactRelPositionalEncoding(nn.Module):
    """Zipformer's compact relative positional encoding.

    Offsets ``-(T-1) .. (T-1)`` are compressed logarithmically, mapped through atan
    into a finite interval, and Fourier-encoded; the last channel is a constant 1
    (a bias term). Holds no parameters or buffers.

    Args:
        embed_dim: Encoding size (even).
        dropout_rate: Dropout on the encoding in training.
        length_factor: Heuristic >= 1; larger values blur small offsets.
    """

    def __init__(self, embed_dim: int, dropout_rate: FloatLike, length_factor: float = 1.0) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        if length_factor < 1.0:
            raise ValueError(f"length_factor must be >= 1, got {length_factor}")
        self.embed_dim = embed_dim
        self.dropout_rate = dropout_rate
        self.length_factor = length_factor

    def encodings(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Encodings for offsets ``-(seq_len-1) .. seq_len-1``: shape ``(2*seq_len-1, dim)``."""
        x = torch.arange(-(seq_len - 1), seq_len, device=device).to(torch.float32).unsqueeze(1)
        freqs = 1 + torch.arange(self.embed_dim // 2, device=device)
        compression_length = self.embed_dim**0.5
        x_compressed = (
            compression_length
            * x.sign()
            * ((x.abs() + compression_length).log() - math.log(compression_length))
        )
        length_scale = self.length_factor * self.embed_dim / (2.0 * math.pi)
        x_atan = (x_compressed / length_scale).atan()
        pe = torch.zeros(x.shape[0], self.embed_dim, device=device)
        pe[:, 0::2] = (x_atan * freqs).cos()
        pe[:, 1::2] = (x_atan * freqs).sin()
        pe[:, -1] = 1.0
        return pe.to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Returns the encoding for ``x`` of shape ``(T, B, *)``: ``(1, 2T-1, embed_dim)``."""
        pos_emb = self.encodings(x.size(0), x.device, x.dtype).unsqueeze(0)
        return nn.functional.dropout(pos_emb, p=float(self.dropout_rate), training=self.training)
