"""The distillation objective (ZipVoice-Distill): one update's draws, the teacher's two guided hops,
the student's one jump and the loss between their velocities, as functions of explicit draws.

:class:`DistillationObjective` packs student and teacher into the module whose forward is the loss
(what :class:`model.training.distill.Distiller` runs on the shared loop, wrapped in DDP when there
are several ranks). The recipe itself is described in :mod:`model.training.distill`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from model.network.flow import FlowOptions, draw_noise_and_mask, masked_mse, noisy_input


@dataclass(frozen=True)
class DistillDraw:
    """The random quantities of one distillation update.

    Attributes:
        t: shape ``(B, 1, 1)``, start time.
        hop1: shape ``(B, 1, 1)``, first teacher hop.
        hop2: shape ``(B, 1, 1)``, second teacher hop (t + hop1 + hop2 <= 1).
        guidance_scale: shape ``(B, 1, 1)``, w.
        noise: shape ``(B, T, F)``, x0.
        target_mask: shape ``(B, T)``, True on the frames to generate (and score).
    """

    t: Tensor
    hop1: Tensor
    hop2: Tensor
    guidance_scale: Tensor
    noise: Tensor
    target_mask: Tensor


def draw_distill_inputs(
    features: Tensor,
    features_lens: Tensor,
    *,
    guidance_range: tuple[float, float],
    max_hop: float,
    flow_options: FlowOptions,
    generator: torch.Generator,
) -> DistillDraw:
    """Draws t, the two hops, w, the noise and the prompt mask from one CPU generator.

    Args:
        features: shape ``(B, T, F)``; its shape, dtype and device are used.
        features_lens: shape ``(B,)``.
        guidance_range: ``(min, max)`` of the uniform w.
        max_hop: largest hop size.
        flow_options: mask kind and fractions.
        generator: a CPU generator.

    Returns:
        The draw on ``features.device``.
    """
    batch = features.shape[0]
    t = torch.rand(batch, 1, 1, generator=generator)
    hop1 = torch.rand(batch, 1, 1, generator=generator) * torch.clamp(1.0 - t, max=max_hop)
    hop2 = torch.rand(batch, 1, 1, generator=generator) * torch.clamp(
        1.0 - t - hop1, min=0.0, max=max_hop
    )
    lo, hi = guidance_range
    w = lo + (hi - lo) * torch.rand(batch, 1, 1, generator=generator)
    noise, mask = draw_noise_and_mask(features_lens, features.shape, flow_options, generator)
    device, dtype = features.device, features.dtype
    return DistillDraw(
        t=t.to(device),
        hop1=hop1.to(device),
        hop2=hop2.to(device),
        guidance_scale=w.to(device),
        noise=noise.to(device=device, dtype=dtype),
        target_mask=mask.to(device),
    )


def guided_velocity(
    network: torch.nn.Module,
    *,
    t: Tensor,
    xt: Tensor,
    text_condition: Tensor,
    speech_condition: Tensor,
    padding_mask: Tensor,
    guidance_scale: Tensor,
    guidance_input: bool,
) -> Tensor:
    """The guided velocity a sampler would use at ``(xt, t)`` with per-item ``w``.

    A distilled network (``guidance_input``) takes w as an input. Otherwise upstream's
    time-dependent CFG runs as one doubled batch: v = (1 + w')·v_cond − w'·v_uncond, where
    for t ≤ 0.5 the unconditional pass drops the text only and w' = 2w, and for t > 0.5 it
    drops text and speech prompt and w' = w (the same rule as :func:`model.network.flow.sample`,
    decided per item).

    Args:
        network: the velocity estimator.
        t: shape ``(B, 1, 1)``.
        xt: shape ``(B, T, F)``.
        text_condition: shape ``(B, T, C)``.
        speech_condition: shape ``(B, T, F)``.
        padding_mask: shape ``(B, T)``, True on padding.
        guidance_scale: shape ``(B, 1, 1)``.
        guidance_input: whether ``network`` takes w as an input.

    Returns:
        shape ``(B, T, F)``.
    """
    if guidance_input:
        return network.forward_fm_decoder(
            t=t,
            xt=xt,
            text_condition=text_condition,
            speech_condition=speech_condition,
            padding_mask=padding_mask,
            guidance_scale=guidance_scale,
        )
    late = t > 0.5  # (B, 1, 1)
    uncond_speech = torch.where(late, torch.zeros_like(speech_condition), speech_condition)
    w = torch.where(late, guidance_scale, 2.0 * guidance_scale).to(xt.dtype)
    v_pair = network.forward_fm_decoder(
        t=torch.cat([t, t]),
        xt=torch.cat([xt, xt]),
        text_condition=torch.cat([torch.zeros_like(text_condition), text_condition]),
        speech_condition=torch.cat([uncond_speech, speech_condition]),
        padding_mask=torch.cat([padding_mask, padding_mask]),
    )
    v_uncond, v_cond = v_pair.chunk(2, dim=0)
    return (1.0 + w) * v_cond - w * v_uncond


@torch.no_grad()
def teacher_target_velocity(
    teacher: torch.nn.Module,
    *,
    tokens: list[list[int]],
    features: Tensor,
    features_lens: Tensor,
    draw: DistillDraw,
    guidance_input: bool,
) -> Tensor:
    """The velocity implied by the teacher's two guided Euler hops from x_t.

    Returns:
        shape ``(B, T, F)``: ``(d1·v1 + d2·v2) / (d1 + d2)`` (``v1`` where the span is 0).
    """
    text_condition, padding_mask = teacher.forward_text_train(tokens, features_lens)
    t = draw.t.to(features.dtype)
    xt, speech_condition = noisy_input(features, draw.noise, t, draw.target_mask)
    common = {
        "text_condition": text_condition,
        "speech_condition": speech_condition,
        "padding_mask": padding_mask,
        "guidance_scale": draw.guidance_scale,
        "guidance_input": guidance_input,
    }
    v1 = guided_velocity(teacher, t=t, xt=xt, **common).float()
    x_mid = xt + draw.hop1 * v1
    v2 = guided_velocity(teacher, t=t + draw.hop1, xt=x_mid.to(xt.dtype), **common).float()
    span = draw.hop1 + draw.hop2
    averaged = (draw.hop1 * v1 + draw.hop2 * v2) / span.clamp(min=1e-12)
    return torch.where(span > 1e-9, averaged, v1)


def distillation_loss(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    *,
    tokens: list[list[int]],
    features: Tensor,
    features_lens: Tensor,
    draw: DistillDraw,
    teacher_guidance_input: bool,
) -> dict[str, Tensor]:
    """The distillation loss of one batch.

    Args:
        student: the distilled network (takes w as an input).
        teacher: the fixed teacher (stage 1) or the EMA student (stage 2).
        tokens: B token lists.
        features: shape ``(B, T, F)``, model-space mel (x1).
        features_lens: shape ``(B,)``.
        draw: the update's randomness.
        teacher_guidance_input: whether the teacher takes w as an input.

    Returns:
        ``{"loss", "ref_loss", "num_frames"}``; ``ref_loss`` is the student's plain
        flow-matching error against x1 − x0 (a diagnostic, no gradient).
    """
    target_v = teacher_target_velocity(
        teacher,
        tokens=tokens,
        features=features,
        features_lens=features_lens,
        draw=draw,
        guidance_input=teacher_guidance_input,
    )
    text_condition, padding_mask = student.forward_text_train(tokens, features_lens)
    t = draw.t.to(features.dtype)
    xt, speech_condition = noisy_input(features, draw.noise, t, draw.target_mask)
    v_student = guided_velocity(  # the student takes w as an input: one pass
        student,
        t=t,
        xt=xt,
        text_condition=text_condition,
        speech_condition=speech_condition,
        padding_mask=padding_mask,
        guidance_scale=draw.guidance_scale,
        guidance_input=True,
    ).float()
    loss_mask = draw.target_mask & ~padding_mask
    loss = masked_mse(v_student, target_v, loss_mask)
    with torch.no_grad():
        ref_loss = masked_mse(v_student, (features - draw.noise).float(), loss_mask)
    return {"loss": loss, "ref_loss": ref_loss, "num_frames": loss_mask.sum()}


class DistillationObjective(torch.nn.Module):
    """The student and its teacher as one module whose forward is :func:`distillation_loss`
    (what DDP wraps: only the student's parameters have gradients, so only they are synced).

    Args:
        student: the distilled network.
        teacher: the fixed teacher or the EMA student; kept in eval mode.
        teacher_guidance_input: whether the teacher takes w as an input.
    """

    def __init__(
        self, student: torch.nn.Module, teacher: torch.nn.Module, teacher_guidance_input: bool
    ) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher_guidance_input = teacher_guidance_input

    def train(self, mode: bool = True) -> DistillationObjective:
        """Train mode for the student only: the teacher's passes stay deterministic."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, tokens: list[list[int]], features: Tensor, features_lens: Tensor, **draw: Tensor
    ) -> dict[str, Tensor]:
        """:func:`distillation_loss` with the :class:`DistillDraw` given field by field."""
        return distillation_loss(
            self.student,
            self.teacher,
            tokens=tokens,
            features=features,
            features_lens=features_lens,
            draw=DistillDraw(**draw),
            teacher_guidance_input=self.teacher_guidance_input,
        )
