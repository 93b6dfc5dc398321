"""Zero-shot dialogue synthesis: a script + a two-voice prompt -> a dialogue wav.

Command line (one dialogue, merged prompt)::

    python -m model.infer --checkpoint exp/dialog \\
        --text "[S1] Are you coming tonight? [S2] I wouldn't miss it." \\
        --prompt-wav prompt.wav --prompt-text "[S1] Hello there. [S2] Hi, how are you?" \\
        --out dialogue.wav

Split prompts (one recording per speaker)::

    python -m model.infer --checkpoint exp/dialog --text "[S1] ... [S2] ..." \\
        --spk1-wav alice.wav --spk1-text "Hello there." \\
        --spk2-wav bob.wav --spk2-text "Hi, how are you?" --out dialogue.wav

Batch (ZipVoice test lists, 4 columns ``name  prompt_text  prompt_wav  text`` for merged
prompts or 6 columns ``name  spk1_text  spk2_text  spk1_wav  spk2_wav  text`` for split
prompts; writes ``<res-dir>/<name>.wav`` and ``<res-dir>/synthesis_times.tsv``)::

    python -m model.infer --checkpoint exp/dialog --test-list test.tsv --res-dir results

A distilled student (``python -m model.distill``) is a checkpoint like any other: it runs
with its own ``inference.json`` defaults (e.g. 4 steps, guidance 1.5 as an input of the
network, one pass per step) unless ``--num-step``/``--guidance-scale`` are given. An ONNX
export (``python -m model.onnx_export``) is given as ``--checkpoint`` too; it runs on
onnxruntime's CPU provider, with ``--onnx-int8`` on its int8 graphs::

    python -m model.onnx_export --model-dir exp/dialog_distill --onnx-dir exp/onnx --int8
    python -m model.infer --checkpoint exp/onnx --onnx-int8 --device cpu --text "..." \\
        --prompt-wav prompt.wav --prompt-text "..." --out dialogue.wav

Python::

    >>> from model.inference.infer import Synthesizer                                  # doctest: +SKIP
    >>> synth = Synthesizer.load("exp/dialog")                              # doctest: +SKIP
    >>> result = synth.synthesize("[S1] Hi. [S2] Hello!", prompt_wav="p.wav",
    ...                           prompt_text="[S1] Good morning. [S2] Morning.")  # doctest: +SKIP
    >>> result.audio.shape, result.sample_rate                              # doctest: +SKIP
    ((1, 52224), 22050)

The pipeline (see ``model.inference.prompts`` and ``model.inference.chunking``): the script is validated and
punctuated, the prompt decoded, cleaned and normalised; the script is cut before every
``[S1]`` into chunks of about 40 s with the prompt; each chunk's length comes from the
prompt's frames per token (with a floor for very short texts); chunks are generated in
batches with the time-dependent-CFG Euler sampler, vocoded, cross-faded, edge-trimmed and
scaled back to the prompt's loudness. A stereo checkpoint writes 2 channels, S1 left.

Every input is validated before any weights are loaded; bad input ends the command with a
one-line ``error: ...`` on stderr and a non-zero exit status. In batch mode the remaining
items are still synthesised and the failures are listed at the end (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.options import add_dataclass_args, dataclass_from_args, opt
from model.inference.defaults import InferenceDefaults
from model.inference.prompts import AudioSource, PromptError
from model.inference.synthesis import (
    DEFAULT_SEED,
    CheckpointInfo,
    InputError,
    PromptSpec,
    SynthesisOptions,
    SynthesisResult,
    Synthesizer,
    check_script,
    inspect_checkpoint,
    resolve_device,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointInfo",
    "InferenceDefaults",
    "InputError",
    "PromptSpec",
    "SynthesisOptions",
    "SynthesisResult",
    "Synthesizer",
    "main",
    "parse_test_list",
    "synthesize",
    "write_wav",
]


def synthesize(
    model_or_checkpoint: Synthesizer | str | os.PathLike,
    text: str,
    prompt_wav: AudioSource | None = None,
    prompt_text: str | None = None,
    spk1_wav: AudioSource | None = None,
    spk1_text: str | None = None,
    spk2_wav: AudioSource | None = None,
    spk2_text: str | None = None,
    *,
    num_step: int | None = None,
    guidance_scale: float | None = None,
    t_shift: float | None = None,
    speed: float = 1.0,
    seed: int = DEFAULT_SEED,
    vocoder: str | None = None,
    device: str = "auto",
    onnx_int8: bool = False,
    **options: Any,
) -> SynthesisResult:
    """Synthesise one dialogue (see :meth:`Synthesizer.synthesize`).

    Args:
        model_or_checkpoint: a :class:`Synthesizer`, or a checkpoint directory / hub name
            (loaded for this call only: build a :class:`Synthesizer` for repeated calls).
        text: the script ``[S1] ... [S2] ...``.
        prompt_wav, prompt_text: merged prompt; or
        spk1_wav, spk1_text, spk2_wav, spk2_text: split prompts.
        num_step, guidance_scale, t_shift: sampler settings (None: checkpoint defaults).
        speed: speaking-rate factor.
        seed: noise seed.
        vocoder: vocoder when loading a checkpoint (ignored for a Synthesizer).
        device: device when loading a checkpoint.
        onnx_int8: an ONNX export's int8 graphs, when loading one.
        **options: other :class:`SynthesisOptions` fields.

    Returns:
        The :class:`SynthesisResult`.
    """
    synth_options = SynthesisOptions(
        num_step=num_step,
        guidance_scale=guidance_scale,
        t_shift=t_shift,
        speed=speed,
        seed=seed,
        **options,
    )
    check_script(text, raw=synth_options.raw)
    spec = PromptSpec.from_args(prompt_wav, prompt_text, spk1_wav, spk1_text, spk2_wav, spk2_text)
    if isinstance(model_or_checkpoint, Synthesizer):
        synth = model_or_checkpoint
    else:
        info = inspect_checkpoint(model_or_checkpoint, onnx_int8=onnx_int8)
        # prompt problems are found before the weights are read
        spec.prepare(info.sample_rate, info.num_channels or 1, synth_options.prompt_options)
        synth = Synthesizer.load(info, device=device, vocoder=vocoder)
    prompt = synth.prepare_prompt(spec, synth_options)
    return synth.synthesize(text, prompt=prompt, options=synth_options)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``(channels, samples)`` float audio as 16-bit PCM wav (parents created)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.ascontiguousarray(audio.T), sample_rate, subtype="PCM_16")


# ----------------------------------------------------------------------------- test lists


@dataclass(frozen=True)
class TestListItem:
    """One line of a ZipVoice test list.

    Attributes:
        name: output wav stem.
        text: the script.
        prompt: the prompt (merged: 4 columns; split: 6 columns).
        line_number: 1-based line in the file.
    """

    name: str
    text: str
    prompt: PromptSpec
    line_number: int


@dataclass(frozen=True)
class Failure:
    """An item that could not be synthesised.

    Attributes:
        name: item name (or ``line N``).
        message: one-line reason.
        line_number: its line in the test list (0 when not from a list).
    """

    name: str
    message: str
    line_number: int = 0


# the columns of a test-list line: a merged prompt (4) or split prompts (6), upstream's order
_TEST_LIST_COLUMNS = {
    4: ("name", "prompt_text", "prompt_wav", "text"),
    6: ("name", "spk1_text", "spk2_text", "spk1_wav", "spk2_wav", "text"),
}


def _resolve_path(path: str, base: Path) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return str(base / path)


def parse_test_list(path: str | os.PathLike) -> tuple[list[TestListItem], list[Failure]]:
    """Read a test list; malformed lines become failures instead of stopping the run.

    Relative wav paths are taken from the working directory when they exist there, else
    from the list's folder. Blank lines and lines starting with ``#`` are skipped.

    Raises:
        InputError: the file cannot be read.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read test list {path}: {error}") from None
    base = path.resolve().parent
    items: list[TestListItem] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        where = f"{path.name}:{number}"
        columns = _TEST_LIST_COLUMNS.get(len(fields))
        if columns is not None:
            row = dict(zip(columns, fields))
            name, text = row["name"], row["text"]
            empty = [column for column in columns if not row[column]]
            if len(fields) == 4:
                spec = PromptSpec((_resolve_path(row["prompt_wav"], base),), (row["prompt_text"],))
            else:
                wavs = (_resolve_path(row["spk1_wav"], base), _resolve_path(row["spk2_wav"], base))
                spec = PromptSpec(wavs, (row["spk1_text"], row["spk2_text"]))
        else:
            failures.append(
                Failure(
                    f"line {number}",
                    f"{where}: expected 4 (merged prompt) or "
                    f"6 (split prompts) tab-separated columns, got {len(fields)}",
                    number,
                )
            )
            continue
        if empty:
            failures.append(
                Failure(
                    name or f"line {number}",
                    f"{where}: empty column(s): {', '.join(empty)}",
                    number,
                )
            )
            continue
        if "/" in name or name in (".", ".."):
            failures.append(
                Failure(name, f"{where}: the name must be a file stem, got {name!r}", number)
            )
            continue
        if name in seen:
            failures.append(Failure(name, f"{where}: duplicate name {name!r}", number))
            continue
        seen.add(name)
        items.append(TestListItem(name, text, spec, number))
    return items, failures


# ----------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class InferArgs:
    """The command line of ``python -m model.infer`` (one flag per field; see :func:`get_parser`).

    Attributes:
        checkpoint: checkpoint directory or hub model name.
        text, prompt_wav, prompt_text, spk1_wav, spk1_text, spk2_wav, spk2_text, out: one
            dialogue (merged or split prompt) and its output wav.
        test_list, res_dir: batch mode.
        synthesis: sampler and prompt settings.
        vocoder, device, onnx_int8, num_thread, quiet: runtime.
    """

    checkpoint: str = opt(
        help="checkpoint directory (ours, upstream's, a distilled student, or "
        "an ONNX export of python -m model.onnx_export) or hub model name",
        aliases=("--model-dir",),
        group="checkpoint",
    )
    text: str | None = opt(
        None, "the script: '[S1] ... [S2] ...' (must start with [S1])", group="one dialogue"
    )
    prompt_wav: str | None = opt(None, "merged prompt audio with both voices", group="one dialogue")
    prompt_text: str | None = opt(None, "its transcript, '[S1] ... [S2] ...'", group="one dialogue")
    spk1_wav: str | None = opt(
        None, "speaker 1's prompt audio (split prompts)", group="one dialogue"
    )
    spk1_text: str | None = opt(
        None, "speaker 1's prompt transcript (plain text)", group="one dialogue"
    )
    spk2_wav: str | None = opt(None, "speaker 2's prompt audio", group="one dialogue")
    spk2_text: str | None = opt(None, "speaker 2's prompt transcript", group="one dialogue")
    out: str = opt("result.wav", "output wav", aliases=("--res-wav-path",), group="one dialogue")
    test_list: str | None = opt(
        None,
        "TSV: name, prompt_text, prompt_wav, text (4 columns) "
        "or name, spk1_text, spk2_text, spk1_wav, spk2_wav, text (6 columns)",
        group="batch",
    )
    res_dir: str = opt("results", "output folder for --test-list", group="batch")
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    vocoder: str | None = opt(
        None,
        "hifigan, griffinlim, a local Vocos folder or a hub id (default: the "
        "one matching the checkpoint's features)",
        aliases=("--vocoder-path",),
        group="runtime",
    )
    device: str = opt(
        "auto", "auto, cpu, cuda, cuda:N or mps (an ONNX export: cpu or auto)", group="runtime"
    )
    onnx_int8: bool = opt(
        False, "run an ONNX export's int8 graphs (exported with --int8)", group="runtime"
    )
    num_thread: int = opt(
        1, "CPU threads (torch, and onnxruntime for an ONNX export)", group="runtime"
    )
    quiet: bool = opt(False, "warnings and errors only", group="runtime")

    @property
    def prompt(self) -> PromptSpec:
        """The prompt flags as a spec (raises ``InputError`` unless exactly one form is
        complete)."""
        return PromptSpec.from_args(*self._prompt_values)

    @property
    def one_dialogue(self) -> bool:
        """Whether any flag of the one-dialogue form (``--text`` or a prompt) is given."""
        return any(v is not None for v in (self.text, *self._prompt_values))

    @property
    def _prompt_values(self) -> tuple[str | None, ...]:
        return (
            self.prompt_wav,
            self.prompt_text,
            self.spk1_wav,
            self.spk1_text,
            self.spk2_wav,
            self.spk2_text,
        )


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`InferArgs` field, including those of its
    :class:`SynthesisOptions` (``--num_step`` or ``--num-step``), plus ZipVoice's names as
    aliases (``--model-dir``, ``--res-wav-path``, ``--vocoder-path``, ``--max-duration``,
    ``--raw-evaluation``, ``--remove-long-sil``)."""
    parser = argparse.ArgumentParser(
        prog="python -m model.infer",
        description="Zero-shot two-speaker dialogue synthesis from a [S1]/[S2] script and a "
        "voice prompt. Only clone voices you have permission to use.",
    )
    add_dataclass_args(parser, InferArgs, kebab=True)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _validate(text: str, spec: PromptSpec, info: CheckpointInfo, options: SynthesisOptions) -> None:
    """Check the script and decode/prepare the prompt with what is known before loading."""
    check_script(text, raw=options.raw)
    spec.prepare(info.sample_rate, info.num_channels or 1, options.prompt_cleaning)


def _set_threads(num_threads: int) -> None:
    import torch

    torch.set_num_threads(num_threads)


def _log_result(name: str, result: SynthesisResult) -> None:
    logger.info(
        "%s: %.2f s of audio (%d ch, %d chunk(s)), RTF %.3f, without vocoder %.3f",
        name,
        result.duration_s,
        result.num_channels,
        result.num_chunks,
        result.rtf,
        result.rtf_no_vocoder,
    )


def _run_one(args: InferArgs, info: CheckpointInfo) -> int:
    options = args.synthesis
    if args.text is None:
        return _fail("--text is required (or use --test-list)")
    spec = args.prompt
    _validate(args.text, spec, info, options)
    _set_threads(args.num_thread)
    synth = Synthesizer.load(
        info, device=args.device, vocoder=args.vocoder, num_threads=args.num_thread
    )
    result = synth.synthesize(
        args.text, prompt=synth.prepare_prompt(spec, options), options=options
    )
    write_wav(args.out, result.audio, result.sample_rate)
    _log_result(str(args.out), result)
    return 0


def _run_list(args: InferArgs, info: CheckpointInfo) -> int:
    options = args.synthesis
    from tqdm import tqdm

    items, failures = parse_test_list(args.test_list)
    total = len(items) + len(failures)
    valid: list[TestListItem] = []
    for item in items:
        try:
            _validate(item.text, item.prompt, info, options)
            valid.append(item)
        except (InputError, PromptError) as error:
            failures.append(Failure(item.name, _one_line(error), item.line_number))
    res_dir = Path(args.res_dir)
    times: list[tuple[str, float]] = []
    if valid:
        _set_threads(args.num_thread)
        synth = Synthesizer.load(
            info, device=args.device, vocoder=args.vocoder, num_threads=args.num_thread
        )
        res_dir.mkdir(parents=True, exist_ok=True)
        total_audio = total_s = total_model_s = 0.0
        for item in tqdm(valid, desc="synthesising", unit="dialogue", disable=None):
            try:
                result = synth.synthesize(
                    item.text, prompt=synth.prepare_prompt(item.prompt, options), options=options
                )
            except Exception as error:  # one failed item must not stop the others
                logger.debug("%s failed", item.name, exc_info=True)
                failures.append(Failure(item.name, _one_line(error), item.line_number))
                continue
            write_wav(res_dir / f"{item.name}.wav", result.audio, result.sample_rate)
            _log_result(item.name, result)
            times.append((item.name, result.synthesis_s))
            total_audio += result.duration_s
            total_s += result.synthesis_s
            total_model_s += result.rtf_no_vocoder * result.duration_s
        if total_audio > 0:
            logger.info(
                "%d dialogue(s), %.1f s of audio: RTF %.3f, without vocoder %.3f",
                len(times),
                total_audio,
                total_s / total_audio,
                total_model_s / total_audio,
            )
        with open(res_dir / "synthesis_times.tsv", "w", encoding="utf-8") as handle:
            handle.write("# name\tsynthesis seconds\n")
            handle.writelines(f"{name}\t{seconds:.4f}\n" for name, seconds in times)
    if failures:
        print(f"error: {len(failures)} of {total} item(s) failed:", file=sys.stderr)
        for failure in sorted(failures, key=lambda f: f.line_number):
            print(f"  {failure.name}: {failure.message}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 1 bad input or failed items)."""
    try:
        args = dataclass_from_args(InferArgs, get_parser().parse_args(argv))
    except (InputError, PromptError) as error:
        return _fail(_one_line(error))
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    single = args.one_dialogue
    if args.test_list is not None and single:
        return _fail("--test-list cannot be combined with --text or prompt options")
    try:
        if args.num_thread < 1:
            raise InputError(f"--num-thread must be >= 1, got {args.num_thread}")
        info = inspect_checkpoint(args.checkpoint, onnx_int8=args.onnx_int8)
        if info.is_onnx:
            resolve_device(args.device, onnx=True)  # a GPU request fails before any decoding
        if args.test_list is not None:
            return _run_list(args, info)
        return _run_one(args, info)
    except (InputError, PromptError) as error:
        return _fail(_one_line(error))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except Exception as error:  # a CLI reports, it does not dump a traceback
        logger.debug("unexpected error", exc_info=True)
        return _fail(f"{type(error).__name__}: {_one_line(error)}")


if __name__ == "__main__":
    sys.exit(main())
