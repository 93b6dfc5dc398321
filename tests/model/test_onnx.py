"""ONNX export of the dialogue network and the onnxruntime inference path.

The exported graphs run the session's trained tiny model (and a distilled student made from
it) on the memorised real dialogue cut; every comparison is against the torch network on the
same inputs. Tolerances: fp32 velocities and text conditions max |diff| < 1e-3 (measured
~1e-6), a whole fp32 sample (4 student steps, 3 teacher CFG steps) max |diff| < 1e-3 (model
space); int8 graphs only loosely (relative mean L1 of the sampled mel < 0.1). Through the
CLI (``python -m model.infer --checkpoint <onnx dir>``), the written wav's log-mel is within
0.01 mean L1 of the torch student's (measured 3.0e-3).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TEST_THREADS
from tests.model.model_cuts import PROMPT_END_S

# torch.onnx.export and onnxruntime.quantization need the ``onnx`` package (not yet in setup.py)
pytest.importorskip("onnx")

FP32_TOL = 1e-3
INT8_REL_TOL = 0.1


def _cut_inputs(checkpoint):
    """(prompt+target token ids, model-space features (T, F), prompt frames) of the cut."""
    from lhotse import CutSet

    from model.audio.features import FeatureConfig
    from model.tokenizer import Tokenizer, TokenTable

    config = FeatureConfig.from_json((checkpoint.exp_dir / "features.json").read_text())
    cut = next(iter(CutSet.from_file(checkpoint.cuts_path)))
    features = torch.as_tensor(np.asarray(cut.load_features()), dtype=torch.float32)
    features = features * config.feat_scale
    table = TokenTable.load(checkpoint.exp_dir / "tokens.txt")
    ids = Tokenizer(table, mode="dialog").texts_to_token_ids([checkpoint.text])[0]
    prompt_frames = round(PROMPT_END_S * config.frame_rate_hz)
    return ids, features, prompt_frames


@pytest.fixture(scope="module")
def exported(trained_tiny_checkpoint, tmp_path_factory):
    """The trained teacher, a student made from it, and both exported (student with int8)."""
    from model.export import onnx_export
    from model.inference.defaults import InferenceDefaults
    from model.network.student import load_model, save_model, student_from_teacher

    out = tmp_path_factory.mktemp("onnx")
    teacher = load_model(trained_tiny_checkpoint.exp_dir)
    torch.manual_seed(3)
    student = student_from_teacher(teacher.network).eval()
    defaults = InferenceDefaults(
        num_step=4, guidance_scale=1.5, guidance_input=True, distill_stage=1
    )
    student_dir = save_model(
        student,
        out / "student",
        teacher.tokens,
        defaults,
        features_json=trained_tiny_checkpoint.exp_dir / "features.json",
    )
    assert (
        onnx_export.main(
            ["--model-dir", str(student_dir), "--onnx-dir", str(out / "student-onnx"), "--int8"]
        )
        == 0
    )
    teacher_export = onnx_export.export_onnx(
        trained_tiny_checkpoint.exp_dir, out / "teacher-onnx", check=False
    )
    return {
        "teacher": teacher.network,
        "student": student,
        "student_dir": student_dir,
        "student_onnx": out / "student-onnx",
        "teacher_onnx": teacher_export.directory,
    }


def test_export_writes_a_self_contained_directory(exported, figure):
    from model.export.onnx_runtime import load_onnx_model

    onnx_dir = exported["student_onnx"]
    meta = json.loads((onnx_dir / "onnx.json").read_text())
    assert meta["guidance_input"] is True and meta["variant"] == "dialog"
    assert meta["exporter"].startswith("torchscript")
    assert set(meta["files"]) == {
        "text_encoder",
        "fm_decoder",
        "text_encoder_int8",
        "fm_decoder_int8",
    }
    for name in meta["files"].values():
        assert (onnx_dir / name).stat().st_size > 0
    # int8 graphs hold the linear weights in one byte instead of four
    fp32 = (onnx_dir / meta["files"]["fm_decoder"]).stat().st_size
    assert (onnx_dir / meta["files"]["fm_decoder_int8"]).stat().st_size < 0.6 * fp32
    # the export's own check ran on other batch/lengths than the traced ones
    figure("export_check_max_abs_diff", max(meta["check_max_abs_diff"].values()), at_most=FP32_TOL)
    loaded = load_onnx_model(onnx_dir)
    assert loaded.guidance_input and loaded.defaults.num_step == 4
    assert loaded.defaults.guidance_scale == 1.5
    assert loaded.tokens == load_onnx_model(exported["teacher_onnx"]).tokens
    assert not load_onnx_model(exported["teacher_onnx"]).guidance_input
    # what the inference code asks of a loaded network
    from model.export.onnx_runtime import is_onnx_dir, load_onnx_network
    from model.network.student import takes_guidance_input

    assert is_onnx_dir(onnx_dir) and not is_onnx_dir(exported["student_dir"])
    network = load_onnx_network(onnx_dir, "cpu")
    assert takes_guidance_input(network) and network.config.num_channels == 1
    assert network.num_parameters() == exported["student"].num_parameters()
    with pytest.raises(ValueError, match="CPU"):
        load_onnx_network(onnx_dir, "cuda")


def test_text_condition_and_velocity_match_torch(exported, trained_tiny_checkpoint, figure):
    from model.export.onnx_runtime import OnnxNetwork

    ids, features, prompt_frames = _cut_inputs(trained_tiny_checkpoint)
    student = exported["student"]
    onnx = OnnxNetwork(exported["student_onnx"], num_threads=TEST_THREADS)
    # a batch of two different lengths: the whole cut and a shorter text/frame count
    tokens = [ids, ids[: len(ids) // 2]]
    lens = torch.tensor([features.size(0), features.size(0) // 2 + 3])
    with torch.no_grad():
        ref_text, ref_mask = student.forward_text_train(tokens, lens)
    text, mask = onnx.forward_text_train(tokens, lens)
    assert torch.equal(mask, ref_mask)
    figure("text_condition_max_abs_diff", (text - ref_text).abs().max(), at_most=FP32_TOL)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.stack([features, features])
    noise = torch.randn(x1.shape, generator=gen)
    speech = x1.clone()
    speech[:, prompt_frames:] = 0.0
    for t_value, w in ((0.1, 0.5), (0.7, 2.5)):
        t = torch.full((2, 1, 1), t_value)
        xt = t * x1 + (1 - t) * noise
        with torch.no_grad():
            ref_v = student.forward_fm_decoder(
                t, xt, ref_text, speech, ref_mask, guidance_scale=torch.full((2,), w)
            )
        v = onnx.forward_fm_decoder(t, xt, text, speech, mask, guidance_scale=w)
        valid = ~ref_mask
        figure(
            "velocity_max_abs_diff",
            (v - ref_v)[valid].abs().max(),
            at_most=FP32_TOL,
            detail=(t_value, w),
        )
    with pytest.raises(ValueError, match="needs guidance_scale"):
        onnx.forward_fm_decoder(t, xt, text, speech, mask)
    with pytest.raises(ValueError, match="width"):
        onnx.forward_fm_decoder(t, torch.cat([xt, xt], -1), text, speech, mask, 1.0)


def _sample(network, ids, features, prompt_frames, *, steps, guidance, distill):
    from model.network.flow import sample_with_prompt

    out = sample_with_prompt(
        network,
        tokens=[ids],
        prompt_features=features[:prompt_frames].unsqueeze(0),
        prompt_features_lens=torch.tensor([prompt_frames]),
        features_lens=torch.tensor([features.size(0)]),
        seed=7,
        num_steps=steps,
        guidance_scale=guidance,
        distill=distill,
    )
    return out[0, prompt_frames:]


def test_onnx_sampling_matches_torch_student_and_teacher(exported, trained_tiny_checkpoint, figure):
    from model.export.onnx_runtime import OnnxNetwork

    ids, features, prompt_frames = _cut_inputs(trained_tiny_checkpoint)
    # student: 4 one-pass steps with w as an input; teacher: classifier-free guidance runs the
    # exported graph on a doubled batch
    for name, steps, distill in (("student", 4, True), ("teacher", 3, False)):
        ref, got = (
            _sample(
                network, ids, features, prompt_frames, steps=steps, guidance=1.5, distill=distill
            )
            for network in (
                exported[name],
                OnnxNetwork(exported[f"{name}_onnx"], num_threads=TEST_THREADS),
            )
        )
        figure(f"{name}_sample_max_abs_diff", (got - ref).abs().max(), at_most=FP32_TOL)


def test_int8_graphs_stay_close(exported, trained_tiny_checkpoint, figure):
    from model.export.onnx_runtime import OnnxNetwork

    ids, features, prompt_frames = _cut_inputs(trained_tiny_checkpoint)
    fp32 = _sample(
        OnnxNetwork(exported["student_onnx"], num_threads=TEST_THREADS),
        ids,
        features,
        prompt_frames,
        steps=4,
        guidance=1.5,
        distill=True,
    )
    int8_net = OnnxNetwork(exported["student_onnx"], int8=True, num_threads=TEST_THREADS)
    int8 = _sample(int8_net, ids, features, prompt_frames, steps=4, guidance=1.5, distill=True)
    relative = float((int8 - fp32).abs().mean() / fp32.abs().mean())
    assert relative > 0.0  # quantised (not identical) ...
    figure("int8_relative_l1", relative, at_most=INT8_REL_TOL)  # ... yet close
    with pytest.raises(FileNotFoundError, match="int8"):
        OnnxNetwork(exported["teacher_onnx"], int8=True, num_threads=TEST_THREADS)


# ------------------------------------------------------------------------------ CLI

CLI_MEL_L1_TOL = 0.01
"""Mean |log-mel difference| (natural-log mel of the written wavs) between what the CLI
synthesises from the torch student and from its fp32 ONNX export (same seed, HiFi-GAN):
measured 3.0e-3, with a waveform correlation of 1 - 1.4e-8."""
CLI_WAVE_CORRELATION = 0.999
CLI_INT8_MEL_L1_TOL = 0.5
"""The same for the int8 graphs: quantisation noise, loosely bounded (measured 0.19)."""


def _run_infer(*args: str):
    import subprocess
    import sys

    from tests.model.test_infer import REPO

    return subprocess.run(
        [sys.executable, "-m", "model.infer", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_prompt(trained_tiny_checkpoint, tmp_path_factory):
    """The memorised cut's first exchange as a prompt wav; (wav, prompt text, target text)."""
    import soundfile as sf

    from tests.model.test_infer import SAMPLE_WAV

    start_s = trained_tiny_checkpoint.window_s[0]
    audio, rate = sf.read(SAMPLE_WAV, dtype="float32")
    wav = tmp_path_factory.mktemp("cli_prompt") / "prompt.wav"
    sf.write(wav, audio[int(start_s * rate) : int((start_s + PROMPT_END_S) * rate)], rate)
    return wav, trained_tiny_checkpoint.prompt_text, trained_tiny_checkpoint.target_text


def _log_mel(path):
    import soundfile as sf

    from model.audio.features import FeatureConfig, MelExtractor

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 22050
    return audio.T, MelExtractor(FeatureConfig.offline())(torch.from_numpy(audio.T.copy())).numpy()


def _prompt_args(cli_prompt) -> list[str]:
    """``--text``, ``--prompt-wav`` and ``--prompt-text`` of the CLI tests."""
    wav, prompt_text, target = cli_prompt
    return ["--text", target, "--prompt-wav", str(wav), "--prompt-text", prompt_text]


def test_cli_runs_the_onnx_export_like_the_torch_student(exported, cli_prompt, tmp_path, figure):
    """``--checkpoint <onnx dir>`` synthesises what the torch student does (same seed, its
    inference.json defaults: 4 steps, guidance 1.5 as an input); ``--onnx-int8`` runs the
    quantised graphs."""
    common = [*_prompt_args(cli_prompt), "--seed", "11", "--device", "cpu"]
    outputs = {}
    for name, extra in (
        ("torch", [str(exported["student_dir"])]),
        ("onnx", [str(exported["student_onnx"])]),
        ("int8", [str(exported["student_onnx"]), "--onnx-int8"]),
    ):
        outputs[name] = tmp_path / f"{name}.wav"
        proc = _run_infer("--checkpoint", *extra, *common, "--out", str(outputs[name]))
        assert proc.returncode == 0, proc.stderr
        assert "defaults: 4 steps, guidance 1.50" in proc.stderr, proc.stderr
        assert "distilled" in proc.stderr
    assert "onnx-int8 on onnxruntime" in proc.stderr
    torch_audio, torch_mel = _log_mel(outputs["torch"])
    onnx_audio, onnx_mel = _log_mel(outputs["onnx"])
    _, int8_mel = _log_mel(outputs["int8"])
    assert torch_audio.shape == onnx_audio.shape
    mel_l1 = float(np.abs(onnx_mel - torch_mel).mean())
    correlation = float(np.corrcoef(torch_audio.ravel(), onnx_audio.ravel())[0, 1])
    frames = min(len(int8_mel), len(torch_mel))
    int8_l1 = float(np.abs(int8_mel[:frames] - torch_mel[:frames]).mean())
    print(
        f"\nCLI torch vs ONNX fp32: log-mel L1 {mel_l1:.2e}, waveform correlation "
        f"1 - {1 - correlation:.1e}; vs int8: log-mel L1 {int8_l1:.3f} ({len(int8_mel)} vs "
        f"{len(torch_mel)} frames)"
    )
    figure("cli_fp32_mel_l1", mel_l1, at_most=CLI_MEL_L1_TOL)
    figure("cli_fp32_wave_correlation", correlation, at_least=CLI_WAVE_CORRELATION)
    assert int8_l1 > 0.0
    figure("cli_int8_mel_l1", int8_l1, at_most=CLI_INT8_MEL_L1_TOL)


def test_cli_onnx_input_errors_are_one_line(exported, cli_prompt, tmp_path, capsys):
    from model.inference.infer import main

    out = tmp_path / "out.wav"
    common = [*_prompt_args(cli_prompt), "--out", str(out)]
    cases = [
        ([str(exported["student_onnx"]), "--device", "cuda"], "CPU provider"),
        ([str(exported["student_onnx"]), "--device", "mps"], "use --device cpu or auto"),
        ([str(exported["teacher_onnx"]), "--onnx-int8"], "no int8 graphs"),
        ([str(exported["student_dir"]), "--onnx-int8"], "need an ONNX export"),
    ]
    for args, message in cases:
        assert main(["--checkpoint", *args, *common]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()


def test_inspect_and_defaults_of_an_onnx_export(exported):
    from model.export import onnx_export
    from model.inference.synthesis import (
        ONNX_META_FILE,
        InputError,
        inspect_checkpoint,
        resolve_device,
    )

    assert ONNX_META_FILE == onnx_export.META_FILE
    info = inspect_checkpoint(exported["student_onnx"])
    assert info.is_onnx and info.runtime == "onnx" and info.variant == "dialog"
    assert (info.defaults.num_step, info.defaults.guidance_scale) == (4, 1.5)
    assert info.sample_rate == 22050 and info.num_channels == 1
    assert inspect_checkpoint(exported["student_onnx"], onnx_int8=True).runtime == "onnx-int8"
    teacher = inspect_checkpoint(exported["teacher_onnx"])
    assert teacher.is_onnx and teacher.defaults.num_step == 16
    assert resolve_device("auto", onnx=True) == "cpu"
    with pytest.raises(InputError, match="CPU"):
        resolve_device("cuda:0", onnx=True)
