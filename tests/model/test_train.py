"""model.training.train: memorising a real dialogue cut, exact resume, DDP (2 gloo processes), stereo
mode, init from an upstream ZipVoice directory, CLI errors; plus the schedule and the EMA."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from model.training.ema import ModelEma
from model.training.train import TrainOptions, lr_factor, main, step_seed
from tests.model.model_cuts import quick_run_args
from tests.model.torchrun import torchrun_two_cpu_processes
from tests.upstream import upstream_fixture_dir

logger = logging.getLogger(__name__)
FIXTURES = upstream_fixture_dir()


def _records(exp_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "log" / "train.jsonl").open()]


def _quick_args(cuts: Path, exp_dir: Path, config: Path, steps: int, *extra: str) -> list[str]:
    return [
        "--cuts",
        str(cuts),
        "--exp-dir",
        str(exp_dir),
        "--config",
        str(config),
        "--num-steps",
        str(steps),
        "--lr",
        "2e-3",
        "--lr-schedule",
        "warmup",
        "--warmup-steps",
        "2",
        "--log-every",
        "1",
        *quick_run_args(8),
        "--seed",
        "11",
        "--num-threads",
        "1",
        *extra,
    ]


# ---------------------------------------------------------------- the session checkpoint


def test_exp_dir_holds_what_inference_needs(trained_tiny_checkpoint):
    from model.audio.features import FeatureConfig
    from model.network.checkpoint import load_checkpoint

    exp_dir = trained_tiny_checkpoint.exp_dir
    loaded = load_checkpoint(exp_dir)
    assert loaded.tokens["[S1]"] == loaded.config.spk_a_id
    assert FeatureConfig.from_json((exp_dir / "features.json").read_text()).name == "offline"
    state = torch.load(exp_dir / "checkpoint-last.pt", weights_only=False)
    assert {"model", "ema", "optimizer", "scheduler", "scaler", "step", "sampler", "rng"} <= set(
        state
    )
    assert state["step"] == json.loads((exp_dir / "train.json").read_text())["num_steps"]
    # model.safetensors holds the EMA weights, which differ from the raw ones
    ema_weight = loaded.network.state_dict()["embed.weight"]
    assert not torch.equal(ema_weight, state["model"]["embed.weight"])


# ---------------------------------------------------------------- resume


def test_resume_continues_exactly(tmp_path, dialog_cuts_path, tiny_config_path):
    """Interrupt after step 3 (mid-epoch), resume: steps 4-5 equal the uninterrupted run's."""
    full, part = tmp_path / "full", tmp_path / "part"
    extra = ("--save-every", "3", "--ema-decay", "0.9")
    assert main(_quick_args(dialog_cuts_path, full, tiny_config_path, 5, *extra)) == 0
    assert main(_quick_args(dialog_cuts_path, part, tiny_config_path, 3, *extra)) == 0
    assert main(_quick_args(dialog_cuts_path, part, tiny_config_path, 5, *extra, "--resume")) == 0
    full_log, part_log = _records(full), _records(part)
    assert [r["step"] for r in part_log] == [1, 2, 3, 4, 5]
    losses_full = [r["loss"] for r in full_log]
    losses_part = [r["loss"] for r in part_log]
    logger.info("losses uninterrupted %s, resumed %s", losses_full, losses_part)
    assert losses_part == losses_full  # exact: same batches, draws and optimizer state
    assert [r["epoch"] for r in part_log] == [r["epoch"] for r in full_log]
    a = torch.load(full / "checkpoint-last.pt", weights_only=False)
    b = torch.load(part / "checkpoint-last.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]["shadow"]:
        assert torch.equal(a["ema"]["shadow"][key], b["ema"]["shadow"][key]), key
    assert a["sampler"] == b["sampler"]


# ---------------------------------------------------------------- DDP and stereo


def test_ddp_two_gloo_processes(tmp_path, dialog_cuts_path, tiny_config_path):
    exp_dir = tmp_path / "ddp"
    proc = torchrun_two_cpu_processes(
        "model.train",
        [
            *_quick_args(dialog_cuts_path, exp_dir, tiny_config_path, 3, "--save-every", "3"),
            *("--valid-cuts", str(dialog_cuts_path), "--max-valid-batches", "2"),
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _records(exp_dir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    log_text = (exp_dir / "log" / "train.log").read_text()
    assert "replicas in sync" in log_text and "rank 0/2" in log_text
    assert (exp_dir / "checkpoint-3.pt").is_file()
    # validation ran on rank 0 while rank 1 waited, and its checkpoint became best-valid
    valid = [json.loads(line) for line in (exp_dir / "log" / "valid.jsonl").open()]
    assert [v["step"] for v in valid] == [3] and valid[0]["valid_loss"] > 0
    assert (exp_dir / "best-valid.pt").is_file()


def test_stereo_mode_alternates_channels_and_adds_se_loss(
    tmp_path, stereo_cuts_path, tiny_config_path
):
    exp_dir = tmp_path / "stereo"
    args = _quick_args(
        stereo_cuts_path, exp_dir, tiny_config_path, 4, "--mode", "stereo", "--max-duration", "10"
    )
    assert main(args) == 0
    records = _records(exp_dir)
    assert [r["stereo"] for r in records] == [1.0, 0.0, 1.0, 0.0]
    for r in records:
        assert torch.isfinite(torch.tensor(r["loss"]))
        assert r["loss"] == pytest.approx(r["fm_loss"] + r["se_loss"], rel=1e-5)
        if not r["stereo"]:
            assert r["se_loss"] == 0.0
    assert any(r["se_loss"] > 0 for r in records if r["stereo"])
    network = json.loads((exp_dir / "network.json").read_text())
    assert network["variant"] == "dialog_stereo"


# ---------------------------------------------------------------- init from upstream


@pytest.fixture()
def upstream_zipvoice_dir(tmp_path) -> Path:
    """An upstream-layout single-speaker ZipVoice dir (model.pt, model.json, tokens.txt)."""
    blob = torch.load(FIXTURES / "tiny_zipvoice.pt", weights_only=True)
    out = tmp_path / "zipvoice"
    out.mkdir()
    torch.save({"model": blob["state_dict"]}, out / "model.pt")
    (out / "model.json").write_text(
        json.dumps({"model": blob["config"], "feature": {"sampling_rate": 24000, "type": "vocos"}})
    )
    shutil.copyfile(FIXTURES / "tokens_emilia_generated.txt", out / "tokens.txt")
    return out


def test_init_from_upstream_zipvoice_extends_vocabulary(
    tmp_path, dialog_cuts_path, upstream_zipvoice_dir
):
    exp_dir = tmp_path / "init"
    args = [
        a
        for a in _quick_args(dialog_cuts_path, exp_dir, Path("unused"), 1)
        if a not in ("--config", "unused")
    ]
    assert (
        main(
            [*args, "--init-from", str(upstream_zipvoice_dir), "--lr", "1e-12", "--ema-decay", "0"]
        )
        == 0
    )
    network = json.loads((exp_dir / "network.json").read_text())
    assert (network["variant"], network["vocab_size"]) == ("dialog", 360 + 28)
    assert (network["spk_a_id"], network["spk_b_id"]) == (360, 361)
    tokens = (exp_dir / "tokens.txt").read_text().splitlines()
    assert "[S1]\t360" in tokens and "[S2]\t361" in tokens
    assert json.loads((exp_dir / "features.json").read_text())["name"] == "upstream"
    upstream = torch.load(FIXTURES / "tiny_zipvoice.pt", weights_only=True)["state_dict"]
    trained = torch.load(exp_dir / "checkpoint-last.pt", weights_only=False)["model"]
    # the single-speaker weights are kept (lr 1e-12: one step cannot move them)
    assert torch.allclose(trained["embed.weight"][:360], upstream["embed.weight"], atol=1e-6)
    key = "text_encoder.out_proj.weight"
    assert torch.allclose(trained[key], upstream[key], atol=1e-6)
    assert trained["spk_embed.weight"].shape == (2, 100)


def test_init_stereo_from_a_dialog_checkpoint(tmp_path, trained_tiny_checkpoint, stereo_cuts_path):
    """Stereo fine-tuning starts from a dialogue exp dir: projections duplicated, rest kept."""
    exp_dir = tmp_path / "stereo-init"
    args = [
        a
        for a in _quick_args(stereo_cuts_path, exp_dir, Path("x"), 2)
        if a not in ("--config", "x")
    ]
    source = trained_tiny_checkpoint.exp_dir
    assert (
        main(
            [
                *args,
                "--mode",
                "stereo",
                "--max-duration",
                "10",
                "--init-from",
                str(source),
                "--lr",
                "1e-12",
                "--ema-decay",
                "0",
            ]
        )
        == 0
    )
    assert json.loads((exp_dir / "network.json").read_text())["variant"] == "dialog_stereo"
    assert (exp_dir / "tokens.txt").read_text() == (source / "tokens.txt").read_text()
    mono = torch.load(source / "checkpoint-last.pt", weights_only=False)["ema"]["shadow"]
    stereo = torch.load(exp_dir / "checkpoint-last.pt", weights_only=False)["model"]
    w_in = mono["fm_decoder.in_proj.weight"]
    assert torch.allclose(stereo["fm_decoder.in_proj.1.weight"], w_in, atol=1e-6)
    assert torch.allclose(
        stereo["text_encoder.out_proj.weight"], mono["text_encoder.out_proj.weight"], atol=1e-6
    )
    assert stereo["fm_decoder.out_proj.0.weight"].shape[0] == 2 * w_in.shape[1] // 3


# ---------------------------------------------------------------- CLI errors


def test_cli_refuses_bad_inputs(tmp_path, dialog_cuts_path, tiny_config_path, capsys):
    base = _quick_args(dialog_cuts_path, tmp_path / "e", tiny_config_path, 1)
    missing = [a if a != str(dialog_cuts_path) else str(tmp_path / "none.jsonl.gz") for a in base]
    assert main(missing) == 2
    assert main([*base, "--resume"]) == 2  # nothing to resume
    no_config = [a for a in base if a not in ("--config", str(tiny_config_path))]
    assert main(no_config) == 2
    err = capsys.readouterr().err
    assert "none.jsonl.gz" in err and "checkpoint-last.pt" in err and "--config" in err
    assert "Traceback" not in err
    assert main([*base, "--config", "huge"]) == 2
    assert not (tmp_path / "e" / "checkpoint-last.pt").exists()


# ---------------------------------------------------------------- units


def test_lr_schedules():
    opts = {"cuts": ("x",), "exp_dir": "e", "config": "tiny", "num_steps": 100, "warmup_steps": 10}
    fixed = TrainOptions(**opts, lr_schedule="fixed")
    warm = TrainOptions(**opts, lr_schedule="warmup")
    cos = TrainOptions(**opts, lr_schedule="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, fixed) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert lr_factor(0, warm) == pytest.approx(0.1) and lr_factor(9, warm) == 1.0
    assert lr_factor(80, warm) == 1.0
    assert lr_factor(10, cos) == pytest.approx(1.0)
    assert lr_factor(55, cos) == pytest.approx(0.55)
    assert lr_factor(100, cos) == pytest.approx(0.1)
    assert len({step_seed(1, s, r) for s in range(50) for r in range(4)}) == 200


def test_ema_warmup_average_and_round_trip():
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = ModelEma(net, decay=0.9)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(1000) == 0.9
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net, step=0)  # d = 0.1: 0.1 * 0 + 0.9 * 1
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 2), 0.9))
    other = ModelEma(net, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    avg = torch.nn.Linear(2, 2, bias=False)
    avg.load_state_dict(ema.state_dict_for(avg))
    assert torch.allclose(avg.weight, torch.full((2, 2), 0.9))
