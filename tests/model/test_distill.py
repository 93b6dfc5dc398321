"""Few-step distillation of the dialogue network (``python -m model.distill``).

The quality checks distil the session's trained tiny model (memorised real dialogue cut of
the bundled sample) and sample the cut's target turns after its real prompt: teacher with 16
and 4 Euler steps, student with 4, all from the same noise; distances are mean L1 in
log-mel units over the target frames.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from tests.model.model_cuts import PROMPT_END_S, quick_run_args
from tests.model.torchrun import torchrun_two_cpu_processes

logger = logging.getLogger(__name__)

TEST_DATA_ARGS = ["--precomputed-feats", *quick_run_args(30)]


def _run_paths(teacher, cuts, exp_dir) -> list[str]:
    """``--teacher``, ``--cuts`` and ``--exp-dir`` of a distillation command."""
    return ["--teacher", str(teacher), "--cuts", str(cuts), "--exp-dir", str(exp_dir)]


def _random_teacher(variant: str = "dialog", seed: int = 0):
    from model.network.config import preset
    from model.network.zipvoice import DialogTTSNetwork

    torch.manual_seed(seed)
    config = preset(
        "tiny",
        variant=variant,
        vocab_size=40,
        pad_id=0,
        spk_a_id=1,
        spk_b_id=2,
        fm_decoder_dim=32,
        fm_decoder_feedforward_dim=64,
        text_encoder_dim=32,
        text_encoder_feedforward_dim=64,
        fm_decoder_num_heads=2,
        text_encoder_num_heads=2,
        time_embed_dim=32,
        text_embed_dim=32,
        text_encoder_num_layers=1,
    )
    return DialogTTSNetwork(config).eval()


def _cut_inputs(checkpoint):
    """(prompt+target ids, model-space features (T, F), prompt frames) of the memorised cut."""
    from lhotse import CutSet

    from model.audio.features import FeatureConfig
    from model.tokenizer import Tokenizer, TokenTable

    config = FeatureConfig.from_json((checkpoint.exp_dir / "features.json").read_text())
    cut = next(iter(CutSet.from_file(checkpoint.cuts_path)))
    features = torch.as_tensor(np.asarray(cut.load_features()), dtype=torch.float32)
    table = TokenTable.load(checkpoint.exp_dir / "tokens.txt")
    ids = Tokenizer(table, mode="dialog").texts_to_token_ids([checkpoint.text])[0]
    return ids, features * config.feat_scale, round(PROMPT_END_S * config.frame_rate_hz)


# ------------------------------------------------------------------ the recipe's pieces


def test_draws_follow_the_recipe():
    from model.network.flow import FlowOptions
    from model.training.distill_objective import draw_distill_inputs

    features = torch.zeros(512, 50, 4)
    lens = torch.randint(10, 51, (512,))
    for guidance_range in ((0.0, 2.0), (1.0, 3.0)):
        draw = draw_distill_inputs(
            features,
            lens,
            guidance_range=guidance_range,
            max_hop=0.3,
            flow_options=FlowOptions.for_mode("dialog"),
            generator=torch.Generator().manual_seed(0),
        )
        hops = torch.cat([draw.hop1, draw.hop2]).flatten()
        assert float(hops.min()) >= 0.0 and float(hops.max()) <= 0.3
        assert float((draw.t + draw.hop1 + draw.hop2).max()) <= 1.0 + 1e-6
        w = draw.guidance_scale.flatten()
        assert guidance_range[0] <= float(w.min()) and float(w.max()) <= guidance_range[1]
        assert float(w.max() - w.min()) > 0.9 * (guidance_range[1] - guidance_range[0])
        # suffix masks of 50-100 % of each utterance, nothing on padding
        masked = draw.target_mask.sum(1).float() / lens
        assert float(masked.min()) >= 0.45 and float(masked.max()) <= 1.0
        assert not bool((draw.target_mask & (torch.arange(50) >= lens[:, None])).any())


@pytest.mark.parametrize("distilled_teacher", [False, True])
def test_two_teacher_hops_equal_the_sampler(distilled_teacher):
    """The target velocity is the guided sampler's own two Euler steps (both CFG regimes)."""
    from model.network.flow import sample
    from model.network.student import student_from_teacher
    from model.training.distill_objective import DistillDraw, teacher_target_velocity

    teacher = _random_teacher()
    if distilled_teacher:
        torch.manual_seed(1)
        teacher = student_from_teacher(teacher).eval()
    gen = torch.Generator().manual_seed(2)
    batch, frames, dim = 2, 37, teacher.config.feat_dim
    features = torch.randn(batch, frames, dim, generator=gen) * 0.5
    lens = torch.tensor([37, 29])
    tokens = [[1, 5, 6, 7, 2, 8, 9], [1, 10, 11, 2, 12]]
    mask = torch.arange(frames)[None] >= torch.tensor([[12], [8]])
    mask &= torch.arange(frames)[None] < lens[:, None]
    noise = torch.randn(batch, frames, dim, generator=gen)
    w = 1.3
    # t = 0 with hops 0.75 + 0.25: the sampler's grid for 2 steps with t_shift = 3,
    # the second hop starting after t = 0.5 (text + speech dropped, w not doubled)
    draw = DistillDraw(
        t=torch.zeros(batch, 1, 1),
        hop1=torch.full((batch, 1, 1), 0.75),
        hop2=torch.full((batch, 1, 1), 0.25),
        guidance_scale=torch.full((batch, 1, 1), w),
        noise=noise,
        target_mask=mask,
    )
    velocity = teacher_target_velocity(
        teacher,
        tokens=tokens,
        features=features,
        features_lens=lens,
        draw=draw,
        guidance_input=distilled_teacher,
    )
    with torch.no_grad():
        text, padding = teacher.forward_text_train(tokens, lens)
    x1 = sample(
        teacher,
        noise=noise,
        text_condition=text,
        speech_condition=features.masked_fill(mask.unsqueeze(-1), 0.0),
        padding_mask=padding,
        num_steps=2,
        t_shift=3.0,
        guidance_scale=w,
        distill=distilled_teacher,
    )
    valid = ~padding
    assert torch.allclose((noise + velocity)[valid], x1[valid], atol=1e-5)


def test_student_starts_at_the_teacher():
    from model.network.student import GUIDANCE_KEY, GuidedDialogNetwork, student_from_teacher

    teacher = _random_teacher()
    torch.manual_seed(3)
    student = student_from_teacher(teacher).eval()
    assert isinstance(student, GuidedDialogNetwork)
    assert set(student.state_dict()) == set(teacher.state_dict()) | {GUIDANCE_KEY}
    gen = torch.Generator().manual_seed(4)
    xt = torch.randn(2, 21, teacher.config.feat_dim, generator=gen)
    text = torch.randn(2, 21, teacher.config.feat_dim, generator=gen)
    with torch.no_grad():
        ref = teacher.forward_fm_decoder(0.3, xt, text, xt * 0.1)
        same = student.forward_fm_decoder(0.3, xt, text, xt * 0.1)
        guided = student.forward_fm_decoder(0.3, xt, text, xt * 0.1, guidance_scale=2.0)
    assert torch.equal(ref, same)
    change = float((guided - ref).abs().mean() / ref.abs().mean())
    assert 0.0 < change < 0.5  # the new embedding starts small but is there
    zero = student_from_teacher(teacher, guidance_init_scale=0.0).eval()
    with torch.no_grad():
        assert torch.equal(
            zero.forward_fm_decoder(0.3, xt, text, xt * 0.1, guidance_scale=2.0), ref
        )
    # stereo teachers get the same embedding; single-speaker ones become upstream's distill
    stereo = student_from_teacher(_random_teacher("dialog_stereo"))
    assert stereo.config.variant == "dialog_stereo" and GUIDANCE_KEY in stereo.state_dict()
    single = student_from_teacher(_random_teacher("zipvoice"))
    assert single.config.variant == "distill"


def test_student_checkpoint_round_trip(tmp_path):
    from model.inference.defaults import InferenceDefaults, read_inference_defaults
    from model.network.checkpoint import CheckpointKeyError, load_checkpoint
    from model.network.student import load_model, save_model, student_from_teacher

    student = student_from_teacher(_random_teacher()).eval()
    tokens = {f"t{i}": i for i in range(40)}
    defaults = InferenceDefaults(
        num_step=4, guidance_scale=0.5, guidance_input=True, distill_stage=1
    )
    save_model(student, tmp_path, tokens, defaults)
    assert read_inference_defaults(tmp_path) == defaults
    assert json.loads((tmp_path / "network.json").read_text())["guidance_input"] is True
    loaded = load_model(tmp_path)
    assert loaded.guidance_input and loaded.defaults.num_step == 4
    assert loaded.config.variant == "dialog" and loaded.config.guidance_input
    for key, value in student.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value)
    # network.json's flag is enough for the plain loader: right variant, strict keys
    plain = load_checkpoint(tmp_path)
    assert plain.config.variant == "dialog" and plain.network.takes_guidance_input
    for key, value in student.state_dict().items():
        assert torch.equal(plain.network.state_dict()[key], value)
    # a student saved before the flag existed: the plain loader refuses the extra embedding
    # instead of dropping it; load_model knows the student from its inference.json
    config = json.loads((tmp_path / "network.json").read_text())
    del config["guidance_input"]
    (tmp_path / "network.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointKeyError, match="guidance_scale_embed"):
        load_checkpoint(tmp_path)
    assert load_model(tmp_path).network.takes_guidance_input
    teacher_dir = tmp_path / "teacher"
    save_model(_random_teacher(), teacher_dir, tokens, InferenceDefaults.for_variant("dialog"))
    assert not load_model(teacher_dir).guidance_input


@pytest.mark.parametrize("variant", ["dialog", "dialog_stereo"])
def test_dialog_student_weights_are_not_upstream_distill(variant, tmp_path):
    """A dialogue student's state dict holds upstream's distill embedding *and* the turn
    embedding: it is a distilled dialog(-stereo) network, and an upstream-layout directory
    of it (model.json + model.pt, no network.json) loads strictly as one."""
    from model.network.checkpoint import (
        detect_variant,
        has_guidance_embed,
        load_upstream_model_dir,
        write_token_table,
    )
    from model.network.student import student_from_teacher

    student = student_from_teacher(_random_teacher(variant)).eval()
    state = student.state_dict()
    assert detect_variant(state) == variant and has_guidance_embed(state)
    teacher_state = _random_teacher(variant).state_dict()
    assert detect_variant(teacher_state) == variant and not has_guidance_embed(teacher_state)
    torch.save({"model": state}, tmp_path / "model.pt")
    (tmp_path / "model.json").write_text(
        json.dumps({"model": student.config.upstream_model_dict()})
    )
    write_token_table(
        {"_": 0, "[S1]": 1, "[S2]": 2, **{f"t{i}": i for i in range(3, 40)}},
        tmp_path / "tokens.txt",
    )
    loaded = load_upstream_model_dir(tmp_path)
    assert loaded.config.variant == variant and loaded.network.takes_guidance_input
    for key, value in state.items():
        assert torch.equal(loaded.network.state_dict()[key], value)


def test_cli_rejects_a_wrong_teacher(trained_tiny_checkpoint, tmp_path, capsys):
    from model.training.distill import main

    exp = str(trained_tiny_checkpoint.exp_dir)
    cuts = str(trained_tiny_checkpoint.cuts_path)
    assert (
        main(
            [
                *_run_paths(exp, cuts, str(tmp_path / "s2")),
                "--stage",
                "2",
                "--num-steps",
                "1",
                *TEST_DATA_ARGS,
            ]
        )
        == 2
    )
    assert "stage 2 starts from a stage-1 student" in capsys.readouterr().err
    assert (
        main(
            [
                *_run_paths(exp, cuts, exp),
                "--num-steps",
                "1",
                *TEST_DATA_ARGS,
            ]
        )
        == 2
    )


# ------------------------------------------------------------------ distillation runs


@pytest.fixture(scope="module")
def step_distilled(trained_tiny_checkpoint, tmp_path_factory):
    """Stage 1 on the memorised cut without guidance (w = 0): few-step distillation only."""
    from model.training.distill import main

    exp_dir = tmp_path_factory.mktemp("distill") / "stage1"
    assert (
        main(
            [
                *_run_paths(
                    str(trained_tiny_checkpoint.exp_dir),
                    str(trained_tiny_checkpoint.cuts_path),
                    str(exp_dir),
                ),
                "--stage",
                "1",
                "--num-steps",
                "60",
                "--lr",
                "1e-4",
                "--guidance-min",
                "0",
                "--guidance-max",
                "0",
                "--save-every",
                "60",
                "--log-every",
                "10",
                "--seed",
                "1",
                *TEST_DATA_ARGS,
            ]
        )
        == 0
    )
    return exp_dir


def test_four_step_student_beats_four_step_teacher(step_distilled, trained_tiny_checkpoint, figure):
    from model.network.student import load_model
    from model.training.distill import compare_few_step

    teacher = load_model(trained_tiny_checkpoint.exp_dir)
    student = load_model(step_distilled)
    assert student.guidance_input and student.defaults.num_step == 4
    assert student.defaults.guidance_scale == 0.0  # the teacher's 1.5 clipped to the range
    ids, features, prompt_frames = _cut_inputs(trained_tiny_checkpoint)
    result = compare_few_step(
        teacher.network,
        student.network,
        tokens=ids,
        prompt_features=features[:prompt_frames],
        total_frames=features.size(0),
        feat_scale=0.1,
        few_steps=(4,),
        reference_steps=16,
        guidance_scale=0.0,
        seeds=(0, 1),
    )
    logger.info(
        "L1 to teacher@16: teacher@4 %.4f, student@4 %.4f", result.teacher[4], result.student[4]
    )
    figure(
        "student_to_teacher_l1_at_4_steps",
        result.student[4] / result.teacher[4],
        at_most=0.95,
        detail=result,
    )
    records = [json.loads(line) for line in (step_distilled / "log" / "distill.jsonl").open()]
    assert len(records) == 6 and all(np.isfinite(r["loss"]) for r in records)
    assert np.mean([r["loss"] for r in records[-2:]]) < records[0]["loss"]


def test_stage_two_trains_against_an_ema_teacher(step_distilled, trained_tiny_checkpoint, tmp_path):
    from model.network.student import load_model
    from model.training.distill import main

    exp_dir = tmp_path / "stage2"
    assert (
        main(
            [
                *_run_paths(
                    str(step_distilled), str(trained_tiny_checkpoint.cuts_path), str(exp_dir)
                ),
                "--stage",
                "2",
                "--num-steps",
                "3",
                "--lr",
                "1e-4",
                "--ema-decay",
                "0.5",
                "--save-every",
                "3",
                "--log-every",
                "1",
                *TEST_DATA_ARGS,
            ]
        )
        == 0
    )
    state = torch.load(exp_dir / "distill-last.pt", weights_only=False)
    start = load_model(step_distilled).network.state_dict()
    student, ema = state["student"], state["teacher"]
    key = "fm_decoder.out_proj.weight"
    # the EMA teacher moved from the stage-1 weights towards the student, not onto it
    moved = float((ema[key] - start[key]).abs().sum())
    assert 0.0 < moved < float((student[key] - start[key]).abs().sum())
    saved = load_model(exp_dir)
    assert saved.defaults.distill_stage == 2
    assert torch.equal(saved.network.state_dict()[key], student[key])


def test_guided_distillation_absorbs_cfg(trained_tiny_checkpoint, tmp_path, figure):
    """A short run at w = 1.5 moves the one-pass student toward the teacher's guided
    (two-pass, time-dependent CFG) velocity on unseen draws."""
    from model.network.student import load_model
    from model.training.distill import main
    from model.training.distill_objective import guided_velocity

    exp_dir = tmp_path / "guided"
    assert (
        main(
            [
                *_run_paths(
                    str(trained_tiny_checkpoint.exp_dir),
                    str(trained_tiny_checkpoint.cuts_path),
                    str(exp_dir),
                ),
                "--num-steps",
                "30",
                "--lr",
                "2e-4",
                "--guidance-min",
                "1.5",
                "--guidance-max",
                "1.5",
                "--save-every",
                "30",
                *TEST_DATA_ARGS,
            ]
        )
        == 0
    )
    teacher = load_model(trained_tiny_checkpoint.exp_dir).network
    student = load_model(exp_dir).network
    ids, features, prompt_frames = _cut_inputs(trained_tiny_checkpoint)
    x1 = features.unsqueeze(0)
    lens = torch.tensor([features.size(0)])
    speech = x1.clone()
    speech[:, prompt_frames:] = 0.0
    w = torch.full((1, 1, 1), 1.5)
    before, after = 0.0, 0.0
    with torch.no_grad():
        text_t, padding = teacher.forward_text_train([ids], lens)
        text_s, _ = student.forward_text_train([ids], lens)
        for seed, t_value in enumerate((0.1, 0.3, 0.6, 0.8)):
            t = torch.full((1, 1, 1), t_value)
            noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(100 + seed))
            xt = t * x1 + (1 - t) * noise
            target = guided_velocity(
                teacher,
                t=t,
                xt=xt,
                text_condition=text_t,
                speech_condition=speech,
                padding_mask=padding,
                guidance_scale=w,
                guidance_input=False,
            )
            conditional = teacher.forward_fm_decoder(t, xt, text_t, speech, padding)
            one_pass = student.forward_fm_decoder(t, xt, text_s, speech, padding, guidance_scale=w)
            before += float(((conditional - target)[:, prompt_frames:] ** 2).mean())
            after += float(((one_pass - target)[:, prompt_frames:] ** 2).mean())
    logger.info("MSE to the guided velocity: conditional %.5f, student %.5f", before, after)
    figure("mse_ratio_student_to_conditional", after / before, at_most=0.7)


def test_stereo_distillation_runs(trained_tiny_checkpoint, stereo_cuts_path, tmp_path):
    """A stereo teacher (initialised from the mono one) distils on a 2-channel real cut,
    alternating stereo and mono-mix batches; the student samples both channels."""
    from model.network.checkpoint import init_stereo_from_dialog, save_checkpoint
    from model.network.config import NetworkConfig
    from model.network.flow import sample
    from model.network.student import GuidedDialogNetwork, load_model
    from model.network.zipvoice import DialogTTSNetwork
    from model.training.distill import main

    mono = load_model(trained_tiny_checkpoint.exp_dir)
    config = NetworkConfig.from_dict({**mono.config.to_dict(), "variant": "dialog_stereo"})
    stereo = DialogTTSNetwork(config)
    stereo.load_state_dict(init_stereo_from_dialog(mono.network.state_dict()))
    teacher_dir = save_checkpoint(stereo, tmp_path / "teacher", mono.tokens)
    (teacher_dir / "features.json").write_text(
        (trained_tiny_checkpoint.exp_dir / "features.json").read_text()
    )
    exp_dir = tmp_path / "student"
    args = [a for a in TEST_DATA_ARGS if a != "--precomputed-feats"]
    assert (
        main(
            [
                *_run_paths(str(teacher_dir), str(stereo_cuts_path), str(exp_dir)),
                "--num-steps",
                "2",
                "--lr",
                "1e-4",
                "--save-every",
                "2",
                "--log-every",
                "1",
                *args,
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (exp_dir / "log" / "distill.jsonl").open()]
    assert len(records) == 2 and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    student = load_model(exp_dir)
    assert isinstance(student.network, GuidedDialogNetwork)
    assert student.config.variant == "dialog_stereo"
    width = 2 * config.feat_dim
    with torch.no_grad():
        text, padding = student.network.forward_text_train([[1, 3, 4, 2, 5]], torch.tensor([40]))
    out = sample(
        student.network,
        noise=torch.randn(1, 40, width),
        text_condition=text,
        speech_condition=torch.zeros(1, 40, width),
        padding_mask=padding,
        num_steps=4,
        guidance_scale=1.5,
        distill=True,
    )
    assert out.shape == (1, 40, width) and bool(torch.isfinite(out).all())


# ------------------------------------------------------------------ the shared loop: resume, DDP


def _loop_args(teacher, cuts, exp_dir, steps: int, *extra: str) -> list[str]:
    """A stage-1 run on the two real dialogue cuts (two batches an epoch)."""
    return [
        *_run_paths(teacher, cuts, exp_dir),
        *("--num-steps", str(steps), "--lr", "1e-4", "--guidance-max", "1.5"),
        *("--save-every", "2", "--log-every", "1", "--seed", "3"),
        *quick_run_args(8),
        *extra,
    ]


def _distill_records(exp_dir) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "log" / "distill.jsonl").open()]


def test_distillation_resumes_exactly(trained_tiny_checkpoint, dialog_cuts_path, tmp_path):
    """Interrupted after step 2 and resumed, steps 3-4 equal the uninterrupted run's: the
    training loop's resume state (data position, RNGs, optimizer) carries over to distillation."""
    from model.training.distill import main

    teacher = trained_tiny_checkpoint.exp_dir
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_loop_args(teacher, dialog_cuts_path, full, 4)) == 0
    assert main(_loop_args(teacher, dialog_cuts_path, part, 2)) == 0
    assert main(_loop_args(teacher, dialog_cuts_path, part, 4, "--resume")) == 0
    full_log, part_log = _distill_records(full), _distill_records(part)
    assert [r["step"] for r in part_log] == [1, 2, 3, 4]
    assert [r["loss"] for r in part_log] == [r["loss"] for r in full_log]
    assert [r["epoch"] for r in part_log] == [r["epoch"] for r in full_log]
    a = torch.load(full / "distill-last.pt", weights_only=False)
    b = torch.load(part / "distill-last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4 and a["sampler"] == b["sampler"]
    for key in a["student"]:
        assert torch.equal(a["student"][key], b["student"][key]), key


def test_distillation_ddp_two_gloo_processes(trained_tiny_checkpoint, dialog_cuts_path, tmp_path):
    """torchrun with two CPU processes: each distils its shard, the replicas stay identical
    and rank 0 alone writes the student."""
    exp_dir = tmp_path / "ddp"
    proc = torchrun_two_cpu_processes(
        "model.distill", _loop_args(trained_tiny_checkpoint.exp_dir, dialog_cuts_path, exp_dir, 2)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _distill_records(exp_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    log_text = (exp_dir / "log" / "distill.log").read_text()
    assert "replicas in sync" in log_text and "rank 0/2" in log_text
    from model.network.student import load_model

    state = torch.load(exp_dir / "distill-last.pt", weights_only=False)
    saved = load_model(exp_dir).network.state_dict()
    key = "fm_decoder.out_proj.weight"
    assert state["step"] == 2 and torch.equal(saved[key], state["student"][key])
