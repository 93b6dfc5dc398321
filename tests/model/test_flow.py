"""Flow matching: masks, loss, CFG sampler and SE loss, with toy estimators (shape/logic tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.network.flow import (
    FlowMatchingLoss,
    FlowOptions,
    draw_noise,
    draw_training_inputs,
    flow_matching_terms,
    make_pad_mask,
    sample,
    speaker_exclusive_loss,
    target_mask,
    timesteps,
)

FEAT = 6


class PerFrameEstimator(nn.Module):
    """A per-frame MLP: no mixing across frames, so padding and other frames cannot leak in."""

    def __init__(self, feat_dim: int = FEAT, text_dim: int = FEAT, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(2 * feat_dim + text_dim + 1, 32), nn.Tanh(), nn.Linear(32, feat_dim)
        )
        self.embed = nn.Embedding(20, text_dim)

    def forward_fm_decoder(
        self, t, xt, text_condition, speech_condition, padding_mask=None, guidance_scale=None
    ):
        tt = t.expand(xt.size(0), xt.size(1), 1).to(xt.dtype)
        return self.net(torch.cat([xt, text_condition, speech_condition, tt], dim=-1))

    def forward_text_train(self, tokens, features_lens):
        """Average upsampling of token embeddings (like ZipVoice, without an encoder)."""
        max_len = int(features_lens.max())
        rows = []
        for toks, n in zip(tokens, features_lens.tolist()):
            emb = self.embed(torch.tensor(toks))
            idx = torch.clamp(torch.arange(max_len) * len(toks) // max(n, 1), max=len(toks) - 1)
            rows.append(emb[idx])
        return torch.stack(rows), make_pad_mask(features_lens, max_len)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("kind,lo,hi", [("suffix", 0.5, 1.0), ("span", 0.7, 1.0)])
def test_target_mask_fraction_contiguity_and_padding(kind, lo, hi):
    gen = torch.Generator().manual_seed(0)
    lens = torch.randint(5, 300, (400,), generator=gen)
    mask = target_mask(lens, 320, kind=kind, min_frac=lo, max_frac=hi, generator=gen)
    assert mask.shape == (400, 320) and mask.dtype == torch.bool
    assert not (mask & make_pad_mask(lens, 320)).any()
    frac = mask.sum(1).float() / lens.float()
    assert frac.min() >= lo - 1.0 / 5 and frac.max() <= hi + 1e-6
    # the drawn fractions cover the range
    assert frac.min() < lo + 0.05 and frac.max() > hi - 0.05
    starts = mask.float().argmax(1)
    for row, start, n in zip(mask, starts.tolist(), mask.sum(1).tolist()):
        assert row[start : start + n].all()  # one contiguous run
    ends = starts + mask.sum(1)
    if kind == "suffix":
        assert torch.equal(ends, lens)  # the prompt is a prefix
    else:
        assert (starts > 0).any() and (ends < lens).any()  # random position


def test_for_mode_presets_and_validation():
    assert FlowOptions.for_mode("single").mask_kind == "span"
    dialog = FlowOptions.for_mode("dialog")
    assert (dialog.mask_kind, dialog.mask_min_frac, dialog.text_drop_prob) == ("suffix", 0.5, 0.2)
    with pytest.raises(ValueError, match="mask fractions"):
        FlowOptions(mask_min_frac=0.8, mask_max_frac=0.5)
    with pytest.raises(ValueError, match="mode"):
        FlowOptions.for_mode("trio")


def test_text_dropout_rate():
    gen = torch.Generator().manual_seed(1)
    feats = torch.zeros(4000, 3, 2)
    draw = draw_training_inputs(feats, torch.full((4000,), 3), FlowOptions(), generator=gen)
    assert draw.t.shape == (4000, 1, 1) and draw.noise.shape == feats.shape
    dropped = 1.0 - draw.text_keep.mean().item()
    assert 0.17 < dropped < 0.23


# ---------------------------------------------------------------- loss


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor([40, 25, 33])
    feats = torch.randn(3, 40, FEAT, generator=gen).masked_fill(
        make_pad_mask(lens, 40).unsqueeze(-1), 0.0
    )
    draw = draw_training_inputs(feats, lens, FlowOptions.for_mode("dialog"), generator=gen)
    return feats, lens, draw


def test_loss_matches_formula_and_ignores_prompt_and_padding():
    est = PerFrameEstimator()
    feats, lens, draw = _batch()
    text = torch.randn(3, 40, FEAT)
    pad = make_pad_mask(lens, 40)

    def loss_for(noise):
        return flow_matching_terms(
            est,
            features=feats,
            text_condition=text,
            padding_mask=pad,
            t=draw.t,
            noise=noise,
            target_mask=draw.target_mask,
        )["fm_loss"]

    base = loss_for(draw.noise)
    # by hand
    xt = draw.t * feats + (1 - draw.t) * draw.noise
    sc = feats.masked_fill(draw.target_mask.unsqueeze(-1), 0)
    v = est.forward_fm_decoder(draw.t, xt, text, sc, pad)
    sel = draw.target_mask & ~pad
    manual = ((v - (feats - draw.noise))[sel] ** 2).mean()
    assert torch.allclose(base, manual, atol=1e-6)

    # changing the noise on prompt or padding frames leaves the loss unchanged
    outside = ~sel
    assert outside.any() and pad.any() and (~draw.target_mask & ~pad).any()
    noise2 = draw.noise + 5.0 * outside.unsqueeze(-1)
    assert torch.allclose(loss_for(noise2), base, atol=1e-6)
    # changing it on one target frame changes it
    noise3 = draw.noise.clone()
    b, f = sel.nonzero()[0].tolist()
    noise3[b, f] += 5.0
    assert not torch.allclose(loss_for(noise3), base)


def test_prompt_frames_feed_speech_condition_not_target_frames():
    seen = {}

    class Spy(PerFrameEstimator):
        def forward_fm_decoder(self, t, xt, text_condition, speech_condition, **kw):
            seen["sc"] = speech_condition
            return super().forward_fm_decoder(t, xt, text_condition, speech_condition, **kw)

    feats, lens, draw = _batch(1)
    flow_matching_terms(
        Spy(),
        features=feats,
        text_condition=torch.zeros(3, 40, FEAT),
        padding_mask=make_pad_mask(lens, 40),
        t=draw.t,
        noise=draw.noise,
        target_mask=draw.target_mask,
    )
    sc = seen["sc"]
    assert (sc[draw.target_mask] == 0).all()
    prompt = ~draw.target_mask & ~make_pad_mask(lens, 40)
    assert torch.equal(sc[prompt], feats[prompt])


def test_flow_matching_loss_module_drops_text_and_backprops():
    est = PerFrameEstimator()
    loss_fn = FlowMatchingLoss(est, FlowOptions.for_mode("dialog"))
    feats, lens, draw = _batch(2)
    tokens = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    kw = {"t": draw.t, "noise": draw.noise, "target_mask": draw.target_mask}
    keep = torch.ones(3, 1, 1)
    out = loss_fn(tokens, feats, lens, text_keep=keep, **kw)
    out["loss"].backward()
    assert est.embed.weight.grad.abs().sum() > 0
    assert out["se_loss"] == 0 and out["num_frames"] > 0
    # a dropped text condition = zeroed text condition
    drop = torch.zeros(3, 1, 1)
    dropped = loss_fn(tokens, feats, lens, text_keep=drop, **kw)["fm_loss"]
    direct = flow_matching_terms(
        est,
        features=feats,
        text_condition=torch.zeros(3, 40, FEAT),
        padding_mask=make_pad_mask(lens, 40),
        **kw,
    )["fm_loss"]
    assert torch.allclose(dropped, direct)


# ---------------------------------------------------------------- SE loss


def test_speaker_exclusive_loss_by_hand():
    m = 2
    x1 = torch.zeros(1, 4, 2 * m)
    x1[0, :, :m] = torch.tensor([0.0, 1.0, 2.0, 3.0]).unsqueeze(-1)  # left energies
    x1[0, :, m:] = torch.tensor([3.0, 2.0, 1.0, 0.0]).unsqueeze(-1)  # right energies
    # tau = upstream's quantile(0.5) of [0,1,2,3,3,2,1,0]: between the middle values 1 and 2
    est = torch.zeros(1, 4, 2 * m)
    est[0, :, :m] = torch.tensor([2.0, 3.0, 0.0, 5.0]).unsqueeze(-1)
    est[0, :, m:] = torch.tensor([4.0, 0.5, 3.0, 2.0]).unsqueeze(-1)
    mask = torch.tensor([[True, True, True, False]])
    loss = speaker_exclusive_loss(est, x1, mask)
    # tau 1.5; frame 0: (2-1.5)(4-1.5); frame 1: right 0.5 < tau; frame 2: left 0 < tau;
    # frame 3 unmasked
    assert loss.item() == pytest.approx(0.5 * 2.5 / 3.0)
    # no overlap -> no penalty
    est2 = est.clone()
    est2[0, 0, m:] = 0.0
    assert speaker_exclusive_loss(est2, x1, mask).item() == 0.0
    # as upstream, the batch's padding frames (zero features) enter the threshold: two more
    # frames of zeros move tau to 0.5 (12 energies, six of them 0)
    x1_pad = torch.cat([x1, torch.zeros(1, 2, 2 * m)], dim=1)
    est_pad = torch.cat([est, torch.zeros(1, 2, 2 * m)], dim=1)
    mask_pad = torch.cat([mask, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    expected = (2.0 - 0.5) * (4.0 - 0.5) / 3.0
    assert speaker_exclusive_loss(est_pad, x1_pad, mask_pad).item() == pytest.approx(expected)


def test_stereo_batch_adds_se_loss():
    est = PerFrameEstimator(feat_dim=2 * FEAT, text_dim=FEAT)
    loss_fn = FlowMatchingLoss(est, FlowOptions.for_mode("stereo"))
    gen = torch.Generator().manual_seed(3)
    lens = torch.tensor([30, 30])
    feats = torch.randn(2, 30, 2 * FEAT, generator=gen)
    draw = draw_training_inputs(feats, lens, loss_fn.options, generator=gen)
    out = loss_fn([[1, 2], [3, 4]], feats, lens, **vars(draw))
    assert out["se_loss"] > 0
    assert torch.allclose(out["loss"], out["fm_loss"] + out["se_loss"])


# ---------------------------------------------------------------- sampler


def test_timesteps_warp():
    ts = timesteps(16, 0.5)
    u = torch.linspace(0, 1, 17)
    assert torch.allclose(ts, 0.5 * u / (1 - 0.5 * u))
    assert ts[0] == 0 and ts[-1] == 1 and (ts.diff() > 0).all()
    assert (ts.diff()[:8] < ts.diff()[8:].min()).all()  # denser near the noise end
    assert torch.allclose(timesteps(4, 1.0), torch.linspace(0, 1, 5))


class Oracle(nn.Module):
    """Knows x1: the exact velocity of the straight path through x_t ends at x1."""

    def __init__(self, x1):
        super().__init__()
        self.x1 = x1

    def forward_fm_decoder(
        self, t, xt, text_condition, speech_condition, padding_mask=None, guidance_scale=None
    ):
        x1 = self.x1.repeat(xt.size(0) // self.x1.size(0), 1, 1)
        return (x1 - xt) / (1 - t).clamp(min=1e-6)


@pytest.mark.parametrize("w", [0.0, 1.5])
def test_sampler_integrates_to_data(w):
    x1 = torch.randn(2, 10, FEAT)
    pad = torch.zeros(2, 10, dtype=torch.bool)
    pad[1, 7:] = True
    out = sample(
        Oracle(x1),
        noise=torch.randn(2, 10, FEAT),
        text_condition=torch.ones(2, 10, 3),
        speech_condition=torch.zeros(2, 10, FEAT),
        padding_mask=pad,
        num_steps=8,
        guidance_scale=w,
    )
    assert torch.allclose(out[0], x1[0], atol=1e-4)
    assert torch.allclose(out[1, :7], x1[1, :7], atol=1e-4) and (out[1, 7:] == 0).all()


class Recorder(nn.Module):
    """v = 1 where the text condition is on, + 10 where the speech condition is on."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward_fm_decoder(
        self, t, xt, text_condition, speech_condition, padding_mask=None, guidance_scale=None
    ):
        self.calls.append((t.flatten()[0].item(), xt.size(0), guidance_scale))
        on_text = (text_condition.abs().sum((1, 2)) > 0).float().view(-1, 1, 1)
        on_speech = (speech_condition.abs().sum((1, 2)) > 0).float().view(-1, 1, 1)
        return torch.ones_like(xt) * (on_text + 10 * on_speech)


@pytest.mark.parametrize("side_by_side", [False, True])
def test_time_dependent_cfg(side_by_side):
    rec, g, steps = Recorder(), 0.7, 8
    kw = {
        "noise": torch.zeros(3, 5, 2),
        "text_condition": torch.ones(3, 5, 2),
        "speech_condition": torch.ones(3, 5, 2),
        "padding_mask": torch.zeros(3, 5, dtype=bool),
    }
    threads = torch.get_num_threads()
    out = sample(
        rec,
        num_steps=steps,
        t_shift=0.5,
        guidance_scale=g,
        pair_side_by_side=side_by_side,
        **kw,
    )
    assert torch.get_num_threads() == threads  # the side-by-side passes restore it
    ts = timesteps(steps, 0.5)
    expected = 0.0
    for i in range(steps):
        v_cond = 11.0
        if ts[i] > 0.5:  # drops text and speech, plain w
            v = (1 + g) * v_cond - g * 0.0
        else:  # drops text only, doubled w
            v = (1 + 2 * g) * v_cond - 2 * g * 10.0
        expected += float(ts[i + 1] - ts[i]) * v
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-4)
    # one doubled batch per step, or the two passes of the pair apart
    assert len(rec.calls) == steps * (2 if side_by_side else 1)
    assert all(n == (3 if side_by_side else 6) and gs is None for _, n, gs in rec.calls)
    assert any(t > 0.5 for t, _, _ in rec.calls) and any(t <= 0.5 for t, _, _ in rec.calls)


def test_distill_passes_guidance_without_doubling():
    rec = Recorder()
    kw = {
        "noise": torch.zeros(2, 5, 2),
        "text_condition": torch.ones(2, 5, 2),
        "speech_condition": torch.ones(2, 5, 2),
        "padding_mask": torch.zeros(2, 5, dtype=bool),
    }
    out = sample(rec, num_steps=4, guidance_scale=3.0, distill=True, **kw)
    assert len(rec.calls) == 4
    for _, n, gs in rec.calls:
        assert n == 2 and gs.shape == (2, 1, 1) and torch.all(gs == 3.0)
    assert torch.allclose(out, torch.full_like(out, 11.0))


def test_batched_and_single_sampling_agree_under_a_seed():
    est = PerFrameEstimator(seed=4)
    lens = [23, 14]
    text = torch.randn(2, 23, FEAT)
    speech = torch.randn(2, 23, FEAT)
    speech[:, 5:] = 0
    pad = make_pad_mask(torch.tensor(lens), 23)
    noise = draw_noise(lens, FEAT, seed=123)
    both = sample(
        est,
        noise=noise,
        text_condition=text,
        speech_condition=speech,
        padding_mask=pad,
        num_steps=6,
        guidance_scale=1.5,
    )
    for i, n in enumerate(lens):
        one = sample(
            est,
            noise=draw_noise([n], FEAT, seed=123),
            text_condition=text[i : i + 1, :n],
            speech_condition=speech[i : i + 1, :n],
            padding_mask=torch.zeros(1, n, dtype=torch.bool),
            num_steps=6,
            guidance_scale=1.5,
        )
        assert torch.allclose(both[i, :n], one[0], atol=1e-5)
    # a different seed gives a different sample
    other = draw_noise(lens, FEAT, seed=124)
    assert not torch.allclose(other, noise)
    assert (noise[1, 14:] == 0).all()
