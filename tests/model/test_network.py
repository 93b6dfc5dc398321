"""DialogTTSNetwork on the tiny preset: configuration I/O, text path rules (average
upsampling, speaker-turn embedding), decoder input handling, training, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.network.checkpoint import (
    CheckpointError,
    CheckpointKeyError,
    load_checkpoint,
    resolve_model_dir,
    save_checkpoint,
)
from model.network.config import NetworkConfig, preset
from model.network.zipformer import set_batch_count
from model.network.zipvoice import DialogTTSNetwork, average_upsample_index

S1, S2 = 360, 361


# tiny models gain nothing from intra-op threads and lose a lot on a loaded machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(variant: str = "dialog", seed: int = 0, **overrides) -> DialogTTSNetwork:
    torch.manual_seed(seed)
    return DialogTTSNetwork(preset("tiny", variant=variant, **overrides)).eval()


# ---------------------------------------------------------------------- config


def test_config_json_round_trip(tmp_path: Path) -> None:
    config = preset("tiny", variant="dialog_stereo", turn_embedding="parity")
    config.to_json(tmp_path / "c.json")
    assert NetworkConfig.from_json(tmp_path / "c.json") == config
    with pytest.raises(ValueError, match="unknown NetworkConfig fields"):
        NetworkConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_config_from_upstream_json(upstream_fixtures: Path) -> None:
    path = upstream_fixtures / "zipvoice_base_config.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    model_json = json.loads(path.read_text())
    config = NetworkConfig.from_upstream_json(model_json, vocab_size=388, variant="dialog")
    assert config == preset("base", variant="dialog")
    assert config.upstream_model_dict() == model_json["model"]
    with pytest.raises(ValueError, match="missing"):
        NetworkConfig.from_upstream_json({"model": {"feat_dim": 100}}, vocab_size=10)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="variant"):
        preset("tiny", variant="mono")
    with pytest.raises(ValueError, match="turn_embedding"):
        preset("tiny", turn_embedding="count")
    with pytest.raises(ValueError, match="speaker tag ids"):
        preset("tiny", vocab_size=100)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


@pytest.mark.parametrize("variant", ["zipvoice", "distill", "dialog", "dialog_stereo"])
def test_tiny_preset_size(variant: str) -> None:
    net = DialogTTSNetwork(preset("tiny", variant=variant))
    assert net.config.feat_dim == 80
    assert 1_000_000 < net.num_parameters() <= 2_000_000


# ---------------------------------------------------------------------- text path


def test_average_upsampling_rule() -> None:
    # 3 tokens over 10 frames: 3 frames each, the leftover frame and the batch padding
    # (second item: 2 tokens over 5 frames) go to the appended pad token.
    index = average_upsample_index(torch.tensor([3, 2]), torch.tensor([10, 5]), 10)
    assert index.tolist() == [
        [0, 0, 0, 1, 1, 1, 2, 2, 2, 3],
        [0, 0, 1, 1, 2, 2, 2, 2, 2, 2],
    ]
    # fewer frames than tokens: everything takes the pad token (upstream's behaviour)
    assert average_upsample_index(torch.tensor([4]), torch.tensor([3]), 3).tolist() == [[4, 4, 4]]


def test_text_condition_is_piecewise_constant_per_token() -> None:
    net = _tiny("zipvoice")
    tokens = [[5, 6, 7, 8], [9, 10]]
    lens = torch.tensor([13, 7])
    with torch.no_grad():
        embed, _tokens_lens = net.forward_text_embed(tokens)
        cond, pad = net.forward_text_train(tokens, lens)
    assert cond.shape == (2, 13, 80) and pad.tolist()[1] == [False] * 7 + [True] * 6
    assert torch.equal(cond[0, 0:3], embed[0, 0].expand(3, -1))
    assert torch.equal(cond[0, 9:12], embed[0, 3].expand(3, -1))
    assert torch.equal(cond[0, 12], embed[0, 4])  # leftover frame: pad token
    assert torch.equal(cond[1, 6:], embed[1, 2].expand(7, -1))


def test_turn_rows_tag_rule() -> None:
    net = _tiny("dialog")
    tokens = torch.tensor([[7, S1, 5, 6, S2, 8, S2, 9, S1, 4, 0, 0]])
    rows = net.turn_rows(tokens)
    # before any tag: row 0; [S1] -> row 1, [S2] -> row 0; pad: none (-1)
    assert rows.tolist() == [[0, 1, 1, 1, 0, 0, 0, 0, 1, 1, -1, -1]]
    swapped = torch.where(tokens == S1, S2, torch.where(tokens == S2, S1, tokens))
    swapped_rows = net.turn_rows(swapped)
    tagged = torch.arange(tokens.size(1)) >= 1
    assert torch.equal(
        swapped_rows[0, tagged & (tokens[0] != 0)], 1 - rows[0, tagged & (tokens[0] != 0)]
    )


def test_swapping_tags_swaps_turn_embedding_rows() -> None:
    """End to end: with [S1]/[S2] token embeddings made equal, swapping the tags in the
    text equals swapping the two rows of the turn table."""
    net = _tiny("dialog")
    with torch.no_grad():
        net.embed.weight[S2] = net.embed.weight[S1]
    text = [S1, 5, 6, 7, S2, 8, 9, S1, 10, S2, 11, 12]
    swapped = [S2 if t == S1 else S1 if t == S2 else t for t in text]
    lens = torch.tensor([40])
    with torch.no_grad():
        a, _ = net.forward_text_train([text], lens)
        b, _ = net.forward_text_train([swapped], lens)
        assert (a - b).abs().max() > 1e-3  # the turn embedding does change the condition
        net.spk_embed.weight.copy_(net.spk_embed.weight.flip(0))
        c, _ = net.forward_text_train([swapped], lens)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-6)


def test_tag_and_parity_agree_on_alternating_tags_from_s1() -> None:
    tag = _tiny("dialog", seed=1)
    parity = _tiny("dialog", seed=1, turn_embedding="parity")
    gen = torch.Generator().manual_seed(0)
    batch = []
    for _ in range(8):
        seq = [int(x) for x in torch.randint(3, 300, (2,), generator=gen)]
        for turn in range(int(torch.randint(1, 6, (1,), generator=gen))):
            seq.append(S1 if turn % 2 == 0 else S2)
            seq += [int(x) for x in torch.randint(3, 300, (3,), generator=gen)]
        batch.append(seq)
    padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in batch], batch_first=True)
    assert torch.equal(tag.turn_rows(padded), parity.turn_rows(padded))
    lens = torch.tensor([60] * len(batch))
    with torch.no_grad():
        torch.testing.assert_close(
            tag.forward_text_train(batch, lens)[0], parity.forward_text_train(batch, lens)[0]
        )


def test_tag_and_parity_differ_where_documented() -> None:
    tag = _tiny("dialog")
    parity = _tiny("dialog", turn_embedding="parity")
    # prompt with an odd number of turns, then the target starts with [S1]
    odd_prompt = torch.tensor([[S1, 5, S2, 6, S1, 7, S1, 8]])
    assert tag.turn_rows(odd_prompt)[0, 6:].tolist() == [1, 1]
    assert parity.turn_rows(odd_prompt)[0, 6:].tolist() == [0, 0]
    # non-alternating tags
    repeated = torch.tensor([[S1, 5, S1, 6]])
    assert tag.turn_rows(repeated).tolist() == [[1, 1, 1, 1]]
    assert parity.turn_rows(repeated).tolist() == [[1, 1, 0, 0]]


def test_inference_text_paths() -> None:
    net = _tiny("dialog")
    prompt = [[S1, 5, 6, S2, 7, 8], [S1, 9, S2, 10]]
    target = [[S1, 11, 12, 13], [S1, 14, S2, 15, 16, 17]]
    prompt_lens = torch.tensor([30, 17])
    total = net.predict_total_frames(target, prompt, prompt_lens, speed=1.0)
    assert total.tolist() == [30 + 20, 17 + 26]  # 30 + ceil(30/6*4), 17 + ceil(17/4*6)
    assert net.predict_total_frames(target, prompt, prompt_lens, speed=2.0).tolist() == [40, 30]
    with torch.no_grad():
        ratio = net.forward_text_inference_ratio_duration(target, prompt, prompt_lens)
        cat = [p + t for p, t in zip(prompt, target)]
        direct = net.forward_text_train(cat, total)
        gt = net.forward_text_inference_gt_duration(
            target, total - prompt_lens, prompt, prompt_lens
        )
    for got in (ratio, gt):
        assert torch.equal(got[0], direct[0]) and torch.equal(got[1], direct[1])
    assert (~ratio[1]).sum(1).tolist() == total.tolist()


# ---------------------------------------------------------------------- decoder


def test_time_forms_are_equivalent() -> None:
    net = _tiny("zipvoice")
    x = torch.randn(2, 11, 80)
    cond = torch.randn(2, 11, 80)
    speech = torch.randn(2, 11, 80)
    with torch.no_grad():
        v_b11 = net.forward_fm_decoder(torch.full((2, 1, 1), 0.3), x, cond, speech)
        v_b = net.forward_fm_decoder(torch.full((2,), 0.3), x, cond, speech)
        v_scalar = net.forward_fm_decoder(torch.tensor(0.3), x, cond, speech)
        v_float = net.forward_fm_decoder(0.3, x, cond, speech)
    for v in (v_b, v_scalar, v_float):
        assert torch.equal(v, v_b11)
    with pytest.raises(ValueError, match="distill"):
        net.forward_fm_decoder(0.3, x, cond, speech, guidance_scale=1.0)


def test_stereo_picks_projection_by_width() -> None:
    net = _tiny("dialog_stereo")
    cond = torch.randn(1, 9, 80)
    with torch.no_grad():
        mono = net.forward_fm_decoder(0.5, torch.randn(1, 9, 80), cond, torch.randn(1, 9, 80))
        stereo = net.forward_fm_decoder(0.5, torch.randn(1, 9, 160), cond, torch.randn(1, 9, 160))
    assert mono.shape == (1, 9, 80) and stereo.shape == (1, 9, 160)
    with pytest.raises(ValueError, match="input width"):
        net.forward_fm_decoder(0.5, torch.randn(1, 9, 40), cond, torch.randn(1, 9, 40))


def test_distill_guidance_scale_changes_velocity() -> None:
    net = _tiny("distill")
    args = (0.4, torch.randn(1, 12, 80), torch.randn(1, 12, 80), torch.randn(1, 12, 80))
    with torch.no_grad():
        v1 = net.forward_fm_decoder(*args, guidance_scale=1.0)
        v3 = net.forward_fm_decoder(*args, guidance_scale=torch.tensor([[[3.0]]]))
    assert (v1 - v3).abs().max() > 1e-4


def test_padding_frames_do_not_affect_valid_frames() -> None:
    net = _tiny("dialog")
    tokens = [[S1, 5, 6, 7, S2, 8, 9]]
    with torch.no_grad():
        cond, pad = net.forward_text_train(tokens, torch.tensor([20]))
        x, speech = torch.randn(1, 20, 80), torch.randn(1, 20, 80)
        v = net.forward_fm_decoder(0.5, x, cond, speech, pad)
        cond_long, _ = net.forward_text_train(tokens * 2, torch.tensor([20, 26]))
        x_long = torch.cat([x, torch.randn(1, 6, 80) * 5], dim=1)
        speech_long = torch.cat([speech, torch.randn(1, 6, 80) * 5], dim=1)
        pad_long = torch.arange(26).unsqueeze(0) >= 20
        v_long = net.forward_fm_decoder(0.5, x_long, cond_long[:1], speech_long, pad_long)
    torch.testing.assert_close(v_long[:, :20], v, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- training


def _loss(net: DialogTTSNetwork, batch: dict) -> torch.Tensor:
    velocity, pad = net(
        batch["tokens"], batch["lens"], batch["t"], batch["xt"], batch["speech"], batch["keep"]
    )
    return ((velocity - batch["target"]) ** 2)[~pad].mean()


def _batch(feat_dim: int = 80) -> dict:
    gen = torch.Generator().manual_seed(3)
    lens = torch.tensor([30, 24])
    return {
        "tokens": [[S1, 5, 6, 7, S2, 8, 9, 10], [S1, 11, 12, S2, 13]],
        "lens": lens,
        "t": torch.rand(2, 1, 1, generator=gen),
        "xt": torch.randn(2, 30, feat_dim, generator=gen),
        "speech": torch.randn(2, 30, feat_dim, generator=gen),
        "target": torch.randn(2, 30, feat_dim, generator=gen),
        "keep": torch.tensor([1.0, 1.0]),
    }


def test_gradients_reach_every_parameter_and_loss_drops(figure) -> None:
    net = _tiny("dialog").train()
    batch = _batch()
    loss = _loss(net, batch)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name != "embed.weight":
            assert p.grad.abs().sum() > 0, name
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = float(loss.detach())
    for _ in range(15):
        opt.zero_grad()
        loss = _loss(net, batch)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        figure("loss_ratio_after_15_steps", float(_loss(net, batch)) / first, at_most=0.8)


def test_training_schedules_run() -> None:
    """With a batch count set, the schedules (layer skipping, dropout...) are active in
    training; eval mode stays deterministic."""
    net = _tiny("dialog_stereo")
    set_batch_count(net, 1000)
    net.train()
    batch = _batch(feat_dim=160)
    torch.manual_seed(0)
    losses = [float(_loss(net, batch).detach()) for _ in range(3)]
    assert len(set(losses)) > 1  # random regularisation in training
    loss = _loss(net, batch)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    net.eval()
    with torch.no_grad():
        assert float(_loss(net, batch)) == float(_loss(net, batch))


# ---------------------------------------------------------------------- checkpoints


def test_save_and_load_our_checkpoint(tmp_path: Path) -> None:
    net = _tiny("distill", seed=4)
    table = {"_": 0, **{f"t{i}": i for i in range(1, 360)}}
    save_checkpoint(net, tmp_path / "ckpt", table)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == net.config and loaded.tokens == table
    batch = _batch()
    with torch.no_grad():
        a = net.forward_fm_decoder(0.2, batch["xt"], batch["speech"], batch["speech"], None, 2.0)
        b = loaded.network.forward_fm_decoder(
            0.2, batch["xt"], batch["speech"], batch["speech"], None, 2.0
        )
    assert torch.equal(a, b)
    # a directory whose weights belong to another variant is refused, listing the keys
    other = _tiny("zipvoice")
    save_checkpoint(other, tmp_path / "other", table)
    net.config.to_json(tmp_path / "other" / "network.json")
    with pytest.raises(CheckpointKeyError, match="guidance_scale_embed"):
        load_checkpoint(tmp_path / "other")


def test_hub_ids_fail_clearly_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="Hugging Face hub"):
        resolve_model_dir("k2-fsa/ZipVoice/zipvoice_dialog", cache_dir=tmp_path)
    assert resolve_model_dir(tmp_path) == tmp_path


@pytest.mark.parametrize("mask", ["none", "padding", "attn2d", "attn3d"])
def test_inference_attention_weights_equal_the_training_path(mask: str) -> None:
    """On CPU without autograd the weights are scored a block of query rows at a time; they
    must be what the whole-matrix path (training, export) computes."""
    from model.network.zipformer.attention import RelPositionMultiheadAttentionWeights

    torch.manual_seed(0)
    seq_len, batch, dim = 131, 2, 48  # 131 rows: the last block of 64 is short
    module = RelPositionMultiheadAttentionWeights(
        dim, pos_dim=16, num_heads=3, query_head_dim=8, pos_head_dim=4
    ).eval()
    x = torch.randn(seq_len, batch, dim) * 3
    pos_emb = torch.randn(1, 2 * seq_len - 1, 16)
    kwargs = {}
    if mask == "padding":
        lengths = torch.tensor([[seq_len], [90]])
        kwargs["key_padding_mask"] = torch.arange(seq_len).expand(batch, -1) >= lengths
    elif mask == "attn2d":
        kwargs["attn_mask"] = torch.rand(seq_len, seq_len) < 0.3
    elif mask == "attn3d":
        kwargs["attn_mask"] = torch.rand(batch, seq_len, seq_len) < 0.3
    whole = module(x, pos_emb, **kwargs).detach()  # autograd on: the whole-matrix path
    with torch.inference_mode():
        blocked = module(x, pos_emb, **kwargs)
    assert blocked.shape == (3, batch, seq_len, seq_len)
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-5)  # 2.4e-7 measured


@pytest.mark.parametrize("batch", [3, 9])  # 2 x 9 slices: one softmax a block, then a copy
@pytest.mark.parametrize("block", [1, 7, 64, 500])
def test_row_blocks_of_any_size_give_the_same_weights(block: int, batch: int) -> None:
    from model.network.zipformer.attention import relative_to_absolute, row_blocked_weights

    torch.manual_seed(1)
    heads, seq_len, dq, dp = 2, 45, 8, 4
    q, p = torch.randn(heads, batch, seq_len, dq), torch.randn(heads, batch, seq_len, dp)
    k, pos = torch.randn(heads, batch, dq, seq_len), torch.randn(heads, 1, dp, 2 * seq_len - 1)
    whole = (q @ k + relative_to_absolute(p @ pos)).softmax(-1)
    blocked = row_blocked_weights(q, k, p, pos, block=block)
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-5)  # 2.4e-7 measured


@pytest.mark.parametrize("activation", ["SwooshL", "SwooshR"])
def test_inference_activation_and_linear_equal_the_training_path(activation: str) -> None:
    """Inference computes the swoosh as log1p(exp()) in place and folds its constant into the
    bias; the outputs must be the autograd path's, past softplus's threshold (30) and where
    exp overflows (above 88) included."""
    from model.network.zipformer.scaling import ActivationDropoutAndLinear, swoosh_l, swoosh_r

    torch.manual_seed(0)
    module = ActivationDropoutAndLinear(64, 16, activation=activation, initial_scale=1.0).eval()
    x = torch.randn(50, 2, 64) * 4
    x[0, 0, :4] = torch.tensor([35.0, 95.0, 200.0, -120.0])
    reference = module(x).detach()  # autograd on: softplus, then the linear
    with torch.inference_mode():
        fast = module(x)
        swoosh = (swoosh_l if activation == "SwooshL" else swoosh_r)(x)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    slow = (swoosh_l if activation == "SwooshL" else swoosh_r)(x.requires_grad_()).detach()
    torch.testing.assert_close(swoosh, slow, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(fast).all()
