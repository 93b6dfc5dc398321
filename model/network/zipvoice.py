"""The ZipVoice(-Dialog) network: token embedding, text encoder, speaker-turn embedding,
average upsampling, and the flow-matching decoder (vector-field estimator).

One class serves upstream's four models, chosen by ``NetworkConfig.variant``:

========================  ======================================  =====================
variant                   upstream class                          extra parameters
========================  ======================================  =====================
``zipvoice``              ``ZipVoice``                            -
``distill``               ``ZipVoiceDistill``                     ``fm_decoder.guidance_scale_embed``
``dialog``                ``ZipVoiceDialog``                      ``spk_embed``
``dialog_stereo``         ``ZipVoiceDialogStereo``                ``spk_embed``, 2 in/out projections
========================  ======================================  =====================

Parameter names equal upstream's, so released checkpoints load with ``strict=True``.

Speaker-turn embedding (dialogue variants)
------------------------------------------
A 2-row table (``spk_embed``) is added to the text-encoder output of every non-pad
token. Which row a token gets:

* ``turn_embedding="parity"`` (upstream, exactly): the running count of speaker tags
  (``[S1]`` or ``[S2]``) up to and including the token, modulo 2. The first tag of the
  sequence therefore uses row 1, the second row 0, and so on; tokens before any tag use
  row 0. The tag's identity is ignored.
* ``turn_embedding="tag"`` (our default): a token's speaker is the last speaker tag at or
  before it; ``[S1]`` (``spk_a_id``) uses row 1 and ``[S2]`` (``spk_b_id``) row 0 (see
  :data:`TAG_ROWS`); tokens before any tag use row 0, as in upstream.

The rows are assigned so that both rules agree on upstream's own inputs (alternating
tags starting with ``[S1]``), so released checkpoints behave the same under either
rule there. They differ when

* the sequence (prompt + target, which are embedded together) holds an odd number of
  turns before a turn: e.g. prompt ``[S1] a [S2] b [S1] c`` + target ``[S1] d``: parity
  gives the target's ``[S1]`` the 4th-turn row (0, i.e. ``[S2]``'s), tag gives row 1;
* tags do not alternate (``[S1] a [S1] b``: parity 1 then 0; tag 1 and 1);
* the text starts with ``[S2]`` (parity row 1; tag row 0).

Average upsampling
------------------
Each utterance's token list gets one trailing pad token. With N tokens and T frames,
each token covers ``floor(T / N)`` frames and the ``T - N * floor(T / N)`` leftover frames
(plus all batch-padding frames) take the pad token's encoder output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from model.network.config import NetworkConfig
from model.network.zipformer import TTSZipformer

logger = logging.getLogger(__name__)

TAG_ROWS = {"spk_a": 1, "spk_b": 0}
"""``spk_embed`` row of each speaker tag under ``turn_embedding="tag"``: ``[S1]`` ->
row 1, ``[S2]`` -> row 0, matching what upstream's parity rule gives the first and
second turn (and hence what released dialogue checkpoints learned)."""
UNTAGGED_ROW = 0
"""Row for tokens before the first speaker tag (upstream's tag count 0)."""


def pad_token_lists(
    tokens: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None
) -> Tensor:
    """Appends one pad token to every list and right-pads to a ``(B, max_len + 1)`` tensor."""
    if len(tokens) == 0:
        raise ValueError("empty token batch")
    width = max(len(seq) for seq in tokens) + 1
    rows = [list(seq) + [pad_id] * (width - len(seq)) for seq in tokens]
    return torch.tensor(rows, dtype=torch.int64, device=device)


def make_pad_mask(lengths: Tensor, max_len: int = 0) -> Tensor:
    """``(B, max(max_len, lengths.max()))`` bool mask, True at positions >= length."""
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be 1-D, got shape {tuple(lengths.shape)}")
    max_len = max(int(max_len), int(lengths.max()))
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


def average_upsample_index(tokens_lens: Tensor, features_lens: Tensor, num_frames: int) -> Tensor:
    """For every frame, the index of the token it takes its condition from.

    Token ``i < N`` covers frames ``[i*d, (i+1)*d)`` with ``d = floor(T / N)``; every other
    frame (leftover and batch padding) points at index ``N``, the appended pad token.

    Args:
        tokens_lens: ``(B,)`` token counts N (without the appended pad token).
        features_lens: ``(B,)`` frame counts T.
        num_frames: Padded frame count of the batch.

    Returns:
        ``(B, num_frames)`` int64 indices.
    """
    tokens_lens = tokens_lens.to(torch.int64)
    features_lens = features_lens.to(device=tokens_lens.device, dtype=torch.int64)
    if bool((tokens_lens <= 0).any()):
        raise ValueError("every utterance needs at least one token")
    per_token = torch.div(features_lens, tokens_lens, rounding_mode="floor")  # (B,)
    frames = torch.arange(num_frames, device=tokens_lens.device).unsqueeze(0)  # (1, T)
    covered = frames < (per_token * tokens_lens).unsqueeze(1)
    index = torch.div(frames, per_token.clamp(min=1).unsqueeze(1), rounding_mode="floor")
    return torch.where(covered, index, tokens_lens.unsqueeze(1))


def _as_batch_vector(value: Tensor | float, batch_size: int, device: torch.device) -> Tensor:
    """Turns a scalar, ``(B,)`` or ``(B, 1, 1)`` value into a ``(B,)`` float tensor."""
    value = torch.as_tensor(value, device=device)
    while value.dim() > 1 and value.size(-1) == 1:
        value = value.squeeze(-1)
    if value.dim() == 0:
        value = value.repeat(batch_size)
    if value.dim() != 1 or value.numel() != batch_size:
        raise ValueError(
            f"expected a scalar or {batch_size} values, got shape {tuple(value.shape)}"
        )
    return value.float() if not value.is_floating_point() else value


class PromptedTextMixin:
    """The inference text paths built on ``forward_text_train`` (prompt + target tokens).

    Shared by :class:`DialogTTSNetwork` and ``model.export.onnx_runtime.OnnxNetwork``; a class
    using it provides ``device`` and ``forward_text_train``.
    """

    device: torch.device

    def forward_text_inference_gt_duration(
        self,
        tokens: Sequence[Sequence[int]],
        features_lens: Tensor,
        prompt_tokens: Sequence[Sequence[int]],
        prompt_features_lens: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Text condition of prompt + target tokens over prompt + target frames.

        Args:
            tokens: Target token lists.
            features_lens: ``(B,)`` target frame counts.
            prompt_tokens: Prompt token lists.
            prompt_features_lens: ``(B,)`` prompt frame counts.
        """
        cat_tokens = [list(p) + list(t) for p, t in zip(prompt_tokens, tokens, strict=True)]
        total = prompt_features_lens.to(self.device) + features_lens.to(self.device)
        return self.forward_text_train(cat_tokens, total)

    def predict_total_frames(
        self,
        tokens: Sequence[Sequence[int]],
        prompt_tokens: Sequence[Sequence[int]],
        prompt_features_lens: Tensor,
        speed: float = 1.0,
    ) -> Tensor:
        """Upstream's duration rule: ``T_p + ceil(T_p / N_p * N_target / speed)``."""
        device = self.device
        prompt_lens = torch.tensor(
            [len(p) for p in prompt_tokens], dtype=torch.int64, device=device
        )
        target_lens = torch.tensor([len(t) for t in tokens], dtype=torch.int64, device=device)
        prompt_features_lens = prompt_features_lens.to(device)
        extra = torch.ceil(prompt_features_lens / prompt_lens * target_lens / speed)
        return prompt_features_lens + extra.to(torch.int64)

    def forward_text_inference_ratio_duration(
        self,
        tokens: Sequence[Sequence[int]],
        prompt_tokens: Sequence[Sequence[int]],
        prompt_features_lens: Tensor,
        speed: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Text condition with the total length from :meth:`predict_total_frames`.

        Returns:
            ``(text_condition, padding_mask)``; ``(~padding_mask).sum(1)`` is the total
            (prompt + target) frame count of each utterance.
        """
        total = self.predict_total_frames(tokens, prompt_tokens, prompt_features_lens, speed)
        cat_tokens = [list(p) + list(t) for p, t in zip(prompt_tokens, tokens, strict=True)]
        return self.forward_text_train(cat_tokens, total)


class DialogTTSNetwork(PromptedTextMixin, nn.Module):
    """Text path and vector-field estimator of ZipVoice / -Dialog / -Stereo / -Distill.

    Args:
        config: Network configuration; ``config.variant`` picks the upstream model.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.feat_dim = c.feat_dim
        self.pad_id = c.pad_id
        if c.variant == "dialog_stereo":
            in_dim: int | tuple[int, int] = (c.feat_dim * 5, c.feat_dim * 3)
            out_dim: int | tuple[int, int] = (c.feat_dim * 2, c.feat_dim)
        else:
            in_dim, out_dim = c.feat_dim * 3, c.feat_dim
        self.fm_decoder = TTSZipformer(
            in_dim=in_dim,
            out_dim=out_dim,
            downsampling_factor=c.fm_decoder_downsampling_factor,
            num_encoder_layers=c.fm_decoder_num_layers,
            cnn_module_kernel=c.fm_decoder_cnn_module_kernel,
            encoder_dim=c.fm_decoder_dim,
            feedforward_dim=c.fm_decoder_feedforward_dim,
            num_heads=c.fm_decoder_num_heads,
            query_head_dim=c.query_head_dim,
            pos_head_dim=c.pos_head_dim,
            value_head_dim=c.value_head_dim,
            pos_dim=c.pos_dim,
            use_time_embed=True,
            time_embed_dim=c.time_embed_dim,
            use_guidance_scale_embed=c.guidance_input,
        )
        self.text_encoder = TTSZipformer(
            in_dim=c.text_embed_dim,
            out_dim=c.feat_dim,
            downsampling_factor=1,
            num_encoder_layers=c.text_encoder_num_layers,
            cnn_module_kernel=c.text_encoder_cnn_module_kernel,
            encoder_dim=c.text_encoder_dim,
            feedforward_dim=c.text_encoder_feedforward_dim,
            num_heads=c.text_encoder_num_heads,
            query_head_dim=c.query_head_dim,
            pos_head_dim=c.pos_head_dim,
            value_head_dim=c.value_head_dim,
            pos_dim=c.pos_dim,
            use_time_embed=False,
        )
        self.embed = nn.Embedding(c.vocab_size, c.text_embed_dim)
        if c.is_dialog:
            self.spk_embed = nn.Embedding(2, c.feat_dim)
            nn.init.normal_(self.spk_embed.weight, mean=0.0, std=0.1)
        else:
            self.spk_embed = None

    # ------------------------------------------------------------------ helpers

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.embed.weight.device

    def num_parameters(self) -> int:
        """Total number of parameters."""
        return sum(p.numel() for p in self.parameters())

    @property
    def takes_guidance_input(self) -> bool:
        """Whether the decoder embeds the guidance scale (a distilled network: the sampler
        passes w to it, one pass per step, instead of running guided pairs)."""
        return getattr(self.fm_decoder, "guidance_scale_embed", None) is not None

    def turn_rows(self, tokens_padded: Tensor) -> Tensor:
        """The ``spk_embed`` row of every token, -1 where none applies (pad tokens).

        Args:
            tokens_padded: ``(B, S)`` token ids.

        Returns:
            ``(B, S)`` int64 rows in {-1, 0, 1}; see the module docstring for the rules.
        """
        c = self.config
        is_a = tokens_padded == c.spk_a_id
        is_b = tokens_padded == c.spk_b_id
        if c.turn_embedding == "parity":
            rows = torch.cumsum((is_a | is_b).to(torch.int64), dim=1) % 2
        else:
            tag_row = torch.full_like(tokens_padded, -1)
            tag_row = tag_row.masked_fill(is_a, TAG_ROWS["spk_a"]).masked_fill(
                is_b, TAG_ROWS["spk_b"]
            )
            positions = torch.arange(tokens_padded.size(1), device=tokens_padded.device)
            tag_pos = torch.where(tag_row >= 0, positions.unsqueeze(0), -1)
            last_tag = torch.cummax(tag_pos, dim=1).values
            rows = torch.where(
                last_tag >= 0,
                torch.gather(tag_row, 1, last_tag.clamp(min=0)),
                torch.full_like(tag_row, UNTAGGED_ROW),
            )
        return rows.masked_fill(tokens_padded == c.pad_id, -1)

    # ------------------------------------------------------------------ text path

    def forward_text_embed(self, tokens: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """Token embedding -> text encoder (-> + speaker-turn embedding).

        Args:
            tokens: B lists of token ids.

        Returns:
            ``(embed (B, S+1, feat_dim), tokens_lens (B,))``; position ``tokens_lens[b]``
            holds the appended pad token.
        """
        device = self.device
        tokens_padded = pad_token_lists(tokens, self.pad_id, device=device)
        tokens_lens = torch.tensor([len(seq) for seq in tokens], dtype=torch.int64, device=device)
        embed = self.embed(tokens_padded)
        padding_mask = make_pad_mask(tokens_lens, embed.shape[1])
        embed = self.text_encoder(x=embed, t=None, padding_mask=padding_mask)
        if self.spk_embed is not None:
            rows = self.turn_rows(tokens_padded)
            turn = self.spk_embed(rows.clamp(min=0)) * (rows >= 0).unsqueeze(-1).to(embed.dtype)
            embed = embed + turn.to(embed.dtype)
        return embed, tokens_lens

    def forward_text_condition(
        self, embed: Tensor, tokens_lens: Tensor, features_lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Average upsampling of token embeddings to frames.

        Args:
            embed: ``(B, S+1, C)`` from :meth:`forward_text_embed`.
            tokens_lens: ``(B,)``.
            features_lens: ``(B,)`` frames per utterance.

        Returns:
            ``(text_condition (B, T, C), padding_mask (B, T))``, ``T = features_lens.max()``,
            padding_mask True on padding frames.
        """
        features_lens = features_lens.to(embed.device)
        num_frames = int(features_lens.max())
        padding_mask = make_pad_mask(features_lens, num_frames)
        index = average_upsample_index(tokens_lens.to(embed.device), features_lens, num_frames)
        text_condition = torch.gather(
            embed, 1, index.unsqueeze(-1).expand(embed.size(0), num_frames, embed.size(-1))
        )
        return text_condition, padding_mask

    def forward_text_train(
        self, tokens: Sequence[Sequence[int]], features_lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Text condition for given tokens and frame counts (training, or "real" duration).

        Returns:
            ``(text_condition (B, T, feat_dim), padding_mask (B, T))``, True = padding.
        """
        embed, tokens_lens = self.forward_text_embed(tokens)
        return self.forward_text_condition(embed, tokens_lens, features_lens)

    # ------------------------------------------------------------------ decoder

    def forward_fm_decoder(
        self,
        t: Tensor | float,
        xt: Tensor,
        text_condition: Tensor,
        speech_condition: Tensor,
        padding_mask: Tensor | None = None,
        guidance_scale: Tensor | float | None = None,
    ) -> Tensor:
        """Velocity of the flow at ``xt``.

        Args:
            t: Time in [0, 1]: scalar, ``(B,)`` or ``(B, 1, 1)``.
            xt: ``(B, T, feat_dim)``, or ``(B, T, 2*feat_dim)`` (stereo variant: left|right).
            text_condition: ``(B, T, feat_dim)``.
            speech_condition: Same width as ``xt``.
            padding_mask: ``(B, T)`` bool, True = padding.
            guidance_scale: Distilled networks only (:attr:`takes_guidance_input`): scalar,
                ``(B,)`` or ``(B, 1, 1)``; None leaves the embedding out.

        Returns:
            Velocity with the width of ``xt``.
        """
        batch_size = xt.size(0)
        x = torch.cat([xt, text_condition, speech_condition], dim=2)
        t = _as_batch_vector(t, batch_size, xt.device)
        if guidance_scale is not None:
            if not self.takes_guidance_input:
                raise ValueError(
                    "guidance_scale is an input of distilled networks only (the distill "
                    f"variant or a distilled student), not of this {self.config.variant!r} one"
                )
            guidance_scale = _as_batch_vector(guidance_scale, batch_size, xt.device)
        return self.fm_decoder(x=x, t=t, padding_mask=padding_mask, guidance_scale=guidance_scale)

    def forward(
        self,
        tokens: Sequence[Sequence[int]],
        features_lens: Tensor,
        t: Tensor | float,
        xt: Tensor,
        speech_condition: Tensor,
        text_keep: Tensor | None = None,
        guidance_scale: Tensor | float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Text path plus decoder in one call (e.g. for DDP-wrapped training).

        Args:
            tokens: B token lists.
            features_lens: ``(B,)``.
            t: See :meth:`forward_fm_decoder`.
            xt: ``(B, T, F)`` with ``T = features_lens.max()``.
            speech_condition: ``(B, T, F)``.
            text_keep: Optional ``(B,)`` / ``(B, 1, 1)`` 0/1 multiplier on the text
                condition (classifier-free-guidance dropout).
            guidance_scale: Distilled variant only.

        Returns:
            ``(velocity (B, T, F), padding_mask (B, T))``.
        """
        text_condition, padding_mask = self.forward_text_train(tokens, features_lens)
        if text_keep is not None:
            text_condition = text_condition * text_keep.reshape(-1, 1, 1).to(text_condition.dtype)
        velocity = self.forward_fm_decoder(
            t, xt, text_condition, speech_condition, padding_mask, guidance_scale
        )
        return velocity, padding_mask
