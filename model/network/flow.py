"""Conditional flow matching for the dialogue TTS model: masks, training loss and Euler sampler.

The network is injected (anything with :class:`VelocityEstimator`'s ``forward_fm_decoder``), so
this module owns only the math of ZipVoice §1.6–1.8 and §1.11 (see
the ZipVoice paper and its released code).

Dimension legend (one layout everywhere, batch first as in ZipVoice):

* ``B``: batch size.
* ``T``: frames (93.75 frames/s for 24 kHz audio with hop 256), prompt and target together.
* ``F``: feature dim of the generated mel, 100 (mono) or 200 (stereo: left | right).
* ``C``: text-condition dim, always the mono mel dim (100).

Masks are boolean ``(B, T)``. ``padding_mask`` is True on padding frames (as upstream);
``target_mask`` is True on the frames to generate: they are zeroed in the speech condition and are
the only frames scored by the loss. Frames where ``target_mask`` is False form the speech prompt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import nn

logger = logging.getLogger(__name__)

MaskKind = Literal["span", "suffix"]

__all__ = [
    "FlowMatchingLoss",
    "FlowOptions",
    "TrainingDraw",
    "VelocityEstimator",
    "draw_noise",
    "draw_training_inputs",
    "make_pad_mask",
    "sample",
    "sample_with_prompt",
    "timesteps",
]


class VelocityEstimator(Protocol):
    """What the flow needs from a network (``DialogTTSNetwork`` satisfies it)."""

    def forward_fm_decoder(
        self,
        t: torch.Tensor,
        xt: torch.Tensor,
        text_condition: torch.Tensor,
        speech_condition: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        guidance_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity for ``xt`` at time ``t``.

        Args:
            t: shape ``(B, 1, 1)``, in [0, 1].
            xt: shape ``(B, T, F)``.
            text_condition: shape ``(B, T, C)``.
            speech_condition: shape ``(B, T, F)``.
            padding_mask: shape ``(B, T)``, True on padding.
            guidance_scale: shape ``(B, 1, 1)``; only distilled networks take it.

        Returns:
            The velocity, shape ``(B, T, F)``.
        """
        ...


@dataclass(frozen=True)
class FlowOptions:
    """Training-time flow-matching options.

    Attributes:
        mask_kind: ``"span"`` (ZipVoice: one contiguous masked span at a random position) or
            ``"suffix"`` (Dialog/Stereo: the masked frames are a suffix, the prompt a prefix).
        mask_min_frac: smallest masked fraction of an utterance's frames.
        mask_max_frac: largest masked fraction.
        text_drop_prob: probability of zeroing an utterance's whole text condition (for CFG).
        se_loss_weight: weight of the speaker-exclusive loss on stereo batches.
    """

    mask_kind: MaskKind = "suffix"
    mask_min_frac: float = 0.5
    mask_max_frac: float = 1.0
    text_drop_prob: float = 0.2
    se_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mask_kind not in ("span", "suffix"):
            raise ValueError(f"mask_kind={self.mask_kind!r}: expected 'span' or 'suffix'")
        if not 0.0 < self.mask_min_frac <= self.mask_max_frac <= 1.0:
            raise ValueError(
                f"mask fractions ({self.mask_min_frac}, {self.mask_max_frac}): "
                "need 0 < mask_min_frac <= mask_max_frac <= 1"
            )
        if not 0.0 <= self.text_drop_prob < 1.0:
            raise ValueError(f"text_drop_prob={self.text_drop_prob}: need 0 <= p < 1")
        if self.se_loss_weight < 0.0:
            raise ValueError(f"se_loss_weight={self.se_loss_weight}: need >= 0")

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> FlowOptions:
        """Upstream's settings for a training mode.

        Args:
            mode: ``"single"`` (ZipVoice: span mask 70–100 %) or ``"dialog"``/``"stereo"``
                (suffix mask 50–100 %).
            **overrides: fields to change.

        Returns:
            The options.

        >>> FlowOptions.for_mode("single").mask_min_frac
        0.7
        """
        if mode == "single":
            base = {"mask_kind": "span", "mask_min_frac": 0.7, "mask_max_frac": 1.0}
        elif mode in ("dialog", "stereo"):
            base = {"mask_kind": "suffix", "mask_min_frac": 0.5, "mask_max_frac": 1.0}
        else:
            raise ValueError(f"mode={mode!r}: expected 'single', 'dialog' or 'stereo'")
        base.update(overrides)
        return cls(**base)


# ------------------------------------------------------------------------------------------
# masks


def make_pad_mask(lens: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Padding mask from lengths.

    Args:
        lens: shape ``(B,)``, int lengths.
        max_len: T; defaults to ``lens.max()``.

    Returns:
        shape ``(B, T)``, True on padding frames.
    """
    max_len = int(lens.max()) if max_len is None else max_len
    frames = torch.arange(max_len, device=lens.device)
    return frames.unsqueeze(0) >= lens.unsqueeze(1)


def target_mask(
    features_lens: torch.Tensor,
    max_len: int,
    *,
    kind: MaskKind,
    min_frac: float,
    max_frac: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw the frames to generate (and score) for each utterance.

    A fraction ``U(min_frac, max_frac)`` of each utterance's frames (at least one frame) is
    masked: as one span at a uniformly random position (``kind="span"``) or as a suffix
    (``kind="suffix"``, so the speech prompt is a random prefix).

    Args:
        features_lens: shape ``(B,)``, valid frames per utterance.
        max_len: T.
        kind: ``"span"`` or ``"suffix"``.
        min_frac: smallest masked fraction.
        max_frac: largest masked fraction.
        generator: CPU generator for the draw.

    Returns:
        shape ``(B, T)``, True on masked frames; always False on padding.
    """
    lens = features_lens.detach().to("cpu", torch.int64)
    batch = lens.numel()
    frac = min_frac + (max_frac - min_frac) * torch.rand(batch, generator=generator)
    num_masked = torch.clamp((frac * lens).round().to(torch.int64), min=1)
    num_masked = torch.minimum(num_masked, lens)
    if kind == "suffix":
        start = lens - num_masked
    elif kind == "span":
        start = (torch.rand(batch, generator=generator) * (lens - num_masked + 1)).floor()
        start = torch.minimum(start.to(torch.int64), lens - num_masked)
    else:
        raise ValueError(f"kind={kind!r}: expected 'span' or 'suffix'")
    frames = torch.arange(max_len).unsqueeze(0)
    mask = (frames >= start.unsqueeze(1)) & (frames < (start + num_masked).unsqueeze(1))
    return mask.to(features_lens.device)


# ------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class TrainingDraw:
    """The random quantities of one training step (drawn outside the network for DDP/resume).

    Attributes:
        t: shape ``(B, 1, 1)``, flow time ``~U(0, 1)``.
        noise: shape ``(B, T, F)``, x0 ``~N(0, I)``.
        target_mask: shape ``(B, T)``, True on frames to generate.
        text_keep: shape ``(B, 1, 1)``, 0.0 where the text condition is dropped, else 1.0.
    """

    t: torch.Tensor
    noise: torch.Tensor
    target_mask: torch.Tensor
    text_keep: torch.Tensor


def draw_noise_and_mask(
    features_lens: torch.Tensor,
    shape: tuple[int, int, int] | torch.Size,
    options: FlowOptions,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise of ``shape`` ``(B, T, feat_dim)`` and each row's target mask (the frames
    the flow predicts, :func:`target_mask` with the options' kind and fractions), drawn from
    ``generator`` in that order (on the CPU)."""
    batch, max_len, feat_dim = shape
    noise = torch.randn(batch, max_len, feat_dim, generator=generator)
    mask = target_mask(
        features_lens,
        max_len,
        kind=options.mask_kind,
        min_frac=options.mask_min_frac,
        max_frac=options.mask_max_frac,
        generator=generator,
    )
    return noise, mask


def draw_training_inputs(
    features: torch.Tensor,
    features_lens: torch.Tensor,
    options: FlowOptions,
    *,
    generator: torch.Generator,
) -> TrainingDraw:
    """Draw t, noise, target mask and text dropout for one batch from one CPU generator.

    Drawing on the CPU from one explicit generator makes a step's randomness a function of the
    generator's seed only (same on every device, exact after resume).

    Args:
        features: shape ``(B, T, F)``; only its shape, dtype and device are used.
        features_lens: shape ``(B,)``.
        options: mask and dropout settings.
        generator: a CPU ``torch.Generator``.

    Returns:
        The draw, on ``features.device``.
    """
    batch = features.shape[0]
    device = features.device
    t = torch.rand(batch, 1, 1, generator=generator)
    noise, mask = draw_noise_and_mask(features_lens, features.shape, options, generator)
    keep = (torch.rand(batch, 1, 1, generator=generator) >= options.text_drop_prob).float()
    return TrainingDraw(
        t=t.to(device),
        noise=noise.to(device=device, dtype=features.dtype),
        target_mask=mask.to(device),
        text_keep=keep.to(device),
    )


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames where ``mask`` is True (all feature bins).

    Args:
        pred: shape ``(B, T, F)``.
        target: shape ``(B, T, F)``.
        mask: shape ``(B, T)``.

    Returns:
        A scalar; 0 (with a gradient path) when the mask is empty.
    """
    weight = mask.unsqueeze(-1).to(pred.dtype)
    denom = weight.sum() * pred.size(-1)
    return ((pred - target) ** 2 * weight).sum() / denom.clamp(min=1.0)


def speaker_exclusive_loss(
    x1_estimate: torch.Tensor,
    x1: torch.Tensor,
    loss_mask: torch.Tensor,
) -> torch.Tensor:
    """Penalty on frames where both channels of a stereo estimate are loud (ZipVoice §1.11).

    Frame energy is the mean over mel bins of each channel. The threshold τ of an utterance is
    upstream's: the median (``torch.quantile(·, 0.5)``, interpolating between the two middle
    values) of the ground-truth frame energies of both channels over all ``T`` frames of the
    batch, padding frames included (as ``ZipVoiceDialogStereo.adaptive_threshold_from_gt``).
    Where both estimated channels exceed τ, the penalty is ``(E_L - τ)(E_R - τ)``; it is
    averaged over the masked frames.

    Args:
        x1_estimate: shape ``(B, T, 2M)``, one-step x1 estimate (left | right mel).
        x1: shape ``(B, T, 2M)``, ground truth.
        loss_mask: shape ``(B, T)``, True on masked, non-padding frames.

    Returns:
        A scalar.
    """
    num_bins = x1.size(-1) // 2
    energy_est = x1_estimate.reshape(*x1_estimate.shape[:2], 2, num_bins).mean(-1)  # (B, T, 2)
    energy_gt = x1.reshape(*x1.shape[:2], 2, num_bins).mean(-1)
    both_channels = torch.cat([energy_gt[..., 0], energy_gt[..., 1]], dim=1).float()  # (B, 2T)
    tau = torch.quantile(both_channels, 0.5, dim=1).view(-1, 1, 1).to(energy_est.dtype).detach()
    excess = energy_est - tau  # (B, T, 2)
    both = (excess > 0).all(-1) & loss_mask
    penalty = excess[..., 0] * excess[..., 1] * both.to(excess.dtype)
    return penalty.sum() / loss_mask.sum().clamp(min=1).to(excess.dtype)


class _TextConditioned(Protocol):
    def forward_text_train(
        self, tokens: list[list[int]], features_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward_fm_decoder(self, *args, **kwargs) -> torch.Tensor: ...


class FlowMatchingLoss(nn.Module):
    """The training objective as a module, so it can be wrapped by DDP.

    ``forward`` runs the network's text path and vector-field estimator and returns the losses;
    all randomness comes in as tensors (:func:`draw_training_inputs`).

    Args:
        network: a module with ``forward_text_train`` and ``forward_fm_decoder``.
        options: flow options.

    >>> loss_fn = FlowMatchingLoss(network, FlowOptions.for_mode("dialog"))  # doctest: +SKIP
    >>> out = loss_fn(tokens, feats, lens, **vars(draw))  # doctest: +SKIP
    >>> out["loss"].backward()  # doctest: +SKIP
    """

    def __init__(self, network: nn.Module, options: FlowOptions) -> None:
        super().__init__()
        self.network = network
        self.options = options

    def forward(
        self,
        tokens: list[list[int]],
        features: torch.Tensor,
        features_lens: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        target_mask: torch.Tensor,
        text_keep: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Compute the flow-matching loss (plus the SE loss on stereo features).

        Args:
            tokens: B lists of token ids (prompt and target text together).
            features: shape ``(B, T, F)``, model-space mel (x1); F = 2·C means stereo.
            features_lens: shape ``(B,)``.
            t: shape ``(B, 1, 1)``.
            noise: shape ``(B, T, F)``.
            target_mask: shape ``(B, T)``.
            text_keep: shape ``(B, 1, 1)``.

        Returns:
            ``{"loss", "fm_loss", "se_loss", "num_frames"}``, scalars; ``se_loss`` is 0 on mono
            features.
        """
        text_condition, padding_mask = self.network.forward_text_train(tokens, features_lens)
        text_condition = text_condition * text_keep.to(text_condition.dtype)
        out = flow_matching_terms(
            self.network,
            features=features,
            text_condition=text_condition,
            padding_mask=padding_mask,
            t=t,
            noise=noise,
            target_mask=target_mask,
        )
        stereo = features.size(-1) == 2 * text_condition.size(-1)
        if stereo and self.options.se_loss_weight > 0:
            se = speaker_exclusive_loss(out["x1_estimate"], features, out["loss_mask"])
        else:
            se = out["fm_loss"].new_zeros(())
        loss = out["fm_loss"] + self.options.se_loss_weight * se
        return {
            "loss": loss,
            "fm_loss": out["fm_loss"].detach(),
            "se_loss": se.detach(),
            "num_frames": out["loss_mask"].sum().detach(),
        }


def noisy_input(
    features: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, target_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow's point at ``t`` and its prompt condition.

    Args:
        features: shape ``(B, T, F)``, x1.
        noise: shape ``(B, T, F)``, x0.
        t: shape ``(B, 1, 1)``, in ``features``' dtype.
        target_mask: shape ``(B, T)``, True on the frames to generate.

    Returns:
        ``x_t = t·x1 + (1 − t)·x0`` and the features with the target frames zeroed (the
        speech prompt the network sees), both ``(B, T, F)``.
    """
    xt = t * features + (1.0 - t) * noise
    return xt, features.masked_fill(target_mask.unsqueeze(-1), 0.0)


def flow_matching_terms(
    estimator: VelocityEstimator,
    *,
    features: torch.Tensor,
    text_condition: torch.Tensor,
    padding_mask: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    target_mask: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The flow-matching loss for given conditions and draws (no text dropout here).

    x_t = t·x1 + (1−t)·x0, target velocity u = x1 − x0, speech condition = x1 with the target
    frames zeroed; MSE over frames that are in ``target_mask`` and not padding.

    Args:
        estimator: the vector-field estimator.
        features: shape ``(B, T, F)``, x1.
        text_condition: shape ``(B, T, C)``.
        padding_mask: shape ``(B, T)``, True on padding.
        t: shape ``(B, 1, 1)``.
        noise: shape ``(B, T, F)``, x0.
        target_mask: shape ``(B, T)``.

    Returns:
        ``{"fm_loss": scalar, "x1_estimate": (B, T, F), "loss_mask": (B, T)}``.
    """
    t = t.to(features.dtype)
    xt, speech_condition = noisy_input(features, noise, t, target_mask)
    ut = features - noise
    vt = estimator.forward_fm_decoder(
        t=t,
        xt=xt,
        text_condition=text_condition,
        speech_condition=speech_condition,
        padding_mask=padding_mask,
    ).float()
    loss_mask = target_mask & ~padding_mask
    fm_loss = masked_mse(vt, ut.float(), loss_mask)
    x1_estimate = xt.float() + (1.0 - t.float()) * vt
    return {"fm_loss": fm_loss, "x1_estimate": x1_estimate, "loss_mask": loss_mask}


# ------------------------------------------------------------------------------------------
# sampling


def timesteps(num_steps: int, t_shift: float = 0.5, *, device=None) -> torch.Tensor:
    """The ``num_steps + 1`` Euler time points, warped toward t = 0 by ``t_shift``.

    t' = s·t / (1 + (s − 1)·t) on ``linspace(0, 1)``; s < 1 packs steps near the noisy end.

    Args:
        num_steps: number of Euler steps (≥ 1).
        t_shift: the warp s (> 0); 1 means uniform.
        device: where to put the result.

    Returns:
        shape ``(num_steps + 1,)``, from 0 to 1.

    >>> timesteps(2, 0.5).tolist()
    [0.0, 0.3333333432674408, 1.0]
    """
    if num_steps < 1:
        raise ValueError(f"num_steps={num_steps}: need >= 1")
    if t_shift <= 0:
        raise ValueError(f"t_shift={t_shift}: need > 0")
    ts = torch.linspace(0.0, 1.0, num_steps + 1, device=device)
    return t_shift * ts / (1.0 + (t_shift - 1.0) * ts)


def draw_noise(
    lens: Sequence[int],
    feat_dim: int,
    *,
    seed: int | Sequence[int],
    max_len: int | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Initial noise drawn item by item, so an item's noise does not depend on its batch.

    Item i gets ``randn(lens[i], feat_dim)`` from a generator seeded with ``seed`` (or
    ``seed[i]``); the padding is zero.

    Args:
        lens: valid frames of each item.
        feat_dim: F.
        seed: one seed for every item, or one per item.
        max_len: T; defaults to ``max(lens)``.
        device: target device.
        dtype: target dtype.

    Returns:
        shape ``(B, T, F)``.
    """
    seeds = [seed] * len(lens) if isinstance(seed, int) else list(seed)
    if len(seeds) != len(lens):
        raise ValueError(f"{len(seeds)} seeds for {len(lens)} items")
    max_len = max(lens) if max_len is None else max_len
    out = torch.zeros(len(lens), max_len, feat_dim)
    for i, (n, s) in enumerate(zip(lens, seeds)):
        gen = torch.Generator().manual_seed(int(s))
        out[i, : int(n)] = torch.randn(int(n), feat_dim, generator=gen)
    return out.to(device=device, dtype=dtype)


def pair_side_by_side_by_default(estimator: VelocityEstimator, device: torch.device) -> bool:
    """Whether :func:`sample` runs a guided step's two passes side by side when not told:
    a torch network on the CPU with at least two intra-op threads (an ONNX Runtime session
    has its own thread pool, a GPU its own parallelism)."""
    return (
        isinstance(estimator, nn.Module) and device.type == "cpu" and torch.get_num_threads() >= 2
    )


class _PairRunner:
    """Runs the two passes of a guided step at once on a CPU, each on its own thread with half
    the intra-op threads, and restores the process's thread count afterwards.

    One doubled batch leaves cores idle in every operation too small to split well across
    them (elementwise tails, the narrow per-head products of the attention); two half
    batches side by side keep each core on one pass: 1.1x per step on 2 cores
    (``python -m bench.bench_upstream``). Each pass sees a batch of the original size, so the
    result equals the doubled batch's up to float rounding.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.per_pass = max(1, threads // 2)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfg-pass")

    def _call(self, fn, kwargs: dict) -> torch.Tensor:
        torch.set_num_threads(self.per_pass)
        with torch.inference_mode():
            return fn(**kwargs)

    def __call__(self, fn, uncond: dict, cond: dict) -> tuple[torch.Tensor, torch.Tensor]:
        other = self._pool.submit(self._call, fn, uncond)
        try:
            v_cond = self._call(fn, cond)
        finally:
            v_uncond = other.result()
            torch.set_num_threads(self.threads)
        return v_uncond, v_cond

    def close(self) -> None:
        self._pool.shutdown()


@contextlib.contextmanager
def _pair_runner(enabled: bool) -> Iterator[_PairRunner | None]:
    if not enabled:
        yield None
        return
    runner = _PairRunner(torch.get_num_threads())
    try:
        yield runner
    finally:
        runner.close()


@torch.inference_mode()
def sample(
    estimator: VelocityEstimator,
    *,
    noise: torch.Tensor,
    text_condition: torch.Tensor,
    speech_condition: torch.Tensor,
    padding_mask: torch.Tensor,
    num_steps: int = 16,
    t_shift: float = 0.5,
    guidance_scale: float = 1.0,
    distill: bool | None = None,
    pair_side_by_side: bool | None = None,
) -> torch.Tensor:
    """Integrate the flow from noise (t = 0) to data (t = 1) with Euler steps.

    Classifier-free guidance is upstream's time-dependent scheme, run as one doubled batch:
    v = (1 + w)·v_cond − w·v_uncond, where for t ≤ 0.5 the unconditional pass drops only the text
    and w is doubled, and for t > 0.5 it drops the text and the speech prompt. ``guidance_scale
    = 0`` runs a single conditional pass. A distilled network takes ``guidance_scale`` as an
    input instead (one pass per step, no doubling).

    Args:
        estimator: the vector-field estimator.
        noise: shape ``(B, T, F)``, x0 (see :func:`draw_noise`).
        text_condition: shape ``(B, T, C)``.
        speech_condition: shape ``(B, T, F)``, prompt frames, zero elsewhere.
        padding_mask: shape ``(B, T)``, True on padding.
        num_steps: Euler steps.
        t_shift: time warp s (0.5 upstream).
        guidance_scale: w (ZipVoice 1.0, Dialog 1.5, Distill 3.0).
        distill: pass w to the network rather than running guided pairs; None asks the
            estimator (its ``takes_guidance_input``: a distilled torch or ONNX network).
        pair_side_by_side: run a guided step's unconditional and conditional passes at once
            on two threads (:class:`_PairRunner`) instead of as one doubled batch; None: where
            :func:`pair_side_by_side_by_default` says so.

    Returns:
        x1, shape ``(B, T, F)``, padding frames zeroed.
    """
    if distill is None:
        distill = bool(getattr(estimator, "takes_guidance_input", False))
    ts = timesteps(num_steps, t_shift, device=noise.device)
    x = noise
    batch = x.size(0)
    w_input = None
    if distill:
        w_input = torch.full((batch, 1, 1), float(guidance_scale), device=x.device, dtype=x.dtype)
    zeros_text = torch.zeros_like(text_condition)
    zeros_speech = torch.zeros_like(speech_condition)
    guided = not distill and guidance_scale != 0.0
    if pair_side_by_side is None:
        pair_side_by_side = pair_side_by_side_by_default(estimator, x.device)
    with _pair_runner(guided and pair_side_by_side) as pair:
        for i in range(num_steps):
            t_now = float(ts[i])
            dt = ts[i + 1] - ts[i]
            if not guided:
                v = estimator.forward_fm_decoder(
                    t=torch.full((batch, 1, 1), t_now, device=x.device, dtype=x.dtype),
                    xt=x,
                    text_condition=text_condition,
                    speech_condition=speech_condition,
                    padding_mask=padding_mask,
                    guidance_scale=w_input,
                )
            else:
                if t_now > 0.5:
                    w = guidance_scale
                    uncond_speech = zeros_speech
                else:
                    w = 2.0 * guidance_scale
                    uncond_speech = speech_condition
                v_uncond, v_cond = _guided_pair(
                    estimator,
                    pair,
                    t_now,
                    x,
                    text_condition,
                    zeros_text,
                    speech_condition,
                    uncond_speech,
                    padding_mask,
                )
                v = (1.0 + w) * v_cond - w * v_uncond
            x = x + dt * v.to(x.dtype)
    return x.masked_fill(padding_mask.unsqueeze(-1), 0.0)


def _guided_pair(
    estimator: VelocityEstimator,
    pair: _PairRunner | None,
    t_now: float,
    x: torch.Tensor,
    text_condition: torch.Tensor,
    zeros_text: torch.Tensor,
    speech_condition: torch.Tensor,
    uncond_speech: torch.Tensor,
    padding_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v_uncond, v_cond)`` of one guided step: one doubled batch, or two passes side by side."""
    batch = x.size(0)
    if pair is None:
        v_pair = estimator.forward_fm_decoder(
            t=torch.full((2 * batch, 1, 1), t_now, device=x.device, dtype=x.dtype),
            xt=torch.cat([x, x]),
            text_condition=torch.cat([zeros_text, text_condition]),
            speech_condition=torch.cat([uncond_speech, speech_condition]),
            padding_mask=torch.cat([padding_mask, padding_mask]),
        )
        return v_pair.chunk(2, dim=0)
    t = torch.full((batch, 1, 1), t_now, device=x.device, dtype=x.dtype)
    common = {"t": t, "xt": x, "padding_mask": padding_mask}
    return pair(
        estimator.forward_fm_decoder,
        {**common, "text_condition": zeros_text, "speech_condition": uncond_speech},
        {**common, "text_condition": text_condition, "speech_condition": speech_condition},
    )


def sample_with_prompt(
    network: _TextConditioned,
    *,
    tokens: list[list[int]],
    prompt_features: torch.Tensor,
    prompt_features_lens: torch.Tensor,
    features_lens: torch.Tensor,
    seed: int | Sequence[int] = 666,
    num_steps: int = 16,
    t_shift: float = 0.5,
    guidance_scale: float = 1.5,
    distill: bool | None = None,
) -> torch.Tensor:
    """Continue a speech prompt for a known total length ("real" duration mode).

    Args:
        network: a module with ``forward_text_train`` and ``forward_fm_decoder``.
        tokens: B lists of token ids of the prompt text followed by the target text.
        prompt_features: shape ``(B, T_p, F)``, model-space prompt mel.
        prompt_features_lens: shape ``(B,)``.
        features_lens: shape ``(B,)``, total (prompt + target) frames of each item.
        seed: noise seed(s), see :func:`draw_noise`.
        num_steps: Euler steps.
        t_shift: time warp.
        guidance_scale: CFG weight.
        distill: the network takes the guidance scale as input (None: its own
            ``takes_guidance_input``).

    Returns:
        shape ``(B, T, F)``, the whole generated sequence (prompt region regenerated too);
        frames ``[prompt_len, features_len)`` of item i are its target.
    """
    with torch.inference_mode():
        text_condition, padding_mask = network.forward_text_train(tokens, features_lens)
    max_len = text_condition.size(1)
    feat_dim = prompt_features.size(-1)
    speech_condition = prompt_features.new_zeros(prompt_features.size(0), max_len, feat_dim)
    width = min(prompt_features.size(1), max_len)
    speech_condition[:, :width] = prompt_features[:, :width]
    prompt_pad = make_pad_mask(prompt_features_lens.to(speech_condition.device), max_len)
    speech_condition = speech_condition.masked_fill(prompt_pad.unsqueeze(-1), 0.0)
    noise = draw_noise(
        [int(n) for n in features_lens],
        feat_dim,
        seed=seed,
        max_len=max_len,
        device=speech_condition.device,
        dtype=speech_condition.dtype,
    )
    return sample(
        network,
        noise=noise,
        text_condition=text_condition,
        speech_condition=speech_condition,
        padding_mask=padding_mask,
        num_steps=num_steps,
        t_shift=t_shift,
        guidance_scale=guidance_scale,
        distill=distill,
    )
