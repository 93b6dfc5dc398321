"""scripts/portability.py: the variants this CPU can run, the MP3 round trip, the spread table."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import soundfile as sf

from tests.conftest import REPO


def _module():
    spec = importlib.util.spec_from_file_location("portability", REPO / "scripts/portability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_only_force_what_the_cpu_has():
    portability = _module()
    names = dict(portability.variants())
    assert {"default", "ct2-generic", "threads1", "reencoded", "torch-generic"} <= set(names)
    assert ("ct2-avx512" in names) == ("avx512f" in portability.cpu_flags())
    assert ("ct2-mkl" in names) != ("ct2-no-mkl" in names)


def test_reencoded_copy_is_aligned_and_close(tmp_path, sample_wav):
    portability = _module()
    portability.reencode(sample_wav, tmp_path / "mp3.wav")
    original, rate = sf.read(sample_wav, dtype="float32")
    copy, copy_rate = sf.read(tmp_path / "mp3.wav", dtype="float32")
    assert copy_rate == rate and copy.shape == original.shape
    assert not np.array_equal(copy, original)
    assert np.corrcoef(copy, original)[0, 1] > 0.98  # aligned: no codec delay left


def test_table_reports_spread_bound_and_margin(tmp_path, capsys):
    rows = [
        {
            "test": "t.py::a",
            "name": "wer",
            "value": 0.16,
            "at_most": 0.3,
            "at_least": None,
            "variant": "default",
        },
        {
            "test": "t.py::a",
            "name": "wer",
            "value": 0.21,
            "at_most": 0.3,
            "at_least": None,
            "variant": "ct2-mkl",
        },
        {
            "test": "t.py::b",
            "name": "ovrl",
            "value": 2.79,
            "at_most": None,
            "at_least": 2.8,
            "variant": "threads1",
        },
    ]
    path = tmp_path / "figures.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _module().table(path) == 1  # one figure broke its bound
    lines = capsys.readouterr().out.splitlines()
    wer = next(line for line in lines if line.startswith("a wer"))
    assert wer.split()[2:7] == ["2", "0.16", "0.21", "<=", "0.3"] and "ct2-mkl" in wer
    assert "0.09" in wer
    ovrl = next(line for line in lines if line.startswith("b ovrl"))
    assert ovrl.endswith("threads1  BROKEN")
