"""Dialogue synthesis: CLI end to end, prompts, chunking, stereo, and every input error.

Real-behaviour checks use the session's tiny model memorised on a real dialogue of the bundled
sample (``trained_tiny_checkpoint``): Whisper must understand what it synthesises, and a stereo
fine-tune of it must put S1 on the left. Shape/plumbing checks use random-weight checkpoints.
"""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.inference.chunking import (
    crossfade_join,
    plan_batches,
    plan_chunks,
    split_before_s1,
    target_num_frames,
)
from model.inference.prompts import (
    PromptError,
    load_audio,
    normalize_rms,
    punctuate_dialogue,
    silent_frames,
    split_prompt_text,
    trim_silence,
)
from tests.conftest import TEST_THREADS

REPO = Path(__file__).resolve().parents[2]
SAMPLE_WAV = REPO / "pipeline" / "assets" / "sample.wav"
PYTHON = sys.executable

# a prompt for the plumbing tests: the first exchange of the sample's dialogue (real audio)
PROMPT_WINDOW_S = (6.58, 8.43)  # after "[S1] Hello? [S2] Hello?", in the pause before "Oh, hello."
PROMPT_TEXT = "[S1] Hello? [S2] Hello?"


def _sample_slice(start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(SAMPLE_WAV, dtype="float32")
    return audio[int(start_s * rate) : int(end_s * rate)], rate


def _strip_tags(text: str) -> str:
    import re

    return " ".join(re.sub(r"\[S[12]\]", " ", text).split())


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "model.infer", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ----------------------------------------------------------------------------- fixtures


def _write_random_checkpoint(directory: Path, variant: str) -> Path:
    import torch

    from model.audio.features import FeatureConfig
    from model.network.checkpoint import save_checkpoint
    from model.network.config import preset
    from model.network.zipvoice import DialogTTSNetwork
    from model.tokenizer import build_vocabulary

    texts = [line.split(maxsplit=5)[5] for line in (REPO / "pipeline/assets/sample.stm").open()]
    table = build_vocabulary(texts + ["Hi. Yes! The quick brown fox jumps over the lazy dog."])
    torch.manual_seed(0)
    config = preset(
        "tiny",
        variant=variant,
        vocab_size=table.vocab_size,
        pad_id=table.pad_id,
        spk_a_id=table.id_of("[S1]"),
        spk_b_id=table.id_of("[S2]"),
        fm_decoder_num_layers=[1] * 5,
        fm_decoder_dim=32,
        fm_decoder_feedforward_dim=64,
        text_encoder_num_layers=1,
        text_encoder_dim=32,
        text_encoder_feedforward_dim=64,
        time_embed_dim=32,
        text_embed_dim=32,
    )
    save_checkpoint(DialogTTSNetwork(config), directory, dict(table.entries))
    (directory / "features.json").write_text(FeatureConfig.offline().to_json())
    return directory


@pytest.fixture(scope="module")
def random_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("random_ckpt")
    return {v: _write_random_checkpoint(root / v, v) for v in ("dialog", "dialog_stereo")}


@pytest.fixture(scope="module")
def random_synth(random_checkpoints):
    from model.inference.infer import Synthesizer

    return Synthesizer.load(random_checkpoints["dialog"], device="cpu", vocoder="griffinlim")


@pytest.fixture(scope="module")
def prompt_files(tmp_path_factory) -> dict[str, Path]:
    """The memorised cut's first exchange as a merged prompt, and each voice alone."""
    root = tmp_path_factory.mktemp("prompts")
    files = {"merged": PROMPT_WINDOW_S, "spk1": (6.58, 7.30), "spk2": (7.50, 8.30)}
    out = {}
    for name, (start, end) in files.items():
        audio, rate = _sample_slice(start, end)
        out[name] = root / f"{name}.wav"
        sf.write(out[name], audio, rate)
    return out


# ----------------------------------------------------------------------------- chunking


def test_crossfade_join_is_linear_and_preserves_a_constant():
    left, right = np.ones((2, 100), np.float32), np.ones((2, 50), np.float32)
    joined = crossfade_join([left, right], 10)
    assert joined.shape == (2, 140)
    np.testing.assert_allclose(joined, 1.0, atol=1e-6)  # complementary ramps sum to one
    ramp = crossfade_join([np.ones((1, 30), np.float32), np.zeros((1, 30), np.float32)], 10)[0]
    fade = ramp[20:30]
    assert np.all(np.diff(fade) < 0) and 0 < fade[-1] < fade[0] < 1
    np.testing.assert_allclose(np.diff(fade), np.diff(fade)[0], atol=1e-6)  # linear
    assert np.all(ramp[:20] == 1) and np.all(ramp[30:] == 0) and ramp.shape == (50,)
    # overlap limited by a short chunk; zero fade = concatenation
    assert crossfade_join([left[:, :5], right], 10).shape == (2, 50)
    assert crossfade_join([left, right], 0).shape == (2, 150)


def test_split_before_s1_and_chunk_budget():
    turns = [f"[S1] question {i} [S2] answer {i}." for i in range(6)]
    script = " ".join(turns) + " [S2] and more."
    pieces = split_before_s1(script)
    assert len(pieces) == 6 and all(p.startswith("[S1]") for p in pieces)
    assert pieces[-1].endswith("[S2] and more.")
    tokens = [10] * 6
    chunks = plan_chunks(pieces, tokens, seconds_per_token=1.0, prompt_s=8.0, max_chunk_s=30.0)
    assert [c.count("[S1]") for c in chunks] == [2, 2, 2]  # 8 + 2 * 10 <= 30 < 8 + 3 * 10
    assert " ".join(chunks) == " ".join(pieces)
    # one exchange longer than the budget stays whole
    assert (
        plan_chunks(pieces[:2], [50, 5], seconds_per_token=1.0, prompt_s=8.0, max_chunk_s=30.0)
        == pieces[:2]
    )


def test_plan_batches_respects_padded_budget():
    lengths = [12.0, 3.0, 30.0, 5.0, 8.0]
    batches = plan_batches(lengths, prompt_s=5.0, max_batch_s=40.0)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert batches[0] == [2]  # the longest alone (35 s), longest first
    for batch in batches:
        assert len(batch) == 1 or len(batch) * (5.0 + max(lengths[i] for i in batch)) <= 40.0


def test_short_texts_get_a_duration_floor():
    long_frames = target_num_frames(100, 20, 60)  # 5 frames per token
    assert long_frames == 300
    assert target_num_frames(100, 20, 30) == 150  # at the threshold: unchanged
    assert target_num_frames(100, 20, 5) == 50  # 5 tokens timed as 10 (at most 2x)
    assert target_num_frames(100, 20, 20) == 150  # 20 tokens timed as 30
    assert target_num_frames(100, 20, 5, short_text_tokens=0) == 25  # upstream rule
    assert target_num_frames(100, 20, 60, speed=2.0) == 150
    durations = [target_num_frames(100, 20, n) for n in range(1, 80)]
    assert all(b >= a for a, b in itertools.pairwise(durations))  # never shorter for more text


# ----------------------------------------------------------------------------- prompts


def test_trim_silence_inner_and_edges_keeps_channels_aligned():
    rate = 8000
    speech = 0.1 * np.sin(np.arange(rate) * 0.3).astype(np.float32)  # 1 s
    silence = np.zeros(3 * rate, np.float32)
    mono = np.concatenate([silence[: rate // 2], speech, silence, speech, silence[:rate]])[None]
    out = trim_silence(mono, rate)
    # 0.1 s + 1 s speech + 1 s (was 3 s) + 1 s speech + 0.1 s
    assert abs(out.shape[1] / rate - 3.2) < 0.03
    stereo = np.stack([mono[0], np.roll(mono[0], rate // 4)])  # right channel 0.25 s later
    trimmed = trim_silence(stereo, rate)
    assert trimmed.shape[0] == 2
    # the right channel's extra speech counts: nothing of either channel's speech is lost
    assert np.isclose(np.abs(trimmed).sum(1), np.abs(stereo).sum(1), rtol=1e-3).all()
    assert silent_frames(np.zeros((1, 800), np.float32), rate).all()


def test_rms_normalisation_only_raises_quiet_prompts():
    quiet = np.full((1, 100), 0.02, np.float32)
    scaled, gain = normalize_rms(quiet, 0.1)
    assert gain == pytest.approx(5.0) and np.sqrt(np.mean(scaled**2)) == pytest.approx(0.1)
    loud = np.full((1, 100), 0.3, np.float32)
    assert normalize_rms(loud, 0.1)[1] == 1.0


def test_text_punctuation_and_split_prompt_text():
    assert punctuate_dialogue("[S1]hi there [S2] ok! [S1] [LAUGHS] yes") == (
        "[S1] hi there. [S2] ok! [S1] [LAUGHS] yes."
    )
    assert split_prompt_text("[S1] Hello", "How are you?") == "[S1] Hello. [S2] How are you?"
    with pytest.raises(PromptError):
        split_prompt_text("Hello [S2] there", "fine")
    with pytest.raises(PromptError):
        split_prompt_text("Hello", "  ")


def test_load_audio_resamples_and_rejects_bad_files(tmp_path, prompt_files):
    audio = load_audio(prompt_files["merged"], 22050)
    expected_s = PROMPT_WINDOW_S[1] - PROMPT_WINDOW_S[0]
    assert audio.shape[0] == 1 and abs(audio.shape[1] / 22050 - expected_s) < 0.01
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(PromptError, match="cannot decode"):
        load_audio(corrupt, 22050)
    with pytest.raises(PromptError, match="not found"):
        load_audio(tmp_path / "missing.wav", 22050)


# ----------------------------------------------------------------------------- API plumbing


def test_api_rate_channels_and_duration_grow_with_text(random_synth, prompt_files):
    from model.inference.infer import synthesize

    texts = [
        "[S1] Hello there, how are you? [S2] Fine.",
        "[S1] Hello there, how are you doing today? [S2] I am fine, thank you very much.",
        (
            "[S1] Hello there, how are you doing today? [S2] I am fine, thank you very much. "
            "[S1] I heard a beep, so I thought you were there. [S2] Neither did I, honestly."
        ),
    ]
    durations = []
    for text in texts:
        result = synthesize(
            random_synth,
            text,
            prompt_wav=prompt_files["merged"],
            prompt_text=PROMPT_TEXT,
            num_step=1,
            guidance_scale=0.0,
            trim_output=False,
        )
        assert result.sample_rate == 22050 and result.audio.shape[0] == 1
        assert result.audio.dtype == np.float32 and np.abs(result.audio).max() <= 1.0
        assert result.rtf > result.rtf_no_vocoder > 0
        durations.append(result.duration_s)
    assert durations[0] < durations[1] < durations[2]


def _one_step_merged(prompt_files) -> dict:
    """Synthesis arguments of the quick tests: the merged prompt, one step, no guidance."""
    return {
        "prompt_wav": prompt_files["merged"],
        "prompt_text": PROMPT_TEXT,
        "num_step": 1,
        "guidance_scale": 0.0,
        "trim_output": False,
    }


def test_short_text_is_slowed_not_clipped(random_synth, prompt_files):
    kwargs = _one_step_merged(prompt_files)
    with_floor = random_synth.synthesize("[S1] Hi. [S2] Yes.", **kwargs)
    without = random_synth.synthesize("[S1] Hi. [S2] Yes.", short_text_tokens=0, **kwargs)
    assert with_floor.duration_s == pytest.approx(2 * without.duration_s, rel=0.05)


def test_rms_is_restored_on_the_output(random_synth, figure):
    """A quiet prompt is raised to RMS 0.1 and the output lowered by the same gain.

    Exactly: the same prepared prompt, once with its gain (10) and once told it was not raised,
    gives outputs in the ratio of the gain. End to end: prompts at RMS 0.01 and 0.1 give outputs
    whose RMS ratio is 0.1. (Sample by sample the two levels cannot be compared: their prompts
    differ in the last float bit, this random network drives the vocoder into clipping on 99.7 %
    of the samples, and the few samples in between flip with the last bits of the arithmetic:
    3 of 84,992 samples differed by up to 2.0 on one CPU, 1 by 0.7 on another.)
    """
    from model.inference.prompts import PromptOptions
    from model.inference.synthesis import PromptSpec, SynthesisOptions

    audio, rate = _sample_slice(*PROMPT_WINDOW_S)
    audio = audio / np.sqrt(np.mean(audio**2))  # RMS 1
    no_trim = PromptOptions(trim=False)  # the same prompt samples at both levels
    kwargs = {"num_step": 1, "guidance_scale": 0.0, "trim_output": False}
    quiet = random_synth.prepare_prompt(
        PromptSpec.from_args((audio * 0.01, rate), PROMPT_TEXT),
        SynthesisOptions(prompt_options=no_trim),
    )
    assert quiet.rms_gain == pytest.approx(10.0, rel=0.02)
    script = "[S1] Hello there. [S2] Hi!"
    lowered = random_synth.synthesize(script, prompt=quiet, **kwargs)
    as_is = random_synth.synthesize(
        script, prompt=dataclasses.replace(quiet, rms_gain=1.0), **kwargs
    )
    np.testing.assert_allclose(lowered.audio * quiet.rms_gain, as_is.audio, rtol=1e-5, atol=1e-6)
    results = {}
    for level in (0.01, 0.1):  # 0.01 is raised 10x to 0.1 and the output lowered 10x
        results[level] = random_synth.synthesize(
            script,
            prompt_wav=(audio * level, rate),
            prompt_text=PROMPT_TEXT,
            prompt_options=no_trim,
            **kwargs,
        )
    rms = {k: float(np.sqrt(np.mean(v.audio**2))) for k, v in results.items()}
    figure("rms_ratio_error", abs(rms[0.01] / rms[0.1] / 0.1 - 1), at_most=0.02)


def test_long_script_is_chunked_batched_and_crossfaded(random_synth, prompt_files):
    exchange = "[S1] I heard a beep. [S2] Neither did I. "
    script = exchange * 2
    kwargs = _one_step_merged(prompt_files)
    whole = random_synth.synthesize(script, max_chunk_s=1000.0, **kwargs)
    chunked = random_synth.synthesize(script, max_chunk_s=7.0, **kwargs)
    assert whole.num_chunks == 1 and chunked.num_chunks == 2
    # same total length up to the cross-fades (0.1 s each) and per-chunk rounding
    expected = whole.duration_s - 0.1 * (chunked.num_chunks - 1)
    assert chunked.duration_s == pytest.approx(expected, abs=0.02 * chunked.num_chunks)


def test_stereo_random_checkpoint_writes_two_channels(random_checkpoints, prompt_files):
    from model.inference.infer import synthesize

    result = synthesize(
        random_checkpoints["dialog_stereo"],
        "[S1] Hi there. [S2] Hello.",
        spk1_wav=prompt_files["spk1"],
        spk1_text="Hello?",
        spk2_wav=prompt_files["spk2"],
        spk2_text="Hello?",
        num_step=1,
        vocoder="griffinlim",
        device="cpu",
    )
    assert result.audio.shape[0] == 2 and result.sample_rate == 22050
    with pytest.raises(PromptError, match="2-channel"):  # a mono merged prompt is refused
        synthesize(
            random_checkpoints["dialog_stereo"],
            "[S1] Hi. [S2] Yo.",
            prompt_wav=prompt_files["merged"],
            prompt_text=PROMPT_TEXT,
            vocoder="griffinlim",
            device="cpu",
        )


def test_distilled_student_uses_its_own_defaults_and_one_pass_per_step(
    random_checkpoints, prompt_files, tmp_path
):
    from model.inference.defaults import InferenceDefaults
    from model.inference.synthesis import Synthesizer
    from model.network.checkpoint import load_checkpoint
    from model.network.student import GuidedDialogNetwork, save_model

    teacher = load_checkpoint(random_checkpoints["dialog"])
    directory = save_model(
        GuidedDialogNetwork(teacher.config),
        tmp_path / "student",
        teacher.tokens,
        InferenceDefaults(num_step=3, guidance_scale=2.0, guidance_input=True, distill_stage=1),
        features_json=random_checkpoints["dialog"] / "features.json",
    )
    synth = Synthesizer.load(directory, device="cpu", vocoder="griffinlim")
    calls = []
    forward = synth.network.forward_fm_decoder

    def spy(*args, **kwargs):
        calls.append((kwargs["xt"].shape[0], kwargs.get("guidance_scale")))
        return forward(*args, **kwargs)

    synth.network.forward_fm_decoder = spy
    result = synth.synthesize(
        "[S1] Hi there. [S2] Yes.", prompt_wav=prompt_files["merged"], prompt_text=PROMPT_TEXT
    )
    assert (result.num_step, result.guidance_scale) == (3, 2.0)
    assert len(calls) == 3  # one pass per step: no CFG doubling
    assert all(batch == 1 and float(w.flatten()[0]) == 2.0 for batch, w in calls)


# ----------------------------------------------------------------------------- CLI errors


@pytest.fixture(scope="module")
def broken_weights_checkpoint(random_checkpoints, tmp_path_factory) -> Path:
    """A checkpoint whose weights cannot be read: input errors must be found before them."""
    import shutil

    directory = tmp_path_factory.mktemp("broken") / "ckpt"
    shutil.copytree(random_checkpoints["dialog"], directory)
    (directory / "model.safetensors").write_bytes(b"not safetensors")
    return directory


@pytest.mark.parametrize(
    "text_args, message",
    [
        (["--text", "Hello there, no tags."], "no speaker tags"),
        (["--text", "[S2] Hi. [S1] Hello."], "must start with [S1]"),
        (["--text", "[S1] Hi. [S2] Hello. [S3] Hey."], "[S3]"),
        (["--text", "[S1] Hi. [S2]"], "has no text"),
        (["--text", "[S1] Hi. [S2] Yo.", "--prompt-wav", "MISSING"], "prompt audio not found"),
        (["--text", "[S1] Hi. [S2] Yo.", "--prompt-wav", "CORRUPT"], "cannot decode"),
        (["--text", "[S1] Hi. [S2] Yo.", "--prompt-text", "Hello? Hello?"], "prompt transcript"),
        (["--text", "[S1] Hi. [S2] Yo.", "--spk1-wav", "PROMPT"], "not both"),
    ],
)
def test_cli_input_errors_are_one_line_before_loading(
    text_args, message, tmp_path, broken_weights_checkpoint, prompt_files
):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    substitutions = {
        "MISSING": str(tmp_path / "missing.wav"),
        "CORRUPT": str(corrupt),
        "PROMPT": str(prompt_files["merged"]),
    }
    args = [
        "--checkpoint",
        str(broken_weights_checkpoint),
        "--prompt-wav",
        str(prompt_files["merged"]),
        "--prompt-text",
        PROMPT_TEXT,
        "--out",
        str(tmp_path / "out.wav"),
    ]
    args += [substitutions.get(a, a) for a in text_args]
    proc = run_cli(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.wav").exists()


def test_cli_missing_checkpoint_is_one_line(tmp_path, prompt_files):
    proc = run_cli(
        "--checkpoint",
        str(tmp_path / "nope"),
        "--text",
        "[S1] a [S2] b",
        "--prompt-wav",
        str(prompt_files["merged"]),
        "--prompt-text",
        PROMPT_TEXT,
    )
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0
    assert "checkpoint directory not found" in proc.stderr


def test_cli_batch_keeps_going_and_lists_failures(tmp_path, random_checkpoints, prompt_files):
    merged, spk1, spk2 = (str(prompt_files[k]) for k in ("merged", "spk1", "spk2"))
    rows = [
        f"good_merged\t{PROMPT_TEXT}\t{merged}\t[S1] Hi there. [S2] Hello.",
        "too_few\tcolumns only",
        f"good_split\tHello?\tHello?\t{spk1}\t{spk2}\t[S1] Hi. [S2] Fine, thanks.",
        f"bad_text\t{PROMPT_TEXT}\t{merged}\tno tags here",
        f"bad_wav\t{PROMPT_TEXT}\t{tmp_path / 'missing.wav'}\t[S1] Hi. [S2] Yo.",
        f"good_merged\t{PROMPT_TEXT}\t{merged}\t[S1] Duplicate name. [S2] Yes.",
        f"empty_text\t{PROMPT_TEXT}\t{merged}\t",
    ]
    test_list = tmp_path / "list.tsv"
    test_list.write_text("\n".join(rows) + "\n")
    res = tmp_path / "res"
    proc = run_cli(
        "--checkpoint",
        str(random_checkpoints["dialog"]),
        "--test-list",
        str(test_list),
        "--res-dir",
        str(res),
        "--vocoder",
        "griffinlim",
        "--num-step",
        "1",
    )
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in res.glob("*.wav")) == ["good_merged.wav", "good_split.wav"]
    err = proc.stderr
    assert "error: 5 of 7 item(s) failed" in err and "Traceback" not in err
    for name, reason in [
        ("line 2", "4 (merged prompt) or 6"),
        ("bad_text", "no speaker tags"),
        ("bad_wav", "not found"),
        ("good_merged", "duplicate"),
        ("empty_text", "empty column"),
    ]:
        assert any(
            line.strip().startswith(f"{name}:") and reason in line for line in err.splitlines()
        ), (name, err)
    times = (res / "synthesis_times.tsv").read_text().splitlines()
    assert {line.split("\t")[0] for line in times[1:]} == {"good_merged", "good_split"}
    assert "RTF" in err and "without vocoder" in err


def test_split_prompts_put_s1_left_and_s2_right(prompt_files):
    from model.inference.prompts import split_prompts

    audios = [load_audio(prompt_files[k], 22050) for k in ("spk1", "spk2")]
    prompt = split_prompts(audios, ["Hello?", "Hello?"], sample_rate=22050, num_channels=2)
    assert prompt.samples.shape[0] == 2 and prompt.text == "[S1] Hello? [S2] Hello?"
    left = np.flatnonzero(~silent_frames(prompt.samples[:1], 22050))
    right = np.flatnonzero(~silent_frames(prompt.samples[1:], 22050))
    assert left.size and right.size and left.max() < right.min()  # S1 first, on the left
    mono = split_prompts(audios, ["Hello?", "Hello?"], sample_rate=22050, num_channels=1)
    assert mono.samples.shape == (1, prompt.samples.shape[1])


def test_cli_stereo_wav_channels_follow_the_network(random_checkpoints, prompt_files, tmp_path):
    """A stereo network whose right-channel velocity is a large negative constant generates
    a silent right channel: the CLI's wav must have the sound in its first (left) column."""
    import shutil

    import torch

    from model.network.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(random_checkpoints["dialog_stereo"])
    state = loaded.network.state_dict()
    mels = loaded.config.feat_dim
    with torch.no_grad():
        state["fm_decoder.out_proj.0.weight"][mels:] = 0.0
        state["fm_decoder.out_proj.0.bias"][mels:] = -30.0
    loaded.network.load_state_dict(state)
    directory = save_checkpoint(loaded.network, tmp_path / "left_only", loaded.tokens)
    shutil.copy(random_checkpoints["dialog_stereo"] / "features.json", directory)
    # a 2-channel merged prompt: S1 on the left, S2 on the right
    spk1, rate = sf.read(prompt_files["spk1"], dtype="float32")
    spk2, _ = sf.read(prompt_files["spk2"], dtype="float32")
    stereo = np.zeros((len(spk1) + len(spk2), 2), np.float32)
    stereo[: len(spk1), 0], stereo[len(spk1) :, 1] = spk1, spk2
    sf.write(tmp_path / "stereo_prompt.wav", stereo, rate)
    out = tmp_path / "stereo.wav"
    proc = run_cli(
        "--checkpoint",
        str(directory),
        "--text",
        "[S1] Hi there. [S2] Hello.",
        "--prompt-wav",
        str(tmp_path / "stereo_prompt.wav"),
        "--prompt-text",
        PROMPT_TEXT,
        "--out",
        str(out),
        "--vocoder",
        "griffinlim",
        "--num-step",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    audio, out_rate = sf.read(out, dtype="float32", always_2d=True)
    assert out_rate == 22050 and audio.shape[1] == 2
    rms = np.sqrt(np.mean(audio**2, axis=0))
    assert rms[0] > 0.01 and rms[1] < rms[0] / 100, rms


# ----------------------------------------------------------------------------- real model


def _whisper_transcribe(audio: np.ndarray, rate: int) -> str:
    """English transcript of ``(channels, samples)`` audio by the evaluation's Whisper base
    (VAD-bounded windows, seeded fallback: the same text on every run on one machine)."""
    import soxr

    from model.evaluation.metrics.asr import Recognizer

    mono = soxr.resample(audio.mean(0), rate, 16000).astype(np.float32)
    return Recognizer("base", language="en", cpu_threads=TEST_THREADS).transcribe(mono).text


def _speed_for_total(
    checkpoint: Path, prompt_wav: Path, prompt_text: str, text: str, total_s: float
) -> float:
    """The --speed that makes prompt + target last ``total_s`` under the CLI's length rule."""
    from model.audio.features import num_frames
    from model.inference.chunking import target_num_frames
    from model.inference.prompts import PromptOptions
    from model.inference.synthesis import PromptSpec, check_script
    from model.tokenizer import Tokenizer, TokenTable

    prompt = PromptSpec((prompt_wav,), (prompt_text,)).prepare(22050, 1, PromptOptions())
    tokenizer = Tokenizer(TokenTable.load(checkpoint / "tokens.txt"), mode="dialog")
    prompt_tokens, tokens = (
        len(ids) for ids in tokenizer.texts_to_token_ids([prompt.text, check_script(text)])
    )
    prompt_frames = num_frames(prompt.samples.shape[1], 256)
    target_frames = num_frames(round(total_s * 22050), 256) - prompt_frames
    speed = prompt_frames / prompt_tokens * tokens / target_frames
    assert (
        abs(target_num_frames(prompt_frames, prompt_tokens, tokens, speed=speed) - target_frames)
        <= 1
    )
    return speed


def _aligned_l1(audio: np.ndarray, rate: int, reference: np.ndarray, start: int) -> float:
    """Mean |log-mel difference| between audio and ``reference[start:]``, best of +-0.35 s.

    Edge trimming and the prompt's appended silence shift the output by a few frames; the
    same search is applied to every output compared.
    """
    import torch

    from model.audio.features import FeatureConfig, MelExtractor

    assert rate == 22050
    mel = MelExtractor(FeatureConfig.offline())(torch.from_numpy(audio.copy())).numpy()
    best = np.inf
    for offset in range(-30, 31):
        begin = start + offset
        overlap = min(len(mel), len(reference) - begin)
        if begin >= 0 and overlap >= 100:
            difference = mel[:overlap] - reference[begin : begin + overlap]
            best = min(best, float(np.abs(difference).mean()))
    return best


def _split_after_first_exchange(cut) -> tuple[float, str, str]:
    """(prompt end in s, prompt text, target text): the prompt is the cut's first S1 -> S2
    exchange, cut in the pause before the next S1 turn, so the target starts with [S1]."""
    turns = sorted(cut.supervisions, key=lambda sup: sup.start)
    index = next(
        i for i in range(1, len(turns)) if turns[i].speaker == "S1" and turns[i - 1].speaker == "S2"
    )

    def tagged(sups) -> str:
        merged: list[list[str]] = []
        for sup in sups:
            if merged and merged[-1][0] == sup.speaker:
                merged[-1][1] += " " + sup.text
            else:
                merged.append([sup.speaker, sup.text])
        return " ".join(f"[{speaker}] {text}" for speaker, text in merged)

    end_s = (turns[index - 1].end + turns[index].start) / 2
    return end_s, tagged(turns[:index]), tagged(turns[index:])


def test_cli_reproduces_the_memorised_dialogue(trained_tiny_checkpoint, tmp_path, figure):
    """The model memorised one real dialogue. Given its first exchange as the prompt, the CLI
    (decoding, trimming, appended silence, RMS normalisation, punctuation, length rule,
    sampler, HiFi-GAN) must give back the rest of it: Whisper base understands it (WER at
    most 50 % against the cut's text) and it is far closer to the real target's log-mel than
    an untrained network of the same shape.

    Sampled with ``--guidance-scale 0`` (the conditional field alone): this memoriser's
    unconditional branch (text dropped 20 % of 1500 steps) is weak, and extrapolating away from
    it garbles the words. Measured over noise seeds 0-7 on the session model
    (``/tmp``-trained with this recipe): WER 0.18-0.36 at guidance 0, 0.27-0.64 at 1.0,
    0.64-1.36 at the dialogue default 1.5."""
    import shutil

    import torch
    from lhotse import CutSet

    from core.wer import word_error_rate
    from model.inference.synthesis import Synthesizer
    from model.network.checkpoint import load_checkpoint, save_checkpoint
    from model.network.zipvoice import DialogTTSNetwork

    trained = trained_tiny_checkpoint
    start_s, end_s = trained.window_s
    cut = next(iter(CutSet.from_file(trained.cuts_path)))
    prompt_end_s, prompt_text, target = _split_after_first_exchange(cut)
    assert prompt_text.startswith("[S1]") and "[S2]" in prompt_text and target.startswith("[S1]")
    mel = np.asarray(cut.features.load(start=cut.start, duration=cut.duration))  # (T, 80)
    audio, rate = _sample_slice(start_s, start_s + prompt_end_s)
    prompt_wav = tmp_path / "prompt.wav"
    sf.write(prompt_wav, audio, rate)
    # a memoriser knows its cut's length only; the prompt ("Hello? ... Hello?" with pauses)
    # speaks ~2.5x slower than the rest of the cut, so the rate is set to give that length
    speed = _speed_for_total(trained.exp_dir, prompt_wav, prompt_text, target, end_s - start_s)
    out = tmp_path / "memorised.wav"
    proc = run_cli(
        "--checkpoint",
        str(trained.exp_dir),
        "--text",
        target,
        "--prompt-wav",
        str(prompt_wav),
        "--prompt-text",
        prompt_text,
        "--speed",
        f"{speed:.4f}",
        "--guidance-scale",
        "0",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    cli_audio, out_rate = sf.read(out, dtype="float32", always_2d=True)
    assert out_rate == 22050 and cli_audio.shape[1] == 1
    target_start = round(prompt_end_s * out_rate / 256)
    l1_cli = _aligned_l1(cli_audio[:, 0], out_rate, mel, target_start)

    loaded = load_checkpoint(trained.exp_dir)
    torch.manual_seed(0)
    untrained_dir = save_checkpoint(
        DialogTTSNetwork(loaded.config), tmp_path / "untrained", loaded.tokens
    )
    shutil.copy(trained.exp_dir / "features.json", untrained_dir)
    untrained = Synthesizer.load(untrained_dir, device="cpu").synthesize(
        target, prompt_wav=prompt_wav, prompt_text=prompt_text, speed=speed, guidance_scale=0.0
    )
    l1_untrained = _aligned_l1(untrained.audio[0], 22050, mel, target_start)

    hypothesis = _whisper_transcribe(cli_audio.T, out_rate)
    wer = word_error_rate(_strip_tags(target), hypothesis).rate
    print(
        f"memorised dialogue: speed {speed:.2f}, Whisper base WER {wer:.3f} ({hypothesis!r}); "
        f"log-mel L1 to the real target {l1_cli:.3f} (untrained network {l1_untrained:.3f})"
    )
    figure("wer", wer, at_most=0.5, detail=hypothesis)
    figure("l1_ratio_to_untrained", l1_cli / l1_untrained, at_most=0.5)
