"""The option builder (core.options): dataclass fields declared with opt() as flags."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from core.options import add_dataclass_args, dataclass_from_args, opt, parse_bool


@dataclass(frozen=True)
class Inner:
    max_duration_s: float = opt(200.0, "batch seconds", aliases=("--max-duration",))
    shuffle: bool = opt(True, "shuffle cuts", negations=("--no-shuffle",))
    seed: int = 0  # not a flag


@dataclass(frozen=True)
class Outer:
    cuts: tuple[str, ...] = opt(help="manifests")
    exp_dir: str = opt(help="experiment dir")
    ref_duration_s: float = opt(50.0, "reference seconds", aliases=("--ref-duration",))
    text_drop_prob: float = opt(0.2, "dropout", aliases=("--condition-drop-ratio",))
    mode: str = opt("dialog", "mode", choices=("dialog", "single"))
    resume: bool = opt(False, "continue")
    lr: float | None = opt(None, "learning rate (default: by stage)")
    valid_cuts: tuple[str, ...] = opt((), "validation manifests")
    stage: int = opt(1, "stage", choices=(1, 2))
    config: str | None = opt(None, "network config", required=True)
    crossfade_s: float = 0.1  # not a flag
    inner: Inner = dataclasses.field(default_factory=Inner)


def _parser(kebab: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test", exit_on_error=False)
    add_dataclass_args(parser, Outer, kebab=kebab)
    return parser


def _parse(*argv: str) -> Outer:
    base = ["--cuts", "a.jsonl", "--exp_dir", "exp", "--config", "tiny"]
    return dataclass_from_args(Outer, _parser().parse_args([*base, *argv]))


def test_defaults_round_trip():
    options = _parse()
    assert options == Outer(cuts=("a.jsonl",), exp_dir="exp", config="tiny")
    assert options.inner == Inner()


def test_field_name_kebab_twin_and_aliases():
    for flag in ("--ref_duration_s", "--ref-duration-s", "--ref-duration", "--ref_duration"):
        assert _parse(flag, "25").ref_duration_s == 25.0
    for flag in ("--text_drop_prob", "--text-drop-prob", "--condition-drop-ratio"):
        assert _parse(flag, "0.1").text_drop_prob == 0.1
    assert _parse("--max-duration", "80").inner.max_duration_s == 80.0
    assert _parse("--max_duration_s", "81").inner.max_duration_s == 81.0


def test_without_kebab_only_the_field_name():
    parser = _parser(kebab=False)
    flags = {s for action in parser._actions for s in action.option_strings}
    assert "--ref_duration_s" in flags and "--ref-duration-s" not in flags
    assert "--ref-duration" in flags  # declared aliases are always there


def test_bools():
    assert _parse("--resume").resume is True
    assert _parse("--resume", "false").resume is False
    assert _parse("--resume", "yes").resume is True
    assert _parse().inner.shuffle is True
    assert _parse("--no-shuffle").inner.shuffle is False
    assert _parse("--no_shuffle").inner.shuffle is False
    assert _parse("--shuffle", "false").inner.shuffle is False
    assert parse_bool("ON") is True and parse_bool("0") is False
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bool("maybe")


def test_tuples_choices_and_optional():
    options = _parse("--valid-cuts", "v1", "v2", "--mode", "single", "--stage", "2")
    assert options.valid_cuts == ("v1", "v2")
    assert isinstance(options.cuts, tuple)
    assert options.mode == "single" and options.stage == 2
    assert _parse().lr is None
    assert _parse("--lr", "1e-3").lr == 1e-3
    with pytest.raises(argparse.ArgumentError):
        _parse("--mode", "stereo")
    with pytest.raises(argparse.ArgumentError):
        _parse("--stage", "3")


def test_required_and_unknown_flags_fail():
    parser = argparse.ArgumentParser(prog="test")
    add_dataclass_args(parser, Outer, kebab=True)
    with pytest.raises(SystemExit):
        parser.parse_args(["--cuts", "a", "--config", "tiny"])  # no --exp_dir
    with pytest.raises(SystemExit):
        parser.parse_args(["--cuts", "a", "--exp_dir", "e"])  # --config declared required
    with pytest.raises(SystemExit):
        parser.parse_args(["--cuts", "a", "--exp_dir", "e", "--config", "t", "--bogus", "1"])


def test_non_opt_fields_are_not_flags_and_help_shows_defaults():
    parser = _parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    assert "--crossfade_s" not in flags and "--seed" not in flags
    text = parser.format_help()
    assert "reference seconds (default: 50.0)" in text
    assert "learning rate (default: by stage)" in text  # no second default
    assert "same as --shuffle false" in text


@dataclass
class Clash:
    seed: int = opt(1, "seed")


@dataclass
class Both:
    seed: int = opt(2, "seed")
    clash: Clash = dataclasses.field(default_factory=Clash)


def test_duplicate_field_names_fail():
    with pytest.raises(ValueError, match="seed"):
        add_dataclass_args(argparse.ArgumentParser(), Both)
