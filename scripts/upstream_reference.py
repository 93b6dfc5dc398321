"""Reference numbers from upstream ZipVoice's own code: one training step, and an export check.

Runs ONLY in a separate venv that holds upstream's model code, never in the project's venv:

    python3 -m venv /work/upstream-venv
    /work/upstream-venv/bin/pip install torch==2.14.1 numpy safetensors
    # upstream's model code (k2-fsa/ZipVoice, the snapshot of tests/fixtures/zipvoice-upstream:
    # zipvoice/models/{zipvoice,zipvoice_dialog}.py, zipvoice/models/modules/{scaling,zipformer,
    # zipformer_two_stream}.py, zipvoice/utils/common.py) on PYTHONPATH. The package index's
    # zipvoice==0.1.0 holds only zipvoice/__init__.py, so a checkout of the repository is needed.
    PYTHONPATH=/path/to/ZipVoice /work/upstream-venv/bin/python scripts/upstream_reference.py check
    PYTHONPATH=/path/to/ZipVoice /work/upstream-venv/bin/python scripts/upstream_reference.py train-step
    PYTHONPATH=/path/to/ZipVoice /work/upstream-venv/bin/python scripts/upstream_reference.py \
        export-check --export-dir DIR --ours DIR/ours.pt --name zipvoice_dialog

``check`` reruns the existing tiny fixtures (eval-mode text condition and velocity) to show that
the upstream code on PYTHONPATH is the snapshot they came from.

``train-step`` writes ``tests/fixtures/zipvoice-upstream/train_step_<model>.pt`` for
``zipvoice_dialog`` and ``zipvoice_dialog_stereo`` (the tiny models and token lists of
``tiny_<model>.pt``): upstream's training ``forward`` (the loss), the gradient of every parameter
and one optimizer update. Every random draw is explicit and stored: features, t, noise, the
prompt/target mask (upstream's ``condition_time_mask_suffix`` is replaced by the stored mask) and
the text-condition drop (upstream draws ``torch.rand(B, 1, 1) > ratio``; the stored per-item keep
decision is fed through that draw). The network runs in training mode without a batch count
(upstream's schedules at their defaults: no dropout, no layer or sub-module skipping), with
three things held fixed on both sides:

* the positional-encoding dropout (p = 0.15 in training) is set to 0;
* upstream's gradient-only regularisers, random in their firing, are replaced by exact gradients:
  ``Balancer`` and ``Whiten`` become identities, ``SwooshL``/``SwooshR`` use ordinary autograd
  instead of the 8-bit dithered stored derivative (our network has none of these: see
  ``model/network/zipformer/scaling.py``); the size of that difference is printed;
* ``limit_param_value`` and ``penalize_abs_values_gt`` stay as upstream has them: the script
  asserts that they do nothing here (every limited parameter is inside its range, every attention
  score below 25).

The optimizer step is what our trainer does with a gradient: global-norm clipping to
``grad_clip``, then ``torch.optim.AdamW`` (the hyper-parameters are stored with the numbers);
upstream's own recipe uses ScaledAdam, which our trainer does not implement.

``export-check`` loads a directory written by ``python -m model.export_upstream`` the way
upstream's ``infer_zipvoice_dialog`` does (``tokens.txt`` → vocab/pad/[S1]/[S2] ids,
``model.json["model"]`` → the constructor, ``model.pt["model"]`` loaded strictly) and compares
its eval-mode text condition and velocity with the ones our code saved in ``--ours``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "zipvoice-upstream"
TRAIN_STEP_MODELS = ("zipvoice_dialog", "zipvoice_dialog_stereo")
OPTIMIZER = {"lr": 1e-4, "betas": (0.9, 0.98), "weight_decay": 0.01, "eps": 1e-8}
GRAD_CLIP = 1.0
DROP_RATIO = 0.5  # any ratio in (0, 1): the keep decisions come from the stored draw
KEY_TENSORS = (
    "embed.weight",
    "spk_embed.weight",
    "text_encoder.in_proj.weight",
    "text_encoder.out_proj.weight",
    "fm_decoder.time_embed.0.weight",
    "fm_decoder.encoders.0.layers.0.norm.log_scale",
    "fm_decoder.encoders.0.layers.0.bypass.bypass_scale",
    "fm_decoder.encoders.2.encoder.layers.0.conv_module1.depthwise_conv.weight",
)


def _classes():
    from zipvoice.models.zipvoice import ZipVoice
    from zipvoice.models.zipvoice_dialog import ZipVoiceDialog, ZipVoiceDialogStereo

    return {
        "ZipVoice": ZipVoice,
        "ZipVoiceDialog": ZipVoiceDialog,
        "ZipVoiceDialogStereo": ZipVoiceDialogStereo,
    }


def _build(data: dict, **ids) -> torch.nn.Module:
    vocab = data["state_dict"]["embed.weight"].shape[0]
    model = _classes()[data["class"]](**data["config"], vocab_size=vocab, **ids)
    model.load_state_dict(data["state_dict"], strict=True)
    return model


def check() -> None:
    for name in ("zipvoice",) + TRAIN_STEP_MODELS:
        data = torch.load(FIXTURES / f"tiny_{name}.pt", weights_only=True)
        model = _build(data).eval()
        inputs = data["inputs"]
        with torch.no_grad():
            tc, mask = model.forward_text_train(inputs["tokens"], inputs["features_lens"])
            v = model.forward_fm_decoder(
                inputs["t"], inputs["xt"], tc, inputs["speech_condition"], mask
            )
        print(
            f"{name}: text_condition max err "
            f"{float((tc - data['outputs']['text_condition']).abs().max()):.2e}, "
            f"velocity max err {float((v - data['outputs']['velocity']).abs().max()):.2e}"
        )


# ------------------------------------------------------------------------------------------
# the training step


def _exact_gradients(model: torch.nn.Module) -> dict[str, float]:
    """Upstream's random gradient regularisers → exact gradients; positional dropout off.

    Returns a record that ``limit_param_value`` / ``penalize_abs_values_gt`` stayed inactive.
    """
    from zipvoice.models.modules import scaling, zipformer

    for module in model.modules():
        if isinstance(module, (scaling.Balancer, scaling.Whiten)):
            module.forward = lambda x: x
        elif isinstance(module, scaling.SwooshL):
            module.forward = lambda x: (
                torch.logaddexp(torch.zeros_like(x), x - 4.0) - 0.08 * x - 0.035
            )
        elif isinstance(module, scaling.SwooshR):
            module.forward = lambda x: (
                torch.logaddexp(torch.zeros_like(x), x - 1.0) - 0.08 * x - 0.313261687
            )
        elif isinstance(module, zipformer.CompactRelPositionalEncoding):
            module.dropout.p = 0.0
    return _watch_limits()


def _watch_limits() -> dict[str, float]:
    from zipvoice.models.modules import scaling, zipformer

    seen = {"max_abs_score": 0.0, "out_of_range": 0.0}
    original_limit = scaling.limit_param_value
    original_penalize = zipformer.penalize_abs_values_gt

    def limit(x, min, max, prob=0.6, training=True):  # noqa: A002 (upstream's names)
        if training:
            outside = ((x < min) | (x > max)).sum()
            seen["out_of_range"] = float(seen["out_of_range"] + outside)
        return original_limit(x, min, max, prob=prob, training=training)

    def penalize(x, limit, penalty, name=None):
        seen["max_abs_score"] = max(seen["max_abs_score"], float(x.detach().abs().max()))
        return original_penalize(x, limit, penalty, name)

    scaling.limit_param_value = limit
    zipformer.limit_param_value = limit
    zipformer.penalize_abs_values_gt = penalize
    return seen


def _draws(data: dict, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    inputs = data["inputs"]
    lens = inputs["features_lens"]
    batch, frames, dim = inputs["xt"].shape
    features = torch.randn(batch, frames, dim, generator=gen) * 1.5 - 1.0
    features = features.masked_fill(torch.arange(frames)[None, :, None] >= lens[:, None, None], 0.0)
    noise = torch.randn(batch, frames, dim, generator=gen)
    t = torch.rand(batch, 1, 1, generator=gen)
    # suffix masks (the dialogue models' prompt/target split) of 50-100 % of each utterance
    frac = 0.5 + 0.5 * torch.rand(batch, generator=gen)
    size = (frac * lens).to(torch.int64)
    start = lens - size
    positions = torch.arange(frames)[None, :]
    target_mask = (positions >= start[:, None]) & (positions < (start + size)[:, None])
    text_keep = torch.tensor([1.0] + [0.0] * (batch - 1)).view(batch, 1, 1)
    return {
        "tokens": inputs["tokens"],
        "features": features,
        "features_lens": lens,
        "t": t,
        "noise": noise,
        "target_mask": target_mask,
        "text_keep": text_keep,
    }


def _upstream_loss(model, draws: dict, se_weight: float) -> torch.Tensor:
    from zipvoice.models import zipvoice_dialog

    mask = draws["target_mask"]

    def fixed_mask(features_lens, mask_percent, max_len=0):
        assert mask_percent == (0.5, 1.0) and max_len == mask.size(1)
        return mask.clone()

    calls = []
    keep = draws["text_keep"]

    def fixed_rand(*size, **kwargs):
        assert tuple(size) == tuple(keep.shape), size
        calls.append(size)
        # upstream keeps an item where rand > ratio
        return torch.where(keep > 0, 0.75, 0.25).to(torch.float32)

    zipvoice_dialog.condition_time_mask_suffix = fixed_mask
    original_rand = torch.rand
    torch.rand = fixed_rand
    try:
        kwargs = {"se_weight": se_weight} if se_weight is not None else {}
        loss = model(
            tokens=draws["tokens"],
            features=draws["features"],
            features_lens=draws["features_lens"],
            noise=draws["noise"],
            t=draws["t"],
            condition_drop_ratio=DROP_RATIO,
            **kwargs,
        )
    finally:
        torch.rand = original_rand
    assert len(calls) == 1, calls
    return loss


def _stats(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-parameter float64 [sum, L2 norm, max |x|, dot with a fixed probe]."""
    out = {}
    for name, value in tensors.items():
        v = value.detach().double()
        probe = _probe(name, v.shape)
        out[name] = torch.stack([v.sum(), v.norm(), v.abs().max(), (v * probe).sum()])
    return out


def _probe(name: str, shape) -> torch.Tensor:
    seed = sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _grads(model, draws, se_weight):
    model.zero_grad(set_to_none=True)
    loss = _upstream_loss(model, draws, se_weight)
    loss.backward()
    # a parameter the batch does not reach (the stereo model's mono projections) has no
    # gradient: zero, as for the optimizer
    return loss, {
        n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
        for n, p in model.named_parameters()
    }


def train_step(name: str) -> dict:
    data = torch.load(FIXTURES / f"tiny_{name}.pt", weights_only=True)
    stereo = name.endswith("stereo")
    se_weight = 1.0 if stereo else None
    draws = _draws(data, seed=20260 + len(name))

    # upstream as it trains (its random gradient regularisers on), for the printed gap only
    torch.manual_seed(0)
    import random

    random.seed(0)
    raw = _build(data).train()
    for module in raw.modules():
        if type(module).__name__ == "CompactRelPositionalEncoding":
            module.dropout.p = 0.0
    _, raw_grads = _grads(raw, draws, se_weight)

    model = _build(data).train()
    seen = _exact_gradients(model)
    loss, grads = _grads(model, draws, se_weight)
    assert seen["out_of_range"] == 0, f"limited parameters out of range: {seen}"
    assert seen["max_abs_score"] < 25.0, seen

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    total_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer = torch.optim.AdamW(model.parameters(), **OPTIMIZER)
    optimizer.step()
    update = {n: p.detach() - before[n] for n, p in model.named_parameters()}

    gaps = sorted(
        float((raw_grads[n] - g).norm() / g.norm()) for n, g in grads.items() if g.norm() > 0
    )
    overall = math.sqrt(sum(float((raw_grads[n] - g).norm()) ** 2 for n, g in grads.items()))
    print(
        f"{name}: loss {float(loss.detach()):.8f}, grad norm {float(total_norm):.6f}, "
        f"{len(grads)} parameters; with upstream's gradient regularisers active the gradient "
        f"changes by {overall / float(total_norm):.3e} of its norm (per parameter: median "
        f"{gaps[len(gaps) // 2]:.3e}, max {gaps[-1]:.3e})"
    )
    return {
        "source": f"tiny_{name}.pt",
        "class": data["class"],
        "inputs": {**draws, "condition_drop_ratio": DROP_RATIO, "se_weight": se_weight},
        "optimizer": {**OPTIMIZER, "betas": list(OPTIMIZER["betas"]), "grad_clip": GRAD_CLIP},
        "loss": loss.detach().double(),
        "reached": sorted(n for n, p in model.named_parameters() if p.grad is not None),
        "grad_norm": total_norm.detach().double(),
        "grad_stats": _stats(grads),
        "grads": {k: grads[k] for k in KEY_TENSORS if k in grads},
        "update_stats": _stats(update),
        "updates": {k: update[k] for k in KEY_TENSORS if k in update},
        "limits": seen,
    }


# ------------------------------------------------------------------------------------------
# the export


def _read_tokens(path: Path) -> dict[str, int]:
    """Upstream's tokenizers read ``token<TAB>id`` lines into token2id."""
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        token, _, idx = line.rpartition("\t")
        table[token] = int(idx)
    return table


def export_check(export_dir: Path, ours: Path, name: str) -> float:
    """Load an export as upstream's infer_zipvoice_dialog does; compare with our outputs."""
    from zipvoice.models.zipvoice_dialog import ZipVoiceDialog, ZipVoiceDialogStereo

    token2id = _read_tokens(export_dir / "tokens.txt")
    tokenizer_config = {
        "vocab_size": len(token2id),
        "pad_id": token2id["_"],
        "spk_a_id": token2id["[S1]"],
        "spk_b_id": token2id["[S2]"],
    }
    model_config = json.loads((export_dir / "model.json").read_text(encoding="utf-8"))
    cls = ZipVoiceDialog if name == "zipvoice_dialog" else ZipVoiceDialogStereo
    model = cls(**model_config["model"], **tokenizer_config)
    checkpoint = torch.load(export_dir / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"], strict=True)
    model.eval()
    reference = torch.load(ours, weights_only=True)
    inputs = reference["inputs"]
    with torch.no_grad():
        tc, mask = model.forward_text_train(inputs["tokens"], inputs["features_lens"])
        v = model.forward_fm_decoder(
            inputs["t"], inputs["xt"], tc, inputs["speech_condition"], mask
        )
    err_tc = float((tc - reference["text_condition"]).abs().max())
    err_v = float((v - reference["velocity"]).abs().max())
    print(
        f"{name} export loaded by upstream's code: text_condition max err {err_tc:.2e}, "
        f"velocity max err {err_v:.2e} (feature {model_config['feature']})"
    )
    return max(err_tc, err_v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("check", "train-step", "export-check"))
    parser.add_argument("--export-dir", type=Path)
    parser.add_argument("--ours", type=Path)
    parser.add_argument("--name", default="zipvoice_dialog", choices=TRAIN_STEP_MODELS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.what == "check":
        check()
    elif args.what == "train-step":
        for name in TRAIN_STEP_MODELS:
            out = train_step(name)
            torch.save(out, FIXTURES / f"train_step_{name}.pt")
    else:
        err = export_check(args.export_dir, args.ours, args.name)
        return 0 if math.isfinite(err) and err <= 1e-5 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
