"""The synthesis engine behind ``python -m model.infer``: checkpoint, prompt, chunks, audio.

:class:`Synthesizer` holds a loaded network, its tokenizer, feature extractor and vocoder, and
turns a validated script plus a prepared prompt into audio:

1. the prompt's log-mel (times ``feat_scale``) and tokens;
2. the script cut before every ``[S1]`` and merged into chunks of about 40 s with the prompt
   (``model.inference.chunking``);
3. each chunk's length from the prompt's frames per token, with a floor for short texts;
4. chunks generated in batches by the Euler sampler with time-dependent CFG
   (``model.network.flow.sample_with_prompt``; a distilled network takes the guidance as input),
   the prompt region dropped;
5. each chunk vocoded (per channel for stereo), cross-faded, edge-trimmed and scaled back to
   the prompt's original loudness.

The network is a torch checkpoint (ours, upstream's, or a distilled student) or an ONNX
export (``python -m model.onnx_export``: ``onnx.json`` + graphs, run on onnxruntime's CPU
provider by ``model.export.onnx_runtime``, optionally its int8 graphs). Whether a network is a
distilled one is its own ``takes_guidance_input``, the same for torch and ONNX students.

What can be checked without weights (:func:`inspect_checkpoint`, :func:`check_script`,
:meth:`PromptSpec.prepare`) is separate from loading, so callers validate input first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.options import opt
from model.inference.chunking import (
    CROSSFADE_S,
    MAX_BATCH_S,
    MAX_CHUNK_S,
    SHORT_TEXT_TOKENS,
    crossfade_join,
    plan_batches,
    plan_chunks,
    split_before_s1,
    target_num_frames,
)
from model.inference.defaults import InferenceDefaults, inference_defaults
from model.inference.prompts import (
    AudioSource,
    Prompt,
    PromptError,
    PromptOptions,
    load_audio,
    merged_prompt,
    punctuate_dialogue,
    split_prompts,
    trim_silence,
)

logger = logging.getLogger(__name__)

ONNX_META_FILE = "onnx.json"
"""What marks an ONNX export directory (``model.export.onnx_export.META_FILE``, named here so that
inspecting a checkpoint does not import torch)."""
ONNX_RUNTIMES = ("onnx", "onnx-int8")
DEFAULT_SEED = 666
OUTPUT_EDGE_SILENCE_S = 0.1
MAX_LOG_MEL = 12.0
"""Generated log-mels are clamped to this before vocoding (real speech stays below ~8)."""


class InputError(ValueError):
    """Bad user input found before synthesis (script, prompt, test list, checkpoint path)."""


# ----------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class CheckpointInfo:
    """What is known about a checkpoint without loading its weights.

    Attributes:
        directory: the local directory.
        sample_rate: audio rate of its features.
        feature_name: feature preset name (``offline``, ``upstream`` ...).
        variant: network variant, or None until the weights are read (upstream dirs).
        defaults: its sampling defaults.
        runtime: ``torch``, or ``onnx`` / ``onnx-int8`` for an ONNX export run on
            onnxruntime with its fp32 / int8 graphs.
    """

    directory: Path
    sample_rate: int
    feature_name: str
    variant: str | None
    defaults: InferenceDefaults
    runtime: str = "torch"

    @property
    def is_onnx(self) -> bool:
        """Whether this is an ONNX export."""
        return self.runtime in ONNX_RUNTIMES

    @property
    def num_channels(self) -> int | None:
        """Output channels (None when unknown before loading)."""
        if self.variant is None:
            return None
        return 2 if self.variant == "dialog_stereo" else 1


_FEATURES_BY_DIM = {100: ("upstream", 24000), 80: ("offline", 22050)}
_HUB_MODEL_NAMES = ("zipvoice", "zipvoice_distill", "zipvoice_dialog", "zipvoice_dialog_stereo")


def _looks_like_hub_name(name: str) -> bool:
    """An upstream model name (``zipvoice_dialog``) or ``owner/repo/model``, not a path."""
    if os.path.exists(name) or name.startswith((".", "/", "~")):
        return False
    return name in _HUB_MODEL_NAMES or name.count("/") == 2


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InputError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _check_onnx_graphs(path: Path, int8: bool) -> None:
    """The graphs an ONNX export needs for the fp32 or int8 runtime are listed and present."""
    files = _read_json(path / ONNX_META_FILE).get("files", {})
    names = ("text_encoder_int8", "fm_decoder_int8") if int8 else ("text_encoder", "fm_decoder")
    if any(name not in files for name in names):
        kind = "int8 " if int8 else ""
        raise InputError(
            f"ONNX export {path} has no {kind}graphs"
            + (" (export with python -m model.onnx_export --int8)" if int8 else "")
        )
    for name in names:
        if not (path / files[name]).is_file():
            raise InputError(f"ONNX export {path} lacks {files[name]}")


def inspect_checkpoint(checkpoint: str | os.PathLike, *, onnx_int8: bool = False) -> CheckpointInfo:
    """Find a checkpoint and read its small files (no weights, no torch import).

    ``checkpoint`` is our directory (``network.json``, ``model.safetensors``,
    ``tokens.txt``, ``features.json``), an ONNX export of one (``onnx.json``, the graphs,
    and the same small files), an upstream one (``model.json``, ``tokens.txt``,
    ``model.pt`` or ``*.safetensors``) or a hub model name (``zipvoice_dialog``).

    Args:
        checkpoint: the directory or hub name.
        onnx_int8: run an ONNX export's int8 graphs (an error for other checkpoints).

    Raises:
        InputError: the directory is missing or incomplete (one-line message).
    """
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        if not _looks_like_hub_name(str(checkpoint)):
            raise InputError(f"checkpoint directory not found: {checkpoint}")
        from model.network.checkpoint import CheckpointError, resolve_model_dir

        try:
            path = resolve_model_dir(str(checkpoint))
        except CheckpointError as error:
            raise InputError(f"checkpoint {checkpoint!r}: {error}") from None
    if not (path / "tokens.txt").is_file():
        raise InputError(f"checkpoint {path} has no tokens.txt")
    runtime = "torch"
    if (path / ONNX_META_FILE).is_file():
        _check_onnx_graphs(path, onnx_int8)
        runtime = "onnx-int8" if onnx_int8 else "onnx"
    elif onnx_int8:
        raise InputError(
            f"int8 graphs need an ONNX export (python -m model.onnx_export); "
            f"{path} has no {ONNX_META_FILE}"
        )
    variant = None
    if (path / "network.json").is_file():
        network = _read_json(path / "network.json")
        variant = network.get("variant", "dialog")
        feat_dim = int(network.get("feat_dim", 100))
        if runtime == "torch" and not (path / "model.safetensors").is_file():
            raise InputError(f"checkpoint {path} has no model.safetensors (training not finished?)")
    elif runtime != "torch":
        raise InputError(f"ONNX export {path} has no network.json")
    elif (path / "model.json").is_file():
        model_json = _read_json(path / "model.json")
        feat_dim = int(model_json.get("model", model_json).get("feat_dim", 100))
        if not (path / "model.pt").is_file() and not list(path.glob("*.safetensors")):
            raise InputError(f"checkpoint {path} has no model.pt or *.safetensors")
    else:
        raise InputError(f"{path} is not a checkpoint: no network.json or model.json")
    if (path / "features.json").is_file():
        try:
            features = _read_json(path / "features.json")
            feature_name, sample_rate = features["name"], int(features["sample_rate"])
        except (ValueError, KeyError) as error:
            raise InputError(f"{path / 'features.json'}: {error}") from None
    elif feat_dim in _FEATURES_BY_DIM:
        feature_name, sample_rate = _FEATURES_BY_DIM[feat_dim]
    else:
        raise InputError(f"checkpoint {path}: no features.json and no preset has {feat_dim} mels")
    return CheckpointInfo(
        path, sample_rate, feature_name, variant, _sampling_defaults(path, variant), runtime
    )


def _sampling_defaults(directory: Path, variant: str | None) -> InferenceDefaults:
    """The checkpoint's ``inference.json``, else upstream's for the variant (dialog: unknown)."""
    try:
        return inference_defaults(directory, variant)
    except ValueError as error:
        raise InputError(str(error)) from None


def load_network(
    directory: Path, device: str, *, onnx_int8: bool = False, num_threads: int | None = None
) -> Any:
    """The network of a checkpoint directory, in eval mode on ``device``.

    An ONNX export (``onnx.json``) gives a ``model.export.onnx_runtime.OnnxNetwork`` (CPU only;
    ``onnx_int8`` picks its int8 graphs, ``num_threads`` its intra-op threads). Torch
    directories (ours, upstream's, distilled students) load strictly through
    ``model.network.student.load_model``, which builds a student's guided network.
    """
    if (Path(directory) / ONNX_META_FILE).is_file():
        from model.export.onnx_runtime import load_onnx_network

        try:
            return load_onnx_network(directory, device, int8=onnx_int8, num_threads=num_threads)
        except (ValueError, FileNotFoundError) as error:
            raise InputError(f"ONNX export {directory}: {error}") from None
    if onnx_int8:
        raise InputError(f"{directory} is not an ONNX export: no int8 graphs")
    from model.network.student import load_model

    return load_model(directory, device=device).network


def resolve_device(device: str = "auto", *, onnx: bool = False, mps: bool = True) -> str:
    """``auto`` -> ``cuda:0`` if available, else ``mps``, else ``cpu``; other names as given.

    The one device rule of inference, training and distillation (these two pass ``mps=False``:
    ``auto`` never picks Apple's ``mps`` there). An ONNX export (``onnx``) runs on
    onnxruntime's CPU provider: ``auto`` -> ``cpu``.

    Raises:
        InputError: a CUDA device is asked for and none is available, or a device other
            than ``cpu``/``auto`` for an ONNX export.
    """
    if onnx:
        if device not in ("cpu", "auto"):
            raise InputError(
                f"--device {device}: ONNX exports run on onnxruntime's CPU "
                "provider here (use --device cpu or auto)"
            )
        return "cpu"
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available here (use cpu or auto)")
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda:0"
    apple = getattr(torch.backends, "mps", None)
    if mps and apple is not None and apple.is_available():
        return "mps"
    return "cpu"


def load_matching_vocoder(name: str | None, feature_config: Any, device: str) -> Any:
    """The vocoder ``name`` (default: the one matching ``feature_config``), checked to fit.

    ``griffinlim`` always works: it is built for ``feature_config`` itself.

    Raises:
        InputError: the vocoder's features differ from the checkpoint's.
    """
    from model.audio.vocoder import GriffinLimVocoder, default_vocoder_name, load_vocoder

    if name in ("griffinlim", "griffin-lim"):
        return GriffinLimVocoder(feature_config, device=device)
    name = name or default_vocoder_name(feature_config)
    try:
        vocoder = load_vocoder(name, device=device)
    except (ValueError, RuntimeError, ImportError, OSError) as error:
        raise InputError(f"vocoder {name!r}: {error}") from None
    theirs, ours = vocoder.feature_config, feature_config
    keys = ("sample_rate", "n_mels", "hop_length", "n_fft")
    if any(getattr(theirs, k) != getattr(ours, k) for k in keys):
        raise InputError(
            f"vocoder {name!r} expects {theirs.n_mels} mels at {theirs.sample_rate} Hz but the "
            f"checkpoint makes {ours.n_mels} mels at {ours.sample_rate} Hz ('{ours.name}' "
            "features); use --vocoder griffinlim or the matching vocoder"
        )
    return vocoder


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class SynthesisOptions:
    """How to synthesise (sampler settings None: the checkpoint's defaults).

    Attributes:
        num_step: Euler steps.
        guidance_scale: CFG weight.
        t_shift: time warp.
        speed: speaking-rate factor (2 = twice as fast).
        seed: noise seed (chunk i uses seed + i).
        max_chunk_s: prompt + chunk budget for long scripts.
        max_batch_s: padded seconds per generation batch.
        crossfade_s: cross-fade between chunks.
        short_text_tokens: duration floor for short texts (see
            ``model.inference.chunking.target_num_frames``; 0 disables it).
        raw: ZipVoice's ``--raw-evaluation``: no silence trimming, no chunking, no added
            punctuation.
        remove_long_silence: also shorten silences over 1 s inside the output.
        trim_output: trim the output's edge silence to 0.1 s.
        prompt_options: prompt cleaning options.
    """

    num_step: int | None = opt(
        None, "Euler steps (default: the checkpoint's, 16 for dialog)", group="generation"
    )
    guidance_scale: float | None = opt(
        None, "CFG weight (default: the checkpoint's, 1.5 for dialog)", group="generation"
    )
    t_shift: float | None = opt(
        None, "time warp of the steps (default: the checkpoint's, 0.5)", group="generation"
    )
    speed: float = opt(1.0, "speaking rate factor", group="generation")
    seed: int = opt(DEFAULT_SEED, "noise seed", group="generation")
    max_chunk_s: float = opt(
        MAX_CHUNK_S, "prompt + chunk budget for long scripts, seconds", group="generation"
    )
    max_batch_s: float = opt(
        MAX_BATCH_S,
        "padded seconds per generation batch (prompt included)",
        aliases=("--max-duration",),
        group="generation",
    )
    crossfade_s: float = CROSSFADE_S
    short_text_tokens: int = SHORT_TEXT_TOKENS
    raw: bool = opt(
        False,
        "no silence trimming, chunking or added punctuation (paper mode)",
        aliases=("--raw-evaluation",),
        group="generation",
    )
    remove_long_silence: bool = opt(
        False,
        "also shorten silences over 1 s inside the output",
        aliases=("--remove-long-sil",),
        group="generation",
    )
    trim_output: bool = True
    prompt_options: PromptOptions = field(default_factory=PromptOptions)

    @property
    def prompt_cleaning(self) -> PromptOptions:
        """The prompt options in effect: ``raw`` also means no prompt trimming."""
        if self.raw and self.prompt_options.trim:
            return dataclasses.replace(self.prompt_options, trim=False)
        return self.prompt_options

    def __post_init__(self) -> None:
        if self.num_step is not None and self.num_step < 1:
            raise InputError(f"num_step must be >= 1, got {self.num_step}")
        if self.t_shift is not None and self.t_shift <= 0:
            raise InputError(f"t_shift must be > 0, got {self.t_shift}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise InputError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if not self.speed > 0:
            raise InputError(f"speed must be > 0, got {self.speed}")
        if self.max_chunk_s <= 0 or self.max_batch_s <= 0:
            raise InputError("max_chunk_s and max_batch_s must be > 0")


@dataclass(frozen=True)
class SynthesisResult:
    """One synthesised dialogue.

    Attributes:
        audio: float32 ``(channels, samples)`` in [-1, 1]; 2 channels (S1 left) for stereo.
        sample_rate: its rate.
        rtf: synthesis seconds per second of audio, everything included.
        rtf_no_vocoder: the same without the vocoder.
        synthesis_s: wall seconds of the synthesis.
        num_chunks: chunks the script was generated in.
        num_step: Euler steps used.
        guidance_scale: CFG weight used.
    """

    audio: np.ndarray
    sample_rate: int
    rtf: float
    rtf_no_vocoder: float
    synthesis_s: float
    num_chunks: int
    num_step: int
    guidance_scale: float

    @property
    def duration_s(self) -> float:
        """Duration of the audio in seconds."""
        return self.audio.shape[1] / self.sample_rate

    @property
    def num_channels(self) -> int:
        """Channel count."""
        return self.audio.shape[0]


@dataclass(frozen=True)
class PromptSpec:
    """The prompt of one request, before decoding: merged (1 wav) or split (2 wavs).

    Attributes:
        wavs: one source (merged) or the S1 and S2 sources.
        texts: the matching transcripts.
    """

    wavs: tuple[AudioSource, ...]
    texts: tuple[str, ...]

    @classmethod
    def from_args(
        cls,
        prompt_wav: AudioSource | None = None,
        prompt_text: str | None = None,
        spk1_wav: AudioSource | None = None,
        spk1_text: str | None = None,
        spk2_wav: AudioSource | None = None,
        spk2_text: str | None = None,
    ) -> PromptSpec:
        """Check that exactly one prompt form is complete.

        Raises:
            InputError: none or both forms, or a form with a missing piece.
        """
        merged = prompt_wav is not None or prompt_text is not None
        split = any(x is not None for x in (spk1_wav, spk1_text, spk2_wav, spk2_text))
        if merged and split:
            raise InputError("give a merged prompt (prompt wav + text) OR split prompts, not both")
        if merged:
            if prompt_wav is None or prompt_text is None:
                raise InputError("a merged prompt needs both the prompt wav and its text")
            return cls((prompt_wav,), (prompt_text,))
        if split:
            missing = [
                n
                for n, v in (
                    ("spk1 wav", spk1_wav),
                    ("spk1 text", spk1_text),
                    ("spk2 wav", spk2_wav),
                    ("spk2 text", spk2_text),
                )
                if v is None
            ]
            if missing:
                raise InputError(
                    f"split prompts need both speakers' wav and text; missing {', '.join(missing)}"
                )
            return cls((spk1_wav, spk2_wav), (spk1_text, spk2_text))
        raise InputError("no prompt: give a prompt wav + text, or spk1/spk2 wavs + texts")

    @property
    def is_split(self) -> bool:
        """Whether these are per-speaker prompts."""
        return len(self.wavs) == 2

    def prepare(self, sample_rate: int, num_channels: int, options: PromptOptions) -> Prompt:
        """Decode and prepare the prompt (see ``model.inference.prompts``).

        Raises:
            PromptError: missing/corrupt/silent audio or a bad transcript.
        """
        if self.is_split:
            for number, text in ((1, self.texts[0]), (2, self.texts[1])):
                if not str(text).strip():
                    raise PromptError(f"the speaker-{number} prompt transcript is empty")
            audios = [load_audio(wav, sample_rate) for wav in self.wavs]
            return split_prompts(
                audios,
                self.texts,
                sample_rate=sample_rate,
                num_channels=num_channels,
                options=options,
                names=[_name(w) for w in self.wavs],
            )
        from model.inference.prompts import merged_prompt_text

        merged_prompt_text(self.texts[0])  # transcript errors before decoding
        audio = load_audio(self.wavs[0], sample_rate)
        return merged_prompt(
            audio,
            self.texts[0],
            sample_rate=sample_rate,
            num_channels=num_channels,
            options=options,
            name=_name(self.wavs[0]),
        )


def _name(source: AudioSource) -> str:
    return "in-memory audio" if isinstance(source, tuple) else str(source)


def check_script(text: str, raw: bool = False) -> str:
    """Validate a dialogue script; returns it punctuated (as given in raw mode).

    Raises:
        InputError: no tags, not starting with [S1], a third speaker tag, an empty turn.
    """
    from model.tokenizer import DialogueFormatError, split_dialogue

    try:
        if raw:
            split_dialogue(text)
            return text.strip()
        return punctuate_dialogue(text)
    except DialogueFormatError as error:
        raise InputError(f"text: {error}") from None


# ----------------------------------------------------------------------------- synthesizer


class Synthesizer:
    """A loaded checkpoint + tokenizer + feature extractor + vocoder, ready to synthesise.

    Build it with :meth:`load`; call :meth:`synthesize` as often as needed.

    Args:
        network: a ``DialogTTSNetwork`` in eval mode.
        tokenizer: a ``model.tokenizer.Tokenizer`` with the checkpoint's table.
        feature_config: the checkpoint's ``FeatureConfig``.
        vocoder: a ``model.audio.vocoder.Vocoder`` for those features.
        defaults: the checkpoint's sampling defaults (None: 16 steps, guidance 1.5, t-shift 0.5).
        device: where the network runs.
    """

    def __init__(
        self,
        network: Any,
        tokenizer: Any,
        feature_config: Any,
        vocoder: Any,
        defaults: InferenceDefaults | None = None,
        device: str = "cpu",
    ):
        from model.audio.features import MelExtractor

        self.network = network
        self.tokenizer = tokenizer
        self.feature_config = feature_config
        self.vocoder = vocoder
        self.defaults = defaults or InferenceDefaults()
        self.device = device
        self.extractor = MelExtractor(feature_config)
        if vocoder.sample_rate != feature_config.sample_rate:
            raise InputError(
                f"vocoder rate {vocoder.sample_rate} Hz != features' "
                f"{feature_config.sample_rate} Hz"
            )

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike | CheckpointInfo,
        *,
        device: str = "auto",
        vocoder: str | None = None,
        onnx_int8: bool = False,
        num_threads: int | None = None,
    ) -> Synthesizer:
        """Load a checkpoint directory (ours, upstream's or an ONNX export) and its vocoder.

        Args:
            checkpoint: a directory, hub model name, or :func:`inspect_checkpoint` result.
            device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps`` (ONNX: ``cpu``/``auto``).
            vocoder: ``hifigan``, ``griffinlim``, a local Vocos folder, a hub id; None picks
                the one that matches the checkpoint's features.
            onnx_int8: an ONNX export's int8 graphs (ignored for a ``CheckpointInfo``,
                which carries its runtime).
            num_threads: onnxruntime intra-op threads of an ONNX export (None: its default).

        Raises:
            InputError: missing files, or a vocoder that does not fit.
            model.network.checkpoint.CheckpointError: weights that do not match the network.
        """
        from model.audio.features import FeatureConfig
        from model.tokenizer import Tokenizer, TokenTable

        info = (
            checkpoint
            if isinstance(checkpoint, CheckpointInfo)
            else inspect_checkpoint(checkpoint, onnx_int8=onnx_int8)
        )
        device = resolve_device(device, onnx=info.is_onnx)
        features_path = info.directory / "features.json"
        if features_path.is_file():
            feature_config = FeatureConfig.from_json(features_path.read_text(encoding="utf-8"))
        else:
            feature_config = FeatureConfig.preset(info.feature_name)
        voc = load_matching_vocoder(vocoder, feature_config, device)
        network = load_network(
            info.directory, device, onnx_int8=info.runtime == "onnx-int8", num_threads=num_threads
        )
        if network.config.feat_dim != feature_config.n_mels:
            raise InputError(
                f"checkpoint {info.directory}: {network.config.feat_dim} mels in the "
                f"network but {feature_config.n_mels} in its features"
            )
        table = TokenTable.load(info.directory / "tokens.txt")
        mode = "dialog" if "[S1]" in table else "emilia"
        if mode != "dialog":
            logger.warning("%s has no [S1]/[S2] tokens: not a dialogue model", info.directory)
        defaults = _sampling_defaults(info.directory, network.config.variant)
        logger.info(
            "loaded %s (%s%s, %d parameters) on %s%s; vocoder %s; defaults: %d steps, "
            "guidance %.2f, t-shift %.2f",
            info.directory,
            network.config.variant,
            ", distilled" if getattr(network, "takes_guidance_input", False) else "",
            network.num_parameters(),
            device,
            f" ({info.runtime} on onnxruntime)" if info.is_onnx else "",
            type(voc).__name__,
            defaults.num_step,
            defaults.guidance_scale,
            defaults.t_shift,
        )
        return cls(network, Tokenizer(table, mode=mode), feature_config, voc, defaults, device)

    # ------------------------------------------------------------------ properties

    @property
    def sample_rate(self) -> int:
        """Output sample rate."""
        return self.feature_config.sample_rate

    @property
    def num_channels(self) -> int:
        """Output channels (2 for a stereo checkpoint)."""
        return self.network.config.num_channels

    @property
    def is_distill(self) -> bool:
        """Whether the network takes the guidance scale as an input (a distilled one): its
        own ``takes_guidance_input``, for torch and ONNX networks alike."""
        from model.network.student import takes_guidance_input

        return takes_guidance_input(self.network)

    # ------------------------------------------------------------------ API

    def prepare_prompt(self, spec: PromptSpec, options: SynthesisOptions) -> Prompt:
        """Decode and prepare a prompt for this model."""
        return spec.prepare(self.sample_rate, self.num_channels, options.prompt_cleaning)

    def synthesize(
        self,
        text: str,
        prompt_wav: AudioSource | None = None,
        prompt_text: str | None = None,
        spk1_wav: AudioSource | None = None,
        spk1_text: str | None = None,
        spk2_wav: AudioSource | None = None,
        spk2_text: str | None = None,
        *,
        prompt: Prompt | None = None,
        options: SynthesisOptions | None = None,
        **overrides: Any,
    ) -> SynthesisResult:
        """Synthesise one dialogue.

        Args:
            text: the script, ``[S1] ... [S2] ...``.
            prompt_wav: merged prompt audio (path or ``(samples, rate)``).
            prompt_text: its tagged transcript.
            spk1_wav: speaker 1's prompt audio (split prompts).
            spk1_text: its plain transcript.
            spk2_wav: speaker 2's prompt audio.
            spk2_text: its plain transcript.
            prompt: an already prepared prompt (instead of the wav/text arguments).
            options: synthesis options.
            **overrides: fields of :class:`SynthesisOptions` (``num_step=8``, ``seed=1``).

        Raises:
            InputError: bad script or prompt arguments.
            PromptError: unusable prompt audio or transcript.
        """
        options = options or SynthesisOptions()
        if overrides:
            options = dataclasses.replace(options, **overrides)
        script = check_script(text, raw=options.raw)
        if prompt is None:
            spec = PromptSpec.from_args(
                prompt_wav, prompt_text, spk1_wav, spk1_text, spk2_wav, spk2_text
            )
            prompt = self.prepare_prompt(spec, options)
        if prompt.sample_rate != self.sample_rate or prompt.num_channels != self.num_channels:
            raise PromptError(
                f"prompt is {prompt.num_channels} ch at {prompt.sample_rate} Hz; "
                f"the model needs {self.num_channels} ch at {self.sample_rate} Hz"
            )
        return self._generate(script, prompt, options)

    # ------------------------------------------------------------------ internals

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.texts_to_token_ids(list(texts))

    def _generate(self, script: str, prompt: Prompt, options: SynthesisOptions) -> SynthesisResult:
        import torch

        from model.network.flow import sample_with_prompt

        num_step = options.num_step or self.defaults.num_step
        guidance = (
            options.guidance_scale
            if options.guidance_scale is not None
            else self.defaults.guidance_scale
        )
        t_shift = options.t_shift or self.defaults.t_shift
        config = self.feature_config
        start = time.perf_counter()

        wave = torch.from_numpy(prompt.samples)
        prompt_features = self.extractor(wave) * config.feat_scale  # (Tp, M*C)
        prompt_frames = prompt_features.shape[0]
        prompt_tokens = self._token_ids([prompt.text])[0]
        if not prompt_tokens:
            raise PromptError(f"the prompt transcript gives no tokens: {prompt.text!r}")

        if options.raw:
            chunks = [script]
        else:
            pieces = split_before_s1(script)
            piece_tokens = [len(ids) for ids in self._token_ids(pieces)]
            seconds_per_token = prompt.duration_s / len(prompt_tokens) / options.speed
            chunks = plan_chunks(
                pieces,
                piece_tokens,
                seconds_per_token=seconds_per_token,
                prompt_s=prompt.duration_s,
                max_chunk_s=options.max_chunk_s,
            )
        chunk_tokens = self._token_ids(chunks)
        for chunk, ids in zip(chunks, chunk_tokens):
            if not ids:
                raise InputError(f"text: no token of {chunk[:60]!r} is known to the model")
        frames = [
            target_num_frames(
                prompt_frames,
                len(prompt_tokens),
                len(ids),
                speed=options.speed,
                short_text_tokens=0 if options.raw else options.short_text_tokens,
            )
            for ids in chunk_tokens
        ]
        frame_s = config.hop_length / config.sample_rate
        batches = plan_batches(
            [n * frame_s for n in frames],
            prompt_s=prompt.duration_s,
            max_batch_s=options.max_batch_s,
        )
        logger.debug(
            "%d chunk(s) in %d batch(es); target frames %s", len(chunks), len(batches), frames
        )

        device = self.network.device
        generated: dict[int, torch.Tensor] = {}
        for batch in batches:
            size = len(batch)
            features = sample_with_prompt(
                self.network,
                tokens=[prompt_tokens + chunk_tokens[i] for i in batch],
                prompt_features=prompt_features.to(device).unsqueeze(0).expand(size, -1, -1),
                prompt_features_lens=torch.full(
                    (size,), prompt_frames, dtype=torch.int64, device=device
                ),
                features_lens=torch.tensor(
                    [prompt_frames + frames[i] for i in batch], dtype=torch.int64, device=device
                ),
                seed=[options.seed + i for i in batch],
                num_steps=num_step,
                t_shift=t_shift,
                guidance_scale=guidance,
                distill=self.is_distill,
            )
            for row, index in enumerate(batch):
                generated[index] = features[row, prompt_frames : prompt_frames + frames[index]]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        model_s = time.perf_counter() - start

        from model.audio.vocoder import vocode_channels

        pieces_audio = []
        for index in range(len(chunks)):
            mel = generated[index].unsqueeze(0) / config.feat_scale
            # an untrained or over-guided network can leave the log-mel range: keep exp() finite
            mel = torch.nan_to_num(mel).clamp(math.log(config.log_floor), MAX_LOG_MEL)
            audio = vocode_channels(self.vocoder, mel)[0]  # (C, S)
            pieces_audio.append(audio.float().cpu().numpy())
        audio = crossfade_join(pieces_audio, round(options.crossfade_s * self.sample_rate))
        if options.trim_output and not options.raw:
            audio = trim_silence(
                audio,
                self.sample_rate,
                max_inner_s=1.0 if options.remove_long_silence else None,
                edge_s=OUTPUT_EDGE_SILENCE_S,
                threshold_dbfs=options.prompt_options.threshold_dbfs,
            )
        audio = np.clip(audio / prompt.rms_gain, -1.0, 1.0).astype(np.float32)
        total_s = time.perf_counter() - start
        duration_s = max(audio.shape[1] / self.sample_rate, 1e-9)
        return SynthesisResult(
            audio=audio,
            sample_rate=self.sample_rate,
            rtf=total_s / duration_s,
            rtf_no_vocoder=model_s / duration_s,
            synthesis_s=total_s,
            num_chunks=len(chunks),
            num_step=num_step,
            guidance_scale=guidance,
        )
