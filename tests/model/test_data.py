"""model.training.data on real dialogue cuts of the bundled sample: texts, batches, sharding, resume."""

from __future__ import annotations

import pytest
import torch

from core.dialogue_script import dialogue_text
from model.audio.features import FeatureConfig, MelExtractor
from model.training.data import (
    BatchStream,
    DataOptions,
    DialogTTSDataset,
    ShardedBatches,
    load_cuts,
    make_sampler,
    plain_text,
    store_features,
)
from tests.model.model_cuts import DIALOG_WINDOWS, make_dialog_cuts, make_stereo_cut


class CharTokenizer:
    """A stand-in tokenizer: one id per character, tags as one id."""

    def texts_to_token_ids(self, texts):
        out = []
        for text in texts:
            ids = []
            for piece in text.replace("[S1]", "\x01").replace("[S2]", "\x02"):
                ids.append(ord(piece) % 200 + 1)
            out.append(ids)
        return out


class IdsDataset(torch.utils.data.Dataset):
    def __getitem__(self, cuts):
        return [c.id for c in cuts]


@pytest.fixture(scope="module")
def extractor():
    return MelExtractor(FeatureConfig.offline())


def test_dialogue_text_from_turns_merges_same_speaker_runs():
    cut = make_dialog_cuts(with_custom_text=False)[0]
    text = dialogue_text(cut)
    # "Oh, hello." and "I didn't know ..." are two S1 turns in a row: one tagged run
    assert text == (
        "[S1] Hello? [S2] Hello? [S1] Oh, hello. I didn't know you were there. [S2] Neither did I."
    )
    assert plain_text(cut).startswith("Hello? Hello? Oh, hello.")


def test_dialogue_text_sources_and_errors():
    from lhotse import SupervisionSegment

    cut = make_dialog_cuts(with_custom_text=False)[1]
    cut.custom = {"text": "[S1] custom wins"}
    assert dialogue_text(cut) == "[S1] custom wins"
    # ZipVoice-style: one supervision holding the tagged text
    cut.custom = None
    sup = SupervisionSegment(
        id="x",
        recording_id="sample",
        start=0,
        duration=cut.duration,
        text="[S1] a. [S2] b.",
        speaker="mix",
    )

    def like(cut_id, supervisions):
        return cut.__class__(
            id=cut_id,
            start=cut.start,
            duration=cut.duration,
            channel=0,
            recording=cut.recording,
            supervisions=supervisions,
        )

    zipvoice_style = like("z", [sup])
    assert dialogue_text(zipvoice_style) == "[S1] a. [S2] b."
    # three speakers are refused
    third = SupervisionSegment(
        id="y", recording_id="sample", start=1.0, duration=0.5, text="hi", speaker="S3"
    )
    bad = like("b", [*cut.supervisions, third])
    with pytest.raises(ValueError, match="more than two speakers"):
        dialogue_text(bad)


def test_batch_from_real_audio(dialog_cuts_path, extractor):
    cuts = load_cuts([dialog_cuts_path], DataOptions(max_duration_s=30))
    dataset = DialogTTSDataset(CharTokenizer(), extractor, mode="dialog", feat_scale=0.1)
    batch = dataset[cuts]
    lens = batch["features_lens"].tolist()
    seconds = [round(end - start, 3) for start, end in DIALOG_WINDOWS.values()]
    expected = [extractor.num_frames(round(d * 22050)) for d in seconds]
    assert sorted(lens) == sorted(expected)
    assert batch["features"].shape == (2, max(lens), 80)
    assert batch["stereo_features"] is None
    short = lens.index(min(lens))
    assert (batch["features"][short, min(lens) :] == 0).all()
    valid = batch["features"][short, : min(lens)]
    # real speech: log-mel x 0.1 spans a range, not a constant
    assert valid.std() > 0.1 and valid.max() - valid.min() > 1.0
    assert all(t[0] == 1 + 1 for t in batch["tokens"])  # "[S1]" -> "\x01" -> id 2
    assert set(batch["cut_ids"]) == set(DIALOG_WINDOWS)


def test_stereo_batch_and_precomputed_features_match(tmp_path, extractor):
    cut = make_stereo_cut(tmp_path)
    on_the_fly = DialogTTSDataset(CharTokenizer(), extractor, mode="stereo")
    batch = on_the_fly[[cut]]
    mono, stereo = batch["features"], batch["stereo_features"]
    assert stereo.shape == (1, mono.size(1), 160)
    # S1 speaks first (0.1-0.58 s): the left channel is louder than the right there
    frames = slice(int(0.15 * 86), int(0.5 * 86))
    assert stereo[0, frames, :80].mean() > stereo[0, frames, 80:].mean() + 0.2
    stored = store_features([cut], extractor, tmp_path / "feats")
    precomputed = DialogTTSDataset(CharTokenizer(), None, mode="stereo", on_the_fly_feats=False)
    again = precomputed[stored]
    assert torch.allclose(again["features"], mono, atol=1e-6)
    assert torch.allclose(again["stereo_features"], stereo, atol=1e-6)
    with pytest.raises(ValueError, match="2-channel"):
        on_the_fly[make_dialog_cuts()[:1]]


def test_sharding_splits_batches_and_drops_the_incomplete_group(dialog_cuts_path):
    options = DataOptions(max_duration_s=8.0, num_buckets=1, seed=3)
    cuts = load_cuts([dialog_cuts_path], options)
    seen = []
    for rank in (0, 1):
        shard = ShardedBatches(make_sampler(cuts, options), epoch=0, rank=rank, world_size=2)
        seen.append([c.id for batch in shard for c in batch])
    assert len(seen[0]) == len(seen[1]) == 1 and seen[0] != seen[1]
    three = ShardedBatches(make_sampler(cuts, options), epoch=0, rank=0, world_size=3)
    assert list(three) == []  # 2 batches cannot feed 3 ranks
    with pytest.raises(ValueError, match="no batch"):
        next(iter(BatchStream(IdsDataset(), make_sampler(cuts, options), world_size=3)))


def test_batch_stream_resumes_exactly_across_epochs(dialog_cuts_path):
    # (2 buckets: the bucketing sampler reshuffles even 2 cuts; lhotse's streaming shuffle of
    # the 1-bucket sampler only mixes sets larger than its buffer)
    options = DataOptions(max_duration_s=8.0, num_buckets=2, shuffle=True, seed=0)
    cuts = load_cuts([dialog_cuts_path], options)
    stream = BatchStream(IdsDataset(), make_sampler(cuts, options))
    it = iter(stream)
    full = [next(it) for _ in range(9)]
    # shuffling changes the order between some epochs
    epochs = [tuple(full[i][0] for i in range(e * 2, e * 2 + 2)) for e in range(4)]
    assert len(set(epochs)) == 2
    for stop in (1, 2, 5):
        first = BatchStream(IdsDataset(), make_sampler(cuts, options))
        it = iter(first)
        head = [next(it) for _ in range(stop)]
        resumed = BatchStream(IdsDataset(), make_sampler(cuts, options), state=first.state_dict())
        it2 = iter(resumed)
        tail = [next(it2) for _ in range(9 - stop)]
        assert head + tail == full


def test_options_validation():
    with pytest.raises(ValueError, match="cut duration range"):
        DataOptions(min_cut_duration_s=5, max_cut_duration_s=2)
    with pytest.raises(FileNotFoundError):
        load_cuts(["/nonexistent/cuts.jsonl.gz"], DataOptions())


class PidDataset(torch.utils.data.Dataset):
    def __getitem__(self, cuts):
        import os

        return os.getpid()


def test_batch_stream_keeps_its_workers_across_epochs(dialog_cuts_path):
    # one batch an epoch (a toy corpus): the worker must not be restarted every step
    options = DataOptions(max_duration_s=100.0, num_buckets=1, seed=0)
    cuts = load_cuts([dialog_cuts_path], options)
    stream = BatchStream(PidDataset(), make_sampler(cuts, options), num_workers=1)
    it = iter(stream)
    pids = [next(it) for _ in range(4)]
    import os

    assert len(set(pids)) == 1 and pids[0] != os.getpid()
    assert stream.state_dict() == {"epoch": 3, "batches_done": 1}
