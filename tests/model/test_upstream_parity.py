"""Compatibility with upstream ZipVoice checkpoints, checked against numbers that the
upstream code produced (``tests/fixtures/zipvoice-upstream``): strict loading,
numerical parity of the text path and the decoder, the full-size key/shape table, and
upstream's checkpoint transformations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.network.checkpoint import (
    CheckpointKeyError,
    dialog_from_zipvoice,
    init_stereo_from_dialog,
    load_network_state,
    load_upstream_model_dir,
    parameter_shapes,
    read_token_table,
)
from model.network.config import NetworkConfig, preset, variant_from_upstream_class
from model.network.zipvoice import DialogTTSNetwork

FIXTURE_NAMES = ("zipvoice", "zipvoice_dialog", "zipvoice_dialog_stereo", "zipvoice_distill")
EXPECTED_VARIANT = {
    "zipvoice": "zipvoice",
    "zipvoice_dialog": "dialog",
    "zipvoice_dialog_stereo": "dialog_stereo",
    "zipvoice_distill": "distill",
}
TOLERANCE = 1e-4


# tiny models gain nothing from intra-op threads and lose a lot on a loaded machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fixture_dir(upstream_fixtures: Path) -> Path:
    return upstream_fixtures


def _load(fixture_dir: Path, name: str) -> dict:
    return torch.load(fixture_dir / f"tiny_{name}.pt", weights_only=True)


def _network(data: dict, turn_embedding: str = "parity") -> DialogTTSNetwork:
    variant = variant_from_upstream_class(data["class"])
    config = NetworkConfig.from_upstream_json(
        data["config"],
        vocab_size=data["state_dict"]["embed.weight"].shape[0],
        variant=variant,
        turn_embedding=turn_embedding,
    )
    net = DialogTTSNetwork(config)
    net.load_state_dict(data["state_dict"], strict=True)
    return net.eval()


def _run(net: DialogTTSNetwork, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        text_condition, padding_mask = net.forward_text_train(
            inputs["tokens"], inputs["features_lens"]
        )
        velocity = net.forward_fm_decoder(
            t=inputs["t"],
            xt=inputs["xt"],
            text_condition=text_condition,
            speech_condition=inputs["speech_condition"],
            padding_mask=padding_mask,
            guidance_scale=inputs.get("guidance_scale"),
        )
    return text_condition, padding_mask, velocity


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_class_maps_to_variant(fixture_dir: Path, name: str) -> None:
    data = _load(fixture_dir, name)
    assert variant_from_upstream_class(data["class"]) == EXPECTED_VARIANT[name]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_reproduces_upstream_outputs(fixture_dir: Path, name: str, figure) -> None:
    data = _load(fixture_dir, name)
    rules = ("parity", "tag") if EXPECTED_VARIANT[name].startswith("dialog") else ("tag",)
    for rule in rules:
        net = _network(data, turn_embedding=rule)
        text_condition, padding_mask, velocity = _run(net, data["inputs"])
        out = data["outputs"]
        assert torch.equal(padding_mask, out["padding_mask"])
        figure(
            f"text_condition_max_err_{rule}",
            _max_err(text_condition, out["text_condition"]),
            at_most=TOLERANCE,
        )
        # end to end: our text condition feeds our decoder
        figure(f"velocity_max_err_{rule}", _max_err(velocity, out["velocity"]), at_most=TOLERANCE)
        # the decoder alone, on upstream's own text condition
        with torch.no_grad():
            v_ref_text = net.forward_fm_decoder(
                data["inputs"]["t"],
                data["inputs"]["xt"],
                out["text_condition"],
                data["inputs"]["speech_condition"],
                out["padding_mask"],
                data["inputs"].get("guidance_scale"),
            )
        figure(f"decoder_max_err_{rule}", _max_err(v_ref_text, out["velocity"]), at_most=TOLERANCE)


def test_turn_embedding_matters_for_the_dialog_fixture(fixture_dir: Path) -> None:
    """The tolerance is meaningful: without the turn embedding the outputs differ."""
    data = _load(fixture_dir, "zipvoice_dialog")
    net = _network(data)
    with torch.no_grad():
        net.spk_embed.weight.zero_()
    text_condition, _, _ = _run(net, data["inputs"])
    assert _max_err(text_condition, data["outputs"]["text_condition"]) > 1e-2


def _write_upstream_dir(directory: Path, data: dict, fixture_dir: Path, fmt: str) -> Path:
    """An upstream-style model dir for a fixture: weights, model.json, tokens.txt."""
    directory.mkdir(parents=True)
    state_dict = data["state_dict"]
    if fmt == "pt":
        torch.save({"model": state_dict}, directory / "model.pt")
    else:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in state_dict.items()}, str(directory / "m.safetensors")
        )
    (directory / "model.json").write_text(
        json.dumps({"model": data["config"], "feature": {"type": "vocos", "sampling_rate": 24000}})
    )
    table = read_token_table(fixture_dir / "tokens_emilia_generated.txt")
    vocab = state_dict["embed.weight"].shape[0]
    extra = {"[S1]": 360, "[S2]": 361} if vocab > 360 else {}
    used = set(table.values()) | set(extra.values())
    fillers = {f"<unused{i}>": i for i in range(vocab) if i not in used}
    lines = {**table, **extra, **fillers}
    (directory / "tokens.txt").write_text(
        "".join(f"{t}\t{i}\n" for t, i in sorted(lines.items(), key=lambda kv: kv[1]))
    )
    return directory


@pytest.mark.parametrize(
    "name,fmt", [("zipvoice_dialog", "pt"), ("zipvoice_distill", "safetensors")]
)
def test_load_upstream_model_dir(tmp_path: Path, fixture_dir: Path, name: str, fmt: str) -> None:
    data = _load(fixture_dir, name)
    model_dir = _write_upstream_dir(tmp_path / name, data, fixture_dir, fmt)
    loaded = load_upstream_model_dir(model_dir, turn_embedding="parity")
    assert loaded.config.variant == EXPECTED_VARIANT[name]
    assert loaded.config.pad_id == 0
    if loaded.config.is_dialog:
        assert (loaded.config.spk_a_id, loaded.config.spk_b_id) == (360, 361)
    _, _, velocity = _run(loaded.network, data["inputs"])
    assert _max_err(velocity, data["outputs"]["velocity"]) < TOLERANCE
    with pytest.raises(Exception, match="not 'dialog_stereo'"):
        load_upstream_model_dir(model_dir, variant="dialog_stereo")


@pytest.mark.parametrize("variant", ["zipvoice", "distill", "dialog", "dialog_stereo"])
def test_full_size_keys_and_shapes(fixture_dir: Path, variant: str) -> None:
    reference = json.loads((fixture_dir / "full_size_parameter_shapes.json").read_text())
    upstream_name = {v: k for k, v in EXPECTED_VARIANT.items()}[variant]
    with torch.device("meta"):
        net = DialogTTSNetwork(preset("base", variant=variant))
    ours = parameter_shapes(net)
    assert sorted(set(reference[upstream_name]) - set(ours)) == []  # missing
    assert sorted(set(ours) - set(reference[upstream_name])) == []  # unexpected
    assert ours == reference[upstream_name]
    # released models: 123 M parameters
    assert 122_000_000 < net.num_parameters() < 124_000_000


def test_strict_loading_lists_every_problem(fixture_dir: Path) -> None:
    data = _load(fixture_dir, "zipvoice_dialog")
    net = _network(data)
    state = dict(data["state_dict"])
    state.pop("spk_embed.weight")
    state["fm_decoder.extra.weight"] = torch.zeros(1)
    state["embed.weight"] = state["embed.weight"][:360]
    with pytest.raises(CheckpointKeyError) as info:
        load_network_state(net, state)
    assert info.value.missing == ["spk_embed.weight"]
    assert info.value.unexpected == ["fm_decoder.extra.weight"]
    assert [m[0] for m in info.value.mismatched] == ["embed.weight"]
    # DDP-prefixed checkpoints load through the key normalisation
    load_network_state(net, {f"module.{k}": v for k, v in data["state_dict"].items()})
    # a key map renames explicitly
    renamed = dict(data["state_dict"])
    renamed["speaker_table"] = renamed.pop("spk_embed.weight")
    load_network_state(net, renamed, key_map={"speaker_table": "spk_embed.weight"})


def test_dialog_from_zipvoice_extends_vocab(fixture_dir: Path) -> None:
    data = _load(fixture_dir, "zipvoice")
    state = dialog_from_zipvoice(data["state_dict"], generator=torch.Generator().manual_seed(0))
    assert state["embed.weight"].shape[0] == 360 + 28
    assert torch.equal(state["embed.weight"][:360], data["state_dict"]["embed.weight"])
    config = NetworkConfig.from_upstream_json(data["config"], vocab_size=388, variant="dialog")
    net = DialogTTSNetwork(config)
    load_network_state(net, state)
    net.eval()
    # the text path of non-dialogue tokens only differs by the added turn embedding
    tokens = data["inputs"]["tokens"]
    with torch.no_grad():
        tc, _ = net.forward_text_train(tokens, data["inputs"]["features_lens"])
    untagged_row = state["spk_embed.weight"][0]
    expected = data["outputs"]["text_condition"] + untagged_row
    # frames of the trailing pad token get no turn embedding
    pad_frames = tc.new_zeros(tc.shape[:2], dtype=torch.bool)
    for b, seq in enumerate(tokens):
        per = int(data["inputs"]["features_lens"][b]) // len(seq)
        pad_frames[b, per * len(seq) :] = True
    assert _max_err(tc[~pad_frames], expected[~pad_frames]) < TOLERANCE
    assert _max_err(tc[pad_frames], data["outputs"]["text_condition"][pad_frames]) < TOLERANCE


def test_init_stereo_from_dialog_keeps_mono_behaviour(fixture_dir: Path) -> None:
    data = _load(fixture_dir, "zipvoice_dialog")
    mono = _network(data)
    stereo = DialogTTSNetwork(mono.config.replace(variant="dialog_stereo"))
    load_network_state(stereo, init_stereo_from_dialog(data["state_dict"]))
    stereo.eval()
    inputs = data["inputs"]
    _, _, v_mono = _run(mono, inputs)
    # the mono path of the stereo network is the dialog network
    _, _, v_stereo_mono = _run(stereo, inputs)
    assert _max_err(v_stereo_mono, v_mono) < 1e-6
    # identical left/right channels reproduce the mono velocity on both channels
    dup = dict(inputs)
    dup["xt"] = torch.cat([inputs["xt"], inputs["xt"]], dim=-1)
    dup["speech_condition"] = torch.cat([inputs["speech_condition"]] * 2, dim=-1)
    _, _, v_dup = _run(stereo, dup)
    assert _max_err(v_dup, torch.cat([v_mono, v_mono], dim=-1)) < TOLERANCE


def test_guided_pair_side_by_side_equals_the_doubled_batch(fixture_dir: Path):
    """The CPU default runs a guided step's two passes on two threads; on upstream's tiny
    dialogue network the sample equals the one-doubled-batch path's up to float rounding."""
    from model.network.flow import sample

    data = _load(fixture_dir, "zipvoice_dialog")
    net = _network(data)
    inputs = data["inputs"]
    with torch.no_grad():
        text_condition, padding_mask = net.forward_text_train(
            inputs["tokens"], inputs["features_lens"]
        )
    kwargs = {
        "noise": torch.randn(inputs["xt"].shape, generator=torch.Generator().manual_seed(3)),
        "text_condition": text_condition,
        "speech_condition": inputs["speech_condition"],
        "padding_mask": padding_mask,
        "num_steps": 4,
        "guidance_scale": 1.5,
    }
    doubled = sample(net, pair_side_by_side=False, **kwargs)
    apart = sample(net, pair_side_by_side=True, **kwargs)
    assert _max_err(doubled, apart) <= 1e-5
    assert doubled.abs().max() > 0.1  # a real output, not zeros
