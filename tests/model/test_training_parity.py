"""Training-step parity with upstream ZipVoice-Dialog (issue 18, item 1).

``tests/fixtures/zipvoice-upstream/train_step_<model>.pt`` holds what upstream's own training
``forward`` gave for one batch of the tiny ``dialog`` / ``dialog_stereo`` models, with every random
draw explicit (features, t, noise, the prompt/target mask, the text drop), and the update that
gradient clipping + AdamW made of its gradients (``scripts/upstream_reference.py`` says how and
what is held fixed). Here our own path does the same: the network loaded from upstream's
state_dict, :class:`FlowMatchingLoss` (the trainer's loss module) with the draws injected, and
one ``TrainingLoop.train_step`` with the trainer's optimizer.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model.network.checkpoint import load_network_state
from model.network.config import NetworkConfig, variant_from_upstream_class
from model.network.flow import FlowMatchingLoss, FlowOptions
from model.network.zipformer.positional import CompactRelPositionalEncoding
from model.network.zipvoice import DialogTTSNetwork
from model.training.loop import DistContext, LoopSettings, TrainingLoop
from model.training.options import TrainOptions
from model.training.trainer import OPTIMIZER_BETAS, build_optimizer

NAMES = ("zipvoice_dialog", "zipvoice_dialog_stereo")
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-4
# AdamW's first step moves each weight by lr * g / (|g| + eps), i.e. by about ±lr, plus the
# decay: equal gradients give equal steps up to float32 rounding of the weights (~1e-8), except
# for an element whose gradient is itself at roundoff level (|g| ~ eps), whose step may differ by
# a few thousandths of lr. Bounds in units of lr (1e-4): any element within 1 %, the root mean
# square of each tensor's difference within 0.5 %.
UPDATE_ELEMENT_ATOL = 1e-2
UPDATE_RMS_ATOL = 5e-3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load(fixture_dir: Path, name: str) -> tuple[dict, dict]:
    reference = torch.load(fixture_dir / f"train_step_{name}.pt", weights_only=True)
    tiny = torch.load(fixture_dir / reference["source"], weights_only=True)
    return reference, tiny


def _network(tiny: dict) -> DialogTTSNetwork:
    """Our network with upstream's weights, in training mode, positional dropout held at 0."""
    state = tiny["state_dict"]
    config = NetworkConfig.from_upstream_json(
        tiny["config"],
        vocab_size=state["embed.weight"].shape[0],
        variant=variant_from_upstream_class(tiny["class"]),
    )
    net = DialogTTSNetwork(config)
    load_network_state(net, state)
    for module in net.modules():
        if isinstance(module, CompactRelPositionalEncoding):
            module.dropout_rate = 0.0
    return net.train()


def _loss_fn(net: DialogTTSNetwork, inputs: dict) -> FlowMatchingLoss:
    stereo = inputs["se_weight"] is not None
    options = FlowOptions.for_mode(
        "stereo" if stereo else "dialog",
        text_drop_prob=inputs["condition_drop_ratio"],
        se_loss_weight=inputs["se_weight"] if stereo else 0.0,
    )
    return FlowMatchingLoss(net, options)


def _draws(inputs: dict, **override) -> dict:
    draws = {k: inputs[k] for k in ("t", "noise", "target_mask", "text_keep")}
    draws.update(override)
    return draws


def _run(loss_fn: FlowMatchingLoss, inputs: dict, **override) -> torch.Tensor:
    out = loss_fn(
        inputs["tokens"], inputs["features"], inputs["features_lens"], **_draws(inputs, **override)
    )
    return out["loss"]


def _probe(name: str, shape) -> torch.Tensor:
    """The script's fixed probe of a parameter (a seeded normal tensor)."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _stats(name: str, value: torch.Tensor) -> torch.Tensor:
    v = value.detach().double()
    return torch.stack([v.sum(), v.norm(), v.abs().max(), (v * _probe(name, v.shape)).sum()])


def _stat_error(ours: torch.Tensor, ref: torch.Tensor, numel: int, scale: float) -> float:
    """The largest stat difference in units of ``scale`` (a tensor's norm): each stat moves by
    at most sqrt(numel) (sum, probe) or 1 (norm, max) times the norm of the difference."""
    bounds = torch.tensor([math.sqrt(numel), 1.0, 1.0, math.sqrt(numel)], dtype=torch.float64)
    return float(((ours - ref).abs() / bounds).max()) / scale


@pytest.fixture(scope="module", params=NAMES)
def case(request, upstream_fixtures: Path) -> dict:
    reference, tiny = _load(upstream_fixtures, request.param)
    net = _network(tiny)
    loss_fn = _loss_fn(net, reference["inputs"])
    loss = _run(loss_fn, reference["inputs"])
    loss.backward()
    grads = {
        n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
        for n, p in net.named_parameters()
    }
    reached = sorted(n for n, p in net.named_parameters() if p.grad is not None)
    return {
        "name": request.param,
        "reference": reference,
        "tiny": tiny,
        "net": net,
        "loss": loss.detach(),
        "grads": grads,
        "reached": reached,
    }


def test_loss_equals_upstream(case: dict, figure) -> None:
    expected = float(case["reference"]["loss"])
    rel = abs(float(case["loss"]) - expected) / abs(expected)
    figure("loss_rel_err", rel, at_most=LOSS_RTOL)


def test_gradients_equal_upstream(case: dict, figure) -> None:
    reference, grads = case["reference"], case["grads"]
    stats = reference["grad_stats"]
    assert sorted(grads) == sorted(stats), "parameter names differ"
    assert case["reached"] == reference["reached"], "different parameters get gradients"
    total = float(reference["grad_norm"])
    ours_total = math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads.values()))
    figure("grad_norm_rel_err", abs(ours_total - total) / total, at_most=GRAD_RTOL)
    worst = 0.0
    for name, grad in grads.items():
        ref = stats[name]
        # relative to the tensor's own gradient norm; a gradient that is mathematically zero
        # (e.g. the attention keys' bias: softmax ignores a constant shift) is roundoff on
        # both sides, so the scale never drops below 1e-6 of the whole gradient's norm
        scale = max(float(ref[1]), 1e-6 * total)
        err = _stat_error(_stats(name, grad), ref, grad.numel(), scale)
        worst = max(worst, err)
        assert err <= GRAD_RTOL, (name, err, _stats(name, grad).tolist(), ref.tolist())
    figure("grad_stats_rel_err", worst, at_most=GRAD_RTOL)
    full = 0.0
    for name, ref in reference["grads"].items():
        err = float((grads[name] - ref).norm() / ref.norm())
        full = max(full, err)
    assert len(reference["grads"]) >= 6
    figure("key_grad_rel_err", full, at_most=GRAD_RTOL)


class _OneBatch(TrainingLoop):
    """The trainer's update (``TrainingLoop.train_step``) on the fixture's batch and draws."""

    def __init__(self, net: DialogTTSNetwork, inputs: dict, options: TrainOptions) -> None:
        settings = LoopSettings(
            num_steps=1,
            log_every=1,
            save_every=1,
            seed=0,
            grad_clip=options.grad_clip,
            log_progress=False,
            log_name="parity",
        )
        super().__init__(settings, DistContext(0, 1, 0, torch.device("cpu")), Path("."))
        self.network = net
        self.model = _loss_fn(net, inputs)
        self.optimizer, self.scheduler = build_optimizer(net, options)
        self.inputs = inputs

    def compute_loss(self, batch, generator) -> dict:
        return {"loss": _run(self.model, self.inputs)}

    def save(self) -> None:  # pragma: no cover - never called
        raise AssertionError("no checkpoints here")

    def state_dict(self) -> dict:  # pragma: no cover
        return {}

    def load_state_dict(self, state: dict) -> None:  # pragma: no cover
        pass


def test_one_step_moves_weights_as_upstream(case: dict, figure, tmp_path: Path) -> None:
    reference = case["reference"]
    opt = reference["optimizer"]
    options = TrainOptions(cuts=("unused.jsonl.gz",), exp_dir=str(tmp_path), config="tiny")
    # the numbers were made with the trainer's own defaults
    assert (options.lr, options.weight_decay, options.grad_clip) == (
        opt["lr"],
        opt["weight_decay"],
        opt["grad_clip"],
    )
    assert list(OPTIMIZER_BETAS) == list(opt["betas"])
    net = _network(case["tiny"])
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    loop = _OneBatch(net, reference["inputs"], options)
    stats = loop.train_step(batch=None)
    assert stats["grad_norm"] == pytest.approx(float(reference["grad_norm"]), rel=GRAD_RTOL)
    lr = opt["lr"]
    worst = 0.0
    for name, p in net.named_parameters():
        update = p.detach() - before[name]
        root_n = math.sqrt(update.numel())
        # sum, norm and probe move by at most sqrt(n) x the RMS difference; max by one element
        bounds = torch.tensor(
            [root_n * UPDATE_RMS_ATOL, root_n * UPDATE_RMS_ATOL, UPDATE_ELEMENT_ATOL]
            + [root_n * UPDATE_RMS_ATOL],
            dtype=torch.float64,
        )
        err = float(((_stats(name, update) - reference["update_stats"][name]).abs() / bounds).max())
        worst = max(worst, err / lr)
        assert err <= lr, (name, err / lr)
    figure("update_stats_err_of_bound", worst, at_most=1.0)
    for name, ref in reference["updates"].items():
        update = dict(net.named_parameters())[name].detach() - before[name]
        assert float((update - ref).abs().max()) <= UPDATE_ELEMENT_ATOL * lr, name
    # the step did move the weights (by about lr each)
    moved = reference["updates"]["embed.weight"].abs().max()
    assert float(moved) == pytest.approx(opt["lr"], rel=0.2)


@pytest.mark.parametrize(
    "change",
    ["loss_on_every_frame", "no_text_drop", "noise_negated", "prompt_frames_scored"],
)
def test_comparison_is_not_vacuous(case: dict, change: str) -> None:
    """A wrong mask, text drop or noise in our loss would fail the loss tolerance by far."""
    inputs = case["reference"]["inputs"]
    net = case["net"]
    loss_fn = _loss_fn(net, inputs)
    valid = torch.arange(inputs["noise"].shape[1])[None, :] < inputs["features_lens"][:, None]
    override = {
        "loss_on_every_frame": {"target_mask": valid},
        "no_text_drop": {"text_keep": torch.ones_like(inputs["text_keep"])},
        "noise_negated": {"noise": -inputs["noise"]},
        "prompt_frames_scored": {"target_mask": valid & ~inputs["target_mask"]},
    }[change]
    with torch.no_grad():
        loss = _run(loss_fn, inputs, **override)
    expected = float(case["reference"]["loss"])
    assert abs(float(loss) - expected) / abs(expected) > 100 * LOSS_RTOL
