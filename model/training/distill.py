"""Distil a trained dialogue TTS network into a few-step student (ZipVoice-Distill recipe).

Usage example::

    # stage 1: the fixed trained model is the teacher, w ~ U(0, 2)
    python -m model.distill --teacher exp/dialog --cuts data/cuts.jsonl.gz \\
        --exp-dir exp/dialog_distill1 --stage 1 --num-steps 60000 --lr 5e-4
    # stage 2: the teacher is an EMA of the student (decay 0.9999), w ~ U(1, 3)
    python -m model.distill --teacher exp/dialog_distill1 --cuts data/cuts.jsonl.gz \\
        --exp-dir exp/dialog_distill --stage 2 --num-steps 2000 --lr 1e-4
    # the student then samples in 4 steps by default
    python -m model.infer --model-dir exp/dialog_distill ...
    # several GPUs (or CPU processes): torchrun, as for training
    torchrun --standalone --nproc_per_node 8 -m model.distill --teacher exp/dialog ...

One update (reference §1.9): draw t ~ U(0, 1), two hop sizes d1 ~ U(0, min(0.3, 1 - t)) and
d2 ~ U(0, min(0.3, 1 - t - d1)), a guidance scale w and a (suffix) prompt mask; from
x_t = t·x1 + (1 - t)·x0 the teacher makes two Euler hops with guidance w (stage 1:
upstream's time-dependent CFG, a doubled batch; stage 2: the EMA student, w as an input),
reaching x_{t+d1+d2}. The student makes one jump over the same span from x_t with w as an
input. The loss is the MSE between the two implied velocities
``(x_{t+d1+d2} - x_t) / (d1 + d2)`` on masked, non-padding frames; for Euler hops that is
``(d1·v1 + d2·v2) / (d1 + d2)`` against the student's velocity, computed in that form so
no tiny span divides anything (:mod:`model.training.distill_objective`). The loop (seeds,
update, logs, exact resume, DDP) is the one training uses (:mod:`model.training.loop`).

The experiment directory is a checkpoint directory (:func:`model.network.student.load_model`,
``python -m model.infer --model-dir``): ``model.safetensors`` (the student), ``network.json``,
``tokens.txt``, ``features.json``, ``inference.json`` (default steps and guidance), plus
``distill.json`` (these options), ``distill-last.pt`` (resume state), ``log/distill.jsonl`` and
``log/distill.log``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.options import opt
from model.network.flow import FlowOptions
from model.training.command import check_run_paths, command_parser, run_command
from model.training.data import DataOptions
from model.training.distill_objective import (
    DistillationObjective,
    draw_distill_inputs,
)
from model.training.ema import ema_update
from model.training.loop import (
    DistContext,
    LoopSettings,
    TrainingLoop,
    amp_dtype,
    atomic_save,
    process_run,
    wrap_for_ranks,
)
from model.training.options import run_options_fields

logger = logging.getLogger(__name__)

STAGES = (1, 2)
GUIDANCE_RANGES = {1: (0.0, 2.0), 2: (1.0, 3.0)}
STAGE_LR = {1: 5e-4, 2: 1e-4}
CHECKPOINT_LAST = "distill-last.pt"
OPTIONS_FILE = "distill.json"
MODE_OF_VARIANT = {
    "dialog": "dialog",
    "dialog_stereo": "stereo",
    "zipvoice": "single",
    "distill": "single",
}


@dataclass(frozen=True)
class DistillOptions:
    """Everything a distillation run is configured by (saved as ``distill.json``).

    Attributes:
        teacher: checkpoint dir of the teacher (stage 1: a trained model; stage 2: the
            stage-1 student, which also initialises the student and its EMA).
        cuts: training CutSet manifests.
        exp_dir: output directory (a checkpoint directory of the student).
        stage: 1 (fixed teacher, w ~ U(0, 2)) or 2 (EMA teacher, w ~ U(1, 3)).
        num_steps: optimizer steps of this run.
        lr: learning rate; None = upstream's (5e-4 stage 1, 1e-4 stage 2).
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm (0 = off).
        ema_decay: stage 2: decay of the EMA teacher.
        max_hop: largest teacher hop (0.3 upstream).
        guidance_min: smallest sampled w; None = stage default.
        guidance_max: largest sampled w; None = stage default.
        default_num_step: saved default Euler steps of the student.
        default_guidance_scale: saved default w; None = the teacher's default, clipped to
            the sampled range.
        t_shift: saved default time warp.
        save_every: steps between checkpoints.
        log_every: steps between log lines.
        seed: base seed.
        resume: continue from ``exp_dir/distill-last.pt``.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: ``none`` or ``bf16`` (autocast of the student and teacher passes).
        log_progress: tqdm bar.
        data: batching options (``model.training.data``).
    """

    teacher: str = opt(help="teacher checkpoint dir (stage 2: the stage-1 student)", group="run")
    cuts: tuple[str, ...] = opt(help="training cuts manifest(s)", group="run")
    exp_dir: str = opt(help="output dir (the student checkpoint)", group="run")
    stage: int = opt(1, "1: fixed teacher, 2: EMA teacher", choices=STAGES, group="run")
    num_steps: int = opt(60000, "optimizer steps of this run", group="run")
    lr: float | None = opt(
        None, "learning rate (default: 5e-4 (stage 1) / 1e-4 (stage 2))", group="run"
    )
    weight_decay: float = opt(0.0, "AdamW weight decay", group="run")
    grad_clip: float = opt(1.0, "max gradient norm (0: off)", group="run")
    ema_decay: float = opt(0.9999, "stage-2 EMA teacher", group="run")
    max_hop: float = opt(0.3, "largest teacher hop", group="run")
    guidance_min: float | None = opt(
        None, "smallest sampled w (default: 0 (stage 1) / 1 (stage 2))", group="run"
    )
    guidance_max: float | None = opt(
        None, "largest sampled w (default: 2 (stage 1) / 3 (stage 2))", group="run"
    )
    default_num_step: int = opt(4, "the student's saved default Euler steps", group="run")
    default_guidance_scale: float | None = opt(
        None,
        "the student's saved default w (default: the teacher's, clipped to the range)",
        group="run",
    )
    t_shift: float = opt(0.5, "the student's saved default time warp", group="run")
    save_every: int = opt(1000, "steps between checkpoints", group="run")
    log_every: int = opt(10, "steps between log lines", group="run")
    seed: int = opt(42, "base seed", group="run")
    resume: bool = opt(False, "continue from distill-last.pt", group="run")
    device: str = opt("auto", "device", choices=("auto", "cpu", "cuda"), group="run")
    amp: str = opt("none", "autocast of the passes", choices=("none", "bf16"), group="run")
    log_progress: bool = opt(True, "tqdm bar", negations=("--no-progress",), group="run")
    data: DataOptions = dataclasses.field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage={self.stage}: expected 1 or 2")
        if not self.cuts:
            raise ValueError("cuts: give at least one manifest")
        for name in ("num_steps", "save_every", "log_every", "default_num_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: need >= 1")
        if not 0.0 < self.max_hop <= 0.5:
            raise ValueError(f"max_hop={self.max_hop}: need 0 < max_hop <= 0.5")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: need 0 < decay < 1")
        lo, hi = self.guidance_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"guidance range ({lo}, {hi}): need 0 <= min <= max")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr={self.lr}: need > 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: expected auto, cpu or cuda")
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp={self.amp!r}: expected none or bf16")
        if Path(self.exp_dir).resolve() == Path(self.teacher).resolve():
            raise ValueError("exp_dir must differ from the teacher directory")

    @property
    def guidance_range(self) -> tuple[float, float]:
        """``(min, max)`` of the sampled guidance scale."""
        lo, hi = GUIDANCE_RANGES[self.stage]
        return (
            lo if self.guidance_min is None else self.guidance_min,
            hi if self.guidance_max is None else self.guidance_max,
        )

    @property
    def learning_rate(self) -> float:
        """``lr`` or the stage's default."""
        return STAGE_LR[self.stage] if self.lr is None else self.lr

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(**run_options_fields(data, ("cuts",)))


# ------------------------------------------------------------------------------------------
# evaluation: how close is the few-step student to the many-step teacher


@dataclass(frozen=True)
class FewStepComparison:
    """Mean L1 distances (log-mel units, target frames) to the teacher's many-step output.

    Attributes:
        reference_steps: steps of the teacher reference.
        teacher: few-step count -> L1 of the teacher sampled with that many steps.
        student: few-step count -> L1 of the student sampled with that many steps.
        guidance_scale: w used by all runs.
        num_seeds: noise draws averaged.
    """

    reference_steps: int
    teacher: dict[int, float]
    student: dict[int, float]
    guidance_scale: float
    num_seeds: int


def compare_few_step(
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    *,
    tokens: list[int],
    prompt_features: Tensor,
    total_frames: int,
    feat_scale: float,
    few_steps: tuple[int, ...] = (4,),
    reference_steps: int = 16,
    guidance_scale: float = 1.5,
    t_shift: float = 0.5,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> FewStepComparison:
    """Samples teacher (CFG) and student (w as input) from the same noise and prompt and
    measures each few-step output against the teacher's ``reference_steps`` output.

    Args:
        teacher: the trained (non-distilled) network.
        student: the distilled network.
        tokens: prompt + target token ids.
        prompt_features: shape ``(T_p, F)``, model-space prompt mel.
        total_frames: prompt + target frames ("real" duration).
        feat_scale: model-space scale (distances are reported in log-mel units).
        few_steps: step counts to evaluate.
        reference_steps: the teacher's reference step count.
        guidance_scale: w.
        t_shift: time warp.
        seeds: noise seeds (one sample each).

    Returns:
        The distances.
    """
    from model.network.flow import sample_with_prompt

    prompt_frames = prompt_features.size(0)

    def run(network, steps: int, distill: bool, seed: int) -> Tensor:
        out = sample_with_prompt(
            network,
            tokens=[list(tokens)],
            prompt_features=prompt_features.unsqueeze(0),
            prompt_features_lens=torch.tensor([prompt_frames]),
            features_lens=torch.tensor([total_frames]),
            seed=seed,
            num_steps=steps,
            t_shift=t_shift,
            guidance_scale=guidance_scale,
            distill=distill,
        )
        return out[0, prompt_frames:total_frames] / feat_scale

    teacher_l1 = {n: 0.0 for n in few_steps}
    student_l1 = {n: 0.0 for n in few_steps}
    for seed in seeds:
        reference = run(teacher, reference_steps, False, seed)
        for n in few_steps:
            teacher_l1[n] += float((run(teacher, n, False, seed) - reference).abs().mean())
            student_l1[n] += float((run(student, n, True, seed) - reference).abs().mean())
    k = len(seeds)
    return FewStepComparison(
        reference_steps=reference_steps,
        teacher={n: v / k for n, v in teacher_l1.items()},
        student={n: v / k for n, v in student_l1.items()},
        guidance_scale=guidance_scale,
        num_seeds=k,
    )


# ------------------------------------------------------------------------------------------
# the run


def _feature_config(teacher_dir: Path, feat_dim: int):
    from model.audio.features import FeatureConfig

    path = teacher_dir / "features.json"
    if path.is_file():
        return FeatureConfig.from_json(path.read_text(encoding="utf-8"))
    name = {100: "upstream", 80: "offline"}.get(feat_dim)
    if name is None:
        raise ValueError(f"{teacher_dir} has no features.json and no preset has {feat_dim} mels")
    return FeatureConfig.preset(name)


class Distiller(TrainingLoop):
    """One process's distillation run (the loop, resume and DDP of :mod:`model.training.loop`).

    Args:
        options: the run's options.
        ctx: this process's place in the job.
    """

    window_keys = ("loss", "ref_loss", "grad_norm")
    last_keys = ("lr", "frames")

    def __init__(self, options: DistillOptions, ctx: DistContext) -> None:
        from model.audio.features import MelExtractor
        from model.inference.defaults import InferenceDefaults
        from model.network.student import load_model, student_from_teacher, takes_guidance_input
        from model.tokenizer import Tokenizer, TokenTable
        from model.training.data import DialogTTSDataset, load_cuts

        super().__init__(LoopSettings.of(options, "distill"), ctx, Path(options.exp_dir))
        self.options = options
        self.device = ctx.device
        torch.manual_seed(options.seed)
        loaded = load_model(options.teacher, device=self.device)
        teacher_is_student = takes_guidance_input(loaded.network)
        if options.stage == 1 and teacher_is_student:
            raise ValueError(
                f"stage 1 needs a trained (non-distilled) teacher; {options.teacher} is distilled"
            )
        if options.stage == 2 and not teacher_is_student:
            raise ValueError(
                f"stage 2 starts from a stage-1 student; {options.teacher} is "
                "not distilled (run --stage 1 first)"
            )
        self.config = loaded.config
        self.mode = MODE_OF_VARIANT[loaded.config.variant]
        if options.stage == 1:
            self.student = student_from_teacher(loaded.network)
        else:
            self.student = copy.deepcopy(loaded.network)
        self.teacher = loaded.network.eval()  # stage 2: the EMA of the student, same start
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student.to(self.device).train()
        self.teacher_guidance_input = takes_guidance_input(self.teacher)  # stage 2
        self.network = self.student
        self.model = wrap_for_ranks(
            DistillationObjective(self.student, self.teacher, self.teacher_guidance_input), ctx
        )
        guidance = options.default_guidance_scale
        if guidance is None:  # the teacher's, within the range the student was trained on
            lo, hi = options.guidance_range
            guidance = min(max(loaded.defaults.guidance_scale, lo), hi)
        self.defaults = InferenceDefaults(
            num_step=options.default_num_step,
            guidance_scale=float(guidance),
            t_shift=options.t_shift,
            guidance_input=True,
            distill_stage=options.stage,
            teacher=str(options.teacher),
        )
        self.tokens = dict(loaded.tokens)
        table = TokenTable(tuple(sorted(self.tokens.items(), key=lambda kv: kv[1])))
        self.feature_config = _feature_config(Path(options.teacher), loaded.config.feat_dim)
        self.flow_options = FlowOptions.for_mode("single" if self.mode == "single" else "dialog")
        on_the_fly = options.data.on_the_fly_feats
        self.dataset = DialogTTSDataset(
            Tokenizer(table, mode="emilia" if self.mode == "single" else "dialog"),
            MelExtractor(self.feature_config) if on_the_fly else None,
            mode=self.mode,
            feat_scale=self.feature_config.feat_scale,
            on_the_fly_feats=on_the_fly,
        )
        self.use_data(self.dataset, load_cuts(options.cuts, options.data), options.data)
        self.optimizer = torch.optim.AdamW(
            self.student.parameters(),
            lr=options.learning_rate,
            betas=(0.9, 0.98),
            weight_decay=options.weight_decay,
        )
        self.amp = amp_dtype(options.amp, ctx.device)

    # -------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        return {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict() if self.options.stage == 2 else None,
            **self.loop_state(),
            "options": self.options.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict` output."""
        self.student.load_state_dict(state["student"])
        if state["teacher"] is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.load_loop_state(state)

    def save(self) -> None:
        """Writes the student checkpoint directory and ``distill-last.pt``."""
        from model.network.student import save_model

        features_json = self.exp_dir / "features.json"
        features_json.write_text(self.feature_config.to_json() + "\n", encoding="utf-8")
        student = copy.deepcopy(self.student).eval()
        save_model(student, self.exp_dir, self.tokens, self.defaults)
        atomic_save(self.state_dict(), self.exp_dir / CHECKPOINT_LAST)
        logger.info("step %d: saved the student to %s", self.step, self.exp_dir)

    # -------------------------------------------------------------- steps

    def _features_for(self, batch: dict[str, Any]) -> Tensor:
        if self.mode == "stereo" and self.step % 2 == 0:
            return batch["stereo_features"]  # like training: stereo and mono mix alternate
        return batch["features"]

    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """The distillation loss of one batch (teacher hops and student jump from one draw)."""
        features = self._features_for(batch).to(self.device)
        lens = batch["features_lens"].to(self.device)
        draw = draw_distill_inputs(
            features,
            lens,
            guidance_range=self.options.guidance_range,
            max_hop=self.options.max_hop,
            flow_options=self.flow_options,
            generator=generator,
        )
        with self.autocast():
            out = self.model(batch["tokens"], features, lens, **vars(draw))
        return {"loss": out["loss"], "ref_loss": out["ref_loss"], "frames": out["num_frames"]}

    def after_update(self, step: int) -> None:
        """Stage 2: move the EMA teacher towards the student."""
        if self.options.stage == 2:
            ema_update(self.teacher.state_dict(), self.student.state_dict(), self.options.ema_decay)

    def describe(self, record: dict[str, float]) -> str:
        """``step N distill loss L (flow ref R) grad-norm G``."""
        return (
            f"step {record['step']} distill loss {record['loss']:.5f} "
            f"(flow ref {record['ref_loss']:.4f}) grad-norm {record['grad_norm']:.3f}"
        )


def run(options: DistillOptions) -> Path:
    """Distil in this process (one rank of a torchrun job, or alone).

    Args:
        options: the run's options.

    Returns:
        The experiment (student checkpoint) directory.

    Raises:
        ValueError, FileNotFoundError: bad options, before any training.
    """
    exp_dir = check_run_paths(
        options.cuts, options.exp_dir, CHECKPOINT_LAST, options.resume, "a distillation run"
    )
    if not Path(options.teacher).is_dir():
        raise FileNotFoundError(f"teacher directory not found: {options.teacher}")
    last = exp_dir / CHECKPOINT_LAST
    with process_run(options.device, exp_dir, "distill") as ctx:
        if ctx.is_main:
            (exp_dir / OPTIONS_FILE).write_text(
                json.dumps(options.to_dict(), indent=1) + "\n", encoding="utf-8"
            )
        distiller = Distiller(options, ctx)
        if options.resume:
            distiller.resume(last)
        logger.info(
            "rank %d/%d: stage %d distillation of %s (%s, %d parameters) on %s",
            ctx.rank,
            ctx.world_size,
            options.stage,
            options.teacher,
            distiller.config.variant,
            sum(p.numel() for p in distiller.student.parameters()),
            ctx.device,
        )
        distiller.fit()
        del distiller  # drop the DDP reducer (and its gloo work) before the group goes
    return exp_dir


# ------------------------------------------------------------------------------------------
# CLI


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`DistillOptions` field (as ``model.train``)."""
    return command_parser("model.distill", __doc__.split("\n\n")[0], DistillOptions)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad options: 2, no traceback)."""
    return run_command("model.distill", get_parser(), DistillOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())
