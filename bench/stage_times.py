"""Where a run's wall time went, from the pipeline's own counters (``metrics.json``).

Every stage counts ``wall_ms`` (its processing), ``load_ms`` (its models loading, once per worker
process) and ``audio_ms_in``; the rest of the run's wall time is outside the stages (Beam, the
writers, the corpus and the report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

STAGES = ("decode", "vad", "diarize", "asr", "dialogue", "filters")


@dataclass(frozen=True)
class StageTimes:
    """One run: each stage's seconds, model loading, the wall time and the audio it covered."""

    stage_s: dict[str, float]
    load_s: float
    wall_s: float
    audio_s: float

    @classmethod
    def from_output(cls, output: Path | str, wall_s: float) -> StageTimes:
        metrics = json.loads((Path(output) / "metrics.json").read_text())
        stage_s = {s: metrics.get(s, {}).get("wall_ms", 0) / 1000 for s in STAGES}
        load_s = sum(metrics.get(s, {}).get("load_ms", 0) for s in STAGES) / 1000
        audio_s = metrics.get("decode", {}).get("audio_ms_in", 0) / 1000
        return cls(stage_s, load_s, wall_s, audio_s)

    @property
    def stages_s(self) -> float:
        return sum(self.stage_s.values())

    @property
    def outside_s(self) -> float:
        """Wall time in neither a stage nor model loading."""
        return self.wall_s - self.stages_s - self.load_s

    def rtf(self, stage: str) -> float:
        """Seconds of the stage per second of audio."""
        return self.stage_s[stage] / self.audio_s if self.audio_s else float("nan")

    def lines(self) -> list[str]:
        """The per-stage table and the overhead line."""
        out = [f"{'stage':>10} {'seconds':>9} {'RTF':>7} {'share':>6}"]
        for stage in STAGES:
            out.append(
                f"{stage:>10} {self.stage_s[stage]:>9.1f} {self.rtf(stage):>7.4f} "
                f"{self.stage_s[stage] / self.wall_s:>6.1%}"
            )
        out.append(
            f"{'stages':>10} {self.stages_s:>9.1f} {self.stages_s / self.audio_s:>7.4f} "
            f"{self.stages_s / self.wall_s:>6.1%}"
        )
        out.append(f"{'loading':>10} {self.load_s:>9.1f} {'':>7} {self.load_s / self.wall_s:>6.1%}")
        out.append(
            f"{'outside':>10} {self.outside_s:>9.1f} {'':>7} {self.outside_s / self.wall_s:>6.1%}"
        )
        out.append(
            f"wall {self.wall_s:.1f} s for {self.audio_s:.0f} s of audio (RTF {self.wall_s / self.audio_s:.4f}); "
            f"outside the stages and model loading: {self.outside_s / self.wall_s:.1%} of the wall "
            f"time, {self.outside_s / self.stages_s:.1%} over the stages' sum"
        )
        return out

    def to_dict(self) -> dict:
        return {
            "stage_s": self.stage_s,
            "load_s": self.load_s,
            "wall_s": self.wall_s,
            "audio_s": self.audio_s,
        }

    @classmethod
    def from_dict(cls, row: dict) -> StageTimes:
        return cls(row["stage_s"], row["load_s"], row["wall_s"], row["audio_s"])
