"""``python -m model.export_upstream`` (issue 18, item 2): our checkpoint in upstream's layout,
read back by our upstream-checkpoint loader with the same outputs, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.export.upstream_layout import ExportRefused, export_upstream, main
from model.network.checkpoint import (
    load_checkpoint,
    load_upstream_model_dir,
    read_token_table,
    save_checkpoint,
)
from model.network.config import NetworkConfig
from model.network.zipvoice import DialogTTSNetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tokens() -> dict[str, int]:
    table = {"_": 0, "[S1]": 360, "[S2]": 361}
    table.update({chr(ord("a") + i): i + 1 for i in range(26)})
    return table


def _model_dir(tmp_path: Path, upstream_fixtures: Path, **changes) -> Path:
    tiny = torch.load(upstream_fixtures / "tiny_zipvoice_dialog.pt", weights_only=True)
    config = NetworkConfig.from_upstream_json(
        tiny["config"], vocab_size=388, variant="dialog", turn_embedding="parity"
    ).replace(**changes)
    torch.manual_seed(0)
    net = DialogTTSNetwork(config)
    if "feat_dim" not in changes and "guidance_input" not in changes:
        net.load_state_dict(tiny["state_dict"])
    return save_checkpoint(net, tmp_path / "ours", _tokens())


def _outputs(net: DialogTTSNetwork, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    net.eval()
    with torch.no_grad():
        tc, mask = net.forward_text_train(inputs["tokens"], inputs["features_lens"])
        v = net.forward_fm_decoder(inputs["t"], inputs["xt"], tc, inputs["speech_condition"], mask)
    return tc, v


def test_round_trip(tmp_path: Path, upstream_fixtures: Path) -> None:
    model_dir = _model_dir(tmp_path, upstream_fixtures)
    out = tmp_path / "export"
    assert main(["--model-dir", str(model_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt", "tokens.txt"]
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["feature"] == {"type": "vocos", "sampling_rate": 24000}
    assert "vocab_size" not in model_json["model"]  # upstream takes it from tokens.txt
    table = read_token_table(out / "tokens.txt")
    assert len(table) == 388 and sorted(table.values()) == list(range(388))
    assert (table["_"], table["[S1]"], table["[S2]"]) == (0, 360, 361)
    assert list(torch.load(out / "model.pt", weights_only=True)) == ["model"]
    loaded = load_upstream_model_dir(out, turn_embedding="parity")
    tiny = torch.load(upstream_fixtures / "tiny_zipvoice_dialog.pt", weights_only=True)
    original = load_checkpoint(model_dir).network
    for a, b in zip(_outputs(original, tiny["inputs"]), _outputs(loaded.network, tiny["inputs"])):
        assert torch.equal(a, b)
    # and the weights are upstream's fixture, so the export reproduces upstream's velocity
    _, v = _outputs(loaded.network, tiny["inputs"])
    assert float((v - tiny["outputs"]["velocity"]).abs().max()) < 1e-4


def test_tag_rule_needs_consent(tmp_path: Path, upstream_fixtures: Path) -> None:
    model_dir = _model_dir(tmp_path, upstream_fixtures, turn_embedding="tag")
    with pytest.raises(ExportRefused, match="counts tags"):
        export_upstream(model_dir, tmp_path / "a")
    assert main(["--model-dir", str(model_dir), "--out", str(tmp_path / "a")]) == 2
    export_upstream(model_dir, tmp_path / "b", allow_turn_rule_difference=True)
    assert (tmp_path / "b" / "model.pt").is_file()


@pytest.mark.parametrize(
    "changes,message",
    [({"feat_dim": 80}, "100-bin"), ({"guidance_input": True}, "guidance")],
)
def test_refusals(tmp_path: Path, upstream_fixtures: Path, changes: dict, message: str) -> None:
    model_dir = _model_dir(tmp_path, upstream_fixtures, **changes)
    with pytest.raises(ExportRefused, match=message):
        export_upstream(model_dir, tmp_path / "x")
