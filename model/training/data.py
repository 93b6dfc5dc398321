"""Training data: a Lhotse CutSet → duration-bucketed, rank-sharded batches of tokens and mels.

Input: ``cuts.jsonl.gz`` manifests. Accepted cut shapes:

* the curation pipeline's dialogue cuts: one supervision per turn, speakers ``S1``/``S2``, the
  tagged text ``[S1] … [S2] …`` in ``cut.custom["text"]`` (else built from the turns in time
  order, consecutive turns of one speaker merged);
* ZipVoice-style cuts with one supervision whose text holds the tagged text;
* 2-channel ``MultiCut``s (stereo): channel 0 is S1, channel 1 is S2.

Output batches (dict): ``tokens`` (B lists of ids), ``features`` ``(B, T, M)`` model-space mel of
the mono mix, ``features_lens`` ``(B,)``, ``stereo_features`` ``(B, T, 2M)`` (left | right) or
None, ``cut_ids``, ``texts``. M is the mel dim (100). Features are computed on the fly from the
audio, or read from Lhotse feature storage (upstream's stereo layout: ch1 | ch2 | mix).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from core.dialogue_script import dialogue_text
from core.options import opt

logger = logging.getLogger(__name__)

Mode = Literal["dialog", "single", "stereo"]


class TextTokenizer(Protocol):
    """What the data needs from a tokenizer (``model.tokenizer.Tokenizer`` satisfies it)."""

    def texts_to_token_ids(self, texts: list[str]) -> list[list[int]]: ...


class MelFeatures(Protocol):
    """What the data needs from a feature extractor (``model.audio.features.MelExtractor``)."""

    sample_rate: int

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """``(C, N)`` audio -> ``(T, M·C)`` log mel, channel 0's bins first."""
        ...


@dataclass(frozen=True)
class DataOptions:
    """How cuts become batches.

    Attributes:
        max_duration_s: total seconds of audio per batch (per process).
        num_buckets: duration buckets of the DynamicBucketingSampler; ≤ 1 means no bucketing.
        min_cut_duration_s: shorter cuts are filtered out.
        max_cut_duration_s: longer cuts are filtered out (and so are cuts longer than
            ``max_duration_s``, which no batch could hold).
        shuffle: shuffle cuts (seeded by ``seed`` + epoch).
        seed: sampler seed.
        on_the_fly_feats: compute mels from audio (else read precomputed features).
        num_workers: DataLoader worker processes.
    """

    max_duration_s: float = opt(
        200.0, "seconds of audio per batch and process", aliases=("--max-duration",), group="data"
    )
    num_buckets: int = opt(30, "duration buckets of the sampler (<= 1: none)", group="data")
    min_cut_duration_s: float = opt(
        1.0, "shorter cuts are filtered out", aliases=("--min-cut-duration",), group="data"
    )
    max_cut_duration_s: float = opt(
        30.0, "longer cuts are filtered out", aliases=("--max-cut-duration",), group="data"
    )
    shuffle: bool = opt(True, "shuffle cuts", negations=("--no-shuffle",), group="data")
    seed: int = 0  # not a flag: the training CLIs give it the run's --seed
    on_the_fly_feats: bool = opt(
        True,
        "compute mels from audio (false: read lhotse feature storage)",
        negations=("--precomputed-feats",),
        group="data",
    )
    num_workers: int = opt(2, "DataLoader worker processes", group="data")

    def __post_init__(self) -> None:
        if self.max_duration_s <= 0:
            raise ValueError(f"max_duration_s={self.max_duration_s}: need > 0")
        if not 0 <= self.min_cut_duration_s < self.max_cut_duration_s:
            raise ValueError(
                f"cut duration range ({self.min_cut_duration_s}, {self.max_cut_duration_s}): "
                "need 0 <= min < max"
            )
        if self.num_workers < 0:
            raise ValueError(f"num_workers={self.num_workers}: need >= 0")


# ------------------------------------------------------------------------------------------
# text


def plain_text(cut: Any) -> str:
    """A single-speaker cut's text: supervisions in time order, speaker tags removed.

    Args:
        cut: a Lhotse cut.

    Returns:
        The text.
    """
    custom = getattr(cut, "custom", None) or {}
    if isinstance(custom.get("text"), str) and custom["text"].strip():
        text = custom["text"]
    else:
        sups = sorted(cut.supervisions, key=lambda s: (s.start, s.end))
        text = " ".join((s.text or "").strip() for s in sups)
    text = re.sub(r"\[S[12]\]", " ", text)
    text = " ".join(text.split())
    if not text:
        raise ValueError(f"cut {cut.id}: empty text")
    return text


def cut_text(cut: Any, mode: Mode) -> str:
    """The training text of a cut for a mode (tagged for dialog/stereo, plain for single)."""
    return plain_text(cut) if mode == "single" else dialogue_text(cut)


# ------------------------------------------------------------------------------------------
# cuts and sampling


def load_cuts(paths: Sequence[str | Path], options: DataOptions) -> Any:
    """Open one or more CutSet manifests lazily and filter them by duration.

    Kept: ``min_cut_duration_s <= duration <= min(max_cut_duration_s, max_duration_s)``.

    Args:
        paths: ``*.jsonl.gz`` (or any Lhotse manifest) paths; several are concatenated.
        options: duration limits.

    Returns:
        A lazy ``lhotse.CutSet``.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    from lhotse import CutSet

    sets = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"cuts manifest not found: {path}")
        sets.append(CutSet.from_file(path))
    cuts = sets[0] if len(sets) == 1 else CutSet.mux(*sets)
    lo = options.min_cut_duration_s
    hi = min(options.max_cut_duration_s, options.max_duration_s)
    return cuts.filter(_DurationFilter(lo, hi))


@dataclass(frozen=True)
class _DurationFilter:
    min_s: float
    max_s: float

    def __call__(self, cut: Any) -> bool:
        return self.min_s <= cut.duration <= self.max_s


def make_sampler(cuts: Any, options: DataOptions) -> Any:
    """A single-process Lhotse sampler over ``cuts`` (sharding happens in :class:`ShardedBatches`).

    Args:
        cuts: a CutSet.
        options: batching options.

    Returns:
        A ``DynamicBucketingSampler`` (``DynamicCutSampler`` when ``num_buckets <= 1``).
    """
    from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

    common = {
        "max_duration": options.max_duration_s,
        "shuffle": options.shuffle,
        "seed": options.seed,
        "world_size": 1,
        "rank": 0,
        "drop_last": False,
    }
    if options.num_buckets <= 1:
        return DynamicCutSampler(cuts, **common)
    return DynamicBucketingSampler(cuts, num_buckets=options.num_buckets, **common)


class ShardedBatches(torch.utils.data.Sampler):
    """One rank's share of a sampler's batches for one epoch, resumable by batch count.

    The sampler's batches are taken in groups of ``world_size``; rank r gets the r-th of each
    full group (an incomplete last group is dropped, so every rank runs the same number of
    steps). The first ``skip`` groups are skipped without loading any audio, which is how
    training resumes exactly.

    Args:
        sampler: a single-process Lhotse sampler (see :func:`make_sampler`).
        epoch: the epoch (reseeds the sampler's shuffle).
        rank: this process's rank.
        world_size: number of processes.
        skip: groups (= this rank's batches) to skip.
    """

    def __init__(
        self, sampler: Any, *, epoch: int, rank: int = 0, world_size: int = 1, skip: int = 0
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} with world_size={world_size}")
        self.sampler = sampler
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.skip = skip

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        group: list[Any] = []
        index = 0
        for batch in self.sampler:
            group.append(batch)
            if len(group) < self.world_size:
                continue
            if index >= self.skip:
                yield group[self.rank]
            index += 1
            group = []


class BatchStream:
    """Endless stream of one rank's batches over epochs, with a resumable position.

    ``state_dict()`` is ``{"epoch", "batches_done"}``: the batches this rank has consumed in
    the current epoch. A stream built with that state yields exactly the batches the
    original stream would have yielded next (same sampler seed, skip without loading).

    Args:
        dataset: maps a CutSet to a batch (e.g. :class:`DialogTTSDataset`).
        sampler: a single-process Lhotse sampler (:func:`make_sampler`).
        rank: this process's rank.
        world_size: number of processes.
        num_workers: DataLoader workers.
        state: a :meth:`state_dict` to resume from.
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        sampler: Any,
        *,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        state: dict[str, int] | None = None,
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        state = state or {}
        self.epoch = int(state.get("epoch", 0))
        self.batches_done = int(state.get("batches_done", 0))

    def state_dict(self) -> dict[str, int]:
        """The position: epoch and batches consumed in it."""
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # one DataLoader over all epochs: its workers start once, not once per epoch (a toy
        # corpus of one batch an epoch would otherwise pay a worker start-up every step)
        loader = torch.utils.data.DataLoader(
            _EpochTagged(self.dataset),
            sampler=_EpochsSampler(self),
            batch_size=None,
            num_workers=self.num_workers,
        )
        for epoch, batch in loader:
            if epoch != self.epoch:
                logger.debug(
                    "epoch %d done (%d batches on rank %d)",
                    self.epoch,
                    self.batches_done,
                    self.rank,
                )
                self.epoch, self.batches_done = epoch, 0
            self.batches_done += 1
            yield batch


class _EpochsSampler(torch.utils.data.Sampler):
    """``(epoch, cuts)`` for every batch of a :class:`BatchStream`, epoch after epoch, from its
    saved position on."""

    def __init__(self, stream: BatchStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        stream = self.stream
        epoch, skip = stream.epoch, stream.batches_done
        while True:
            shard = ShardedBatches(
                stream.sampler,
                epoch=epoch,
                rank=stream.rank,
                world_size=stream.world_size,
                skip=skip,
            )
            count = 0
            for cuts in shard:
                count += 1
                yield epoch, cuts
            if count == 0 and skip == 0:
                raise ValueError(
                    f"epoch {epoch} gives rank {stream.rank} no batch: fewer batches than "
                    f"world_size={stream.world_size} (too few cuts, or max_duration too large)"
                )
            epoch, skip = epoch + 1, 0


class _EpochTagged(torch.utils.data.Dataset):
    """``dataset[cuts]`` with the epoch it was drawn in."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, item: tuple[int, Any]) -> tuple[int, Any]:
        epoch, cuts = item
        return epoch, self.dataset[cuts]


# ------------------------------------------------------------------------------------------
# features


def _pad_stack(mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([m.size(0) for m in mats], dtype=torch.int64)
    out = torch.zeros(len(mats), int(lens.max()), mats[0].size(1))
    for i, m in enumerate(mats):
        out[i, : m.size(0)] = m
    return out, lens


class DialogTTSDataset(torch.utils.data.Dataset):
    """Map a CutSet (one batch) to tensors; used with ``DataLoader(batch_size=None)``.

    Args:
        tokenizer: maps texts to token ids.
        extractor: a :class:`MelFeatures` extractor; None when reading precomputed features.
        mode: ``"dialog"``, ``"single"`` or ``"stereo"`` (stereo also returns per-channel mels).
        feat_scale: model-space scale applied to the log mel (0.1 upstream).
        on_the_fly_feats: compute features from audio; else ``cut.load_features()``.
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        extractor: MelFeatures | None,
        *,
        mode: Mode = "dialog",
        feat_scale: float = 0.1,
        on_the_fly_feats: bool = True,
    ) -> None:
        if on_the_fly_feats and extractor is None:
            raise ValueError("on_the_fly_feats needs a feature extractor")
        self.tokenizer = tokenizer
        self.extractor = extractor
        self.mode = mode
        self.feat_scale = feat_scale
        self.on_the_fly_feats = on_the_fly_feats

    def cut_features(self, cut: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-mel features of one cut (before ``feat_scale``).

        Returns:
            ``(mix (T, M), stereo (T, 2M) or None)``; stereo only for 2-channel cuts.
        """
        if not self.on_the_fly_feats:
            if cut.features is None:
                raise ValueError(f"cut {cut.id}: no precomputed features (see store_features)")
            # Features.load directly: MultiCut.load_features would pick one channel
            stored = cut.features.load(start=cut.start, duration=cut.duration)
            return _split_stored(torch.as_tensor(np.asarray(stored), dtype=torch.float32), cut.id)
        sample_rate = self.extractor.sample_rate
        audio = load_audio(cut, sample_rate)
        mix = extract_mel(self.extractor, audio.mean(0, keepdim=True), sample_rate)[0]
        stereo = None
        if audio.size(0) == 2:
            per_channel = extract_mel(self.extractor, audio, sample_rate)  # (2, T, M)
            stereo = torch.cat([per_channel[0], per_channel[1]], dim=-1)
        elif audio.size(0) > 2:
            raise ValueError(f"cut {cut.id}: {audio.size(0)} channels, expected 1 or 2")
        return mix, stereo

    def __getitem__(self, cuts: Any) -> dict[str, Any]:
        """Build one batch.

        Args:
            cuts: the batch's CutSet.

        Returns:
            The batch dict described in the module docstring.

        Raises:
            ValueError: a cut has no tokens, or stereo mode gets a mono cut.
        """
        cut_list = list(cuts)
        texts = [cut_text(c, self.mode) for c in cut_list]
        tokens = self.tokenizer.texts_to_token_ids(texts)
        for cut, toks in zip(cut_list, tokens):
            if not toks:
                raise ValueError(f"cut {cut.id}: the tokenizer produced no tokens")
        mixes, stereos = [], []
        for cut in cut_list:
            mix, stereo = self.cut_features(cut)
            mixes.append(mix * self.feat_scale)
            if stereo is not None:
                stereos.append(stereo * self.feat_scale)
            elif self.mode == "stereo":
                raise ValueError(f"cut {cut.id}: stereo mode needs 2-channel cuts")
        features, features_lens = _pad_stack(mixes)
        stereo_features = None
        if stereos and len(stereos) == len(cut_list):
            stereo_features, _ = _pad_stack(stereos)
        return {
            "tokens": tokens,
            "features": features,
            "features_lens": features_lens,
            "stereo_features": stereo_features,
            "cut_ids": [c.id for c in cut_list],
            "texts": texts,
        }


def load_audio(cut: Any, sample_rate: int) -> torch.Tensor:
    """A cut's audio resampled to ``sample_rate``, shape ``(C, N)`` (C = 1 for mono cuts)."""
    audio = torch.as_tensor(np.asarray(cut.resample(sample_rate).load_audio()), dtype=torch.float32)
    return audio.unsqueeze(0) if audio.dim() == 1 else audio


def _split_stored(feats: torch.Tensor, cut_id: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Precomputed features: M bins (mono) or upstream's stereo layout ch1 | ch2 | mix (3M)."""
    dim = feats.size(-1)
    if dim % 3 == 0 and dim // 3 in (80, 100, 128):
        m = dim // 3
        return feats[:, 2 * m :], feats[:, : 2 * m]
    if dim in (80, 100, 128):
        return feats, None
    raise ValueError(f"cut {cut_id}: stored features have {dim} dims; expected M or 3M")


def extract_mel(extractor: Any, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Log mel of each channel of ``(C, N)`` audio, ``(C, T, M)``.

    Args:
        extractor: a ``MelExtractor`` (``(C, N) -> (T, M·C)``, channel 0 first).
        audio: shape ``(C, N)`` at the extractor's sample rate.
        sample_rate: the audio's rate (must be the extractor's).

    Returns:
        shape ``(C, T, M)``.
    """
    expected = getattr(extractor, "sample_rate", sample_rate)
    if expected != sample_rate:
        raise ValueError(f"audio at {sample_rate} Hz for an extractor at {expected} Hz")
    out = torch.as_tensor(extractor(audio), dtype=torch.float32)  # (T, M*C)
    channels = audio.size(0)
    return out.reshape(out.size(0), channels, -1).permute(1, 0, 2)


def store_features(cuts: Any, extractor: MelFeatures, storage_dir: str | Path) -> Any:
    """Compute every cut's log mel once and attach it as Lhotse feature storage (numpy files).

    Mono cuts store ``(T, M)``; 2-channel cuts store upstream's stereo layout ``(T, 3M)``
    (ch1 | ch2 | mono mix), which :class:`DialogTTSDataset` splits again.

    Args:
        cuts: a CutSet (or iterable of cuts).
        extractor: the mel extractor (its sample rate is used).
        storage_dir: where the arrays go.

    Returns:
        An eager ``CutSet`` of the cuts with ``features`` set.
    """
    from lhotse import CutSet
    from lhotse.features import Features
    from lhotse.features.io import NumpyFilesWriter

    sample_rate = extractor.sample_rate
    hop = getattr(getattr(extractor, "config", None), "hop_length", 256)
    out = []
    with NumpyFilesWriter(storage_dir) as writer:
        for cut in cuts:
            audio = load_audio(cut, sample_rate)
            mix = extract_mel(extractor, audio.mean(0, keepdim=True), sample_rate)[0]
            if audio.size(0) == 2:
                per_channel = extract_mel(extractor, audio, sample_rate)
                feats = torch.cat([per_channel[0], per_channel[1], mix], dim=-1)
            elif audio.size(0) == 1:
                feats = mix
            else:
                raise ValueError(f"cut {cut.id}: {audio.size(0)} channels, expected 1 or 2")
            key = writer.write(cut.id, feats.numpy())
            cut.features = Features(
                type="log-mel",
                num_frames=feats.size(0),
                num_features=feats.size(1),
                frame_shift=hop / sample_rate,
                sampling_rate=sample_rate,
                start=cut.start,
                duration=cut.duration,
                storage_type=writer.name,
                storage_path=str(writer.storage_path),
                storage_key=key,
                recording_id=cut.recording_id,
                channels=getattr(cut, "channel", 0),
            )
            out.append(cut)
    return CutSet.from_cuts(out)
