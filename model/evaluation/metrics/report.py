"""The markdown results file: a table in the layout of ZipVoice-Dialog's Table 4, then details.

One row per evaluated system (several runs can share a file, see :func:`render`): model, params,
RTF, WER, cpWER, cpSIM, then DNSMOS (our stand-in for UTMOS) and turn-taking columns. A line
names the model behind each metric: they are offline stand-ins, so the figures are not
comparable with the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from model.evaluation.metrics.summary import Summary

__all__ = ["item_table", "main_table", "render"]

_HEADER = (
    "| Model | Params | RTF | WER (%) | cpWER (%) | cpSIM | cpSIM swapped | DNSMOS OVRL "
    "| SIG | BAK | Turn acc. (%) | Switch err. | Items | Hours |"
)


def _num(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def main_table(summaries: Sequence[Summary]) -> str:
    """The comparison table, one row per system."""
    lines = [_HEADER, "|" + "---|" * _HEADER.count(" | ") + "---|"]
    for s in summaries:
        lines.append(
            f"| {s.model or '–'} | {s.params or '–'} | {_num(s.rtf, 3)} | {_num(s.wer, 2, 100)} | "
            f"{_num(s.cpwer, 2, 100)} | {_num(s.cpsim, 3)} | {_num(s.cpsim_swapped, 3)} | "
            f"{_num(s.dnsmos_ovrl, 2)} | {_num(s.dnsmos_sig, 2)} | {_num(s.dnsmos_bak, 2)} | "
            f"{_num(s.turn_accuracy, 1, 100)} | {_num(s.switch_error, 2)} | {s.num_items} | "
            f"{s.hours:.3f} |"
        )
    return "\n".join(lines)


def item_table(items: Sequence[Mapping[str, Any]]) -> str:
    """Per-item figures of one run."""
    lines = [
        (
            "| Item | Dur. (s) | WER (%) | cpWER (%) | cpSIM | DNSMOS OVRL | Turns ok | "
            "Switches (found/exp.) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for i in items:
        lines.append(
            f"| {i['name']} | {i['duration_s']:.1f} | {_num(i['wer'], 1, 100)} | "
            f"{_num(i['cpwer'], 1, 100)} | {_num(i.get('cpsim'), 3)} | "
            f"{_num(i.get('dnsmos_ovrl'), 2)} | {i['turns_correct']}/{i['num_turns']} | "
            f"{i['switches_found']}/{i['switches_expected']} |"
        )
    return "\n".join(lines)


def render(
    summaries: Sequence[Summary], items: Sequence[Mapping[str, Any]] = (), test_list: str = ""
) -> str:
    """The whole results file: table, what each metric used, notes, per-item details.

    Args:
        summaries: one per system (the last is the run whose items are given).
        items: per-item results of the last run.
        test_list: the test list's path, for the header.
    """
    last = summaries[-1] if summaries else None
    out = ["# Dialogue TTS evaluation", ""]
    if test_list:
        out += [
            f"Test list: `{test_list}`"
            + (f" ({last.prompt_mode} prompts)" if last and last.prompt_mode else ""),
            "",
        ]
    out += [main_table(summaries), ""]
    if last is not None and last.models:
        parts = "; ".join(f"{k}: {v}" for k, v in last.models.items())
        out += [
            (
                f"Metric models: {parts}. These are offline stand-ins, not the paper's WhisperD, "
                "WavLM-large ECAPA-TDNN and UTMOS, so the figures are **not comparable with the "
                "ZipVoice-Dialog paper's**; compare systems within this table only."
            ),
            "",
        ]
    if last is not None:
        limit = (
            f"items of at most {last.cpwer_max_s:g} s"
            if last.cpwer_max_s is not None
            else "all items"
        )
        out += [
            f"WER and cpWER are corpus rates (errors / reference words) with the project's "
            f"fixed normalisation; cpWER over {limit} ({last.cpwer_items}). cpSIM is the "
            "better of the two speaker pairings' mean cosine; 'cpSIM swapped' is the other "
            "pairing (the gap shows how well the voices are told apart). Turn accuracy: "
            "script turns whose words fall on the right diarized speaker. Switch err.: mean "
            "|found − expected| speaker changes per dialogue."
            + (f" Missing generated wavs: {last.num_missing}." if last.num_missing else ""),
            "",
        ]
    if items:
        out += [
            "## Items" + (f" ({last.model})" if last and last.model else ""),
            "",
            item_table(items),
            "",
        ]
    return "\n".join(out)
