"""VAD on the real sample against its reference speech (sample.rttm)."""

from __future__ import annotations

import numpy as np
import pytest

from core.audio_io import decode_audio
from pipeline.vad import VadOptions, detect_speech, load_vad_model
from tests.conftest import read_rttm


def _mask(regions, seconds: float, step: float = 0.01) -> np.ndarray:
    mask = np.zeros(int(seconds / step) + 1, bool)
    for start, end in regions:
        mask[int(start / step) : int(end / step)] = True
    return mask


def vad_scores(regions, reference, seconds: float) -> tuple[float, float]:
    """(coverage of the reference speech, false alarm relative to the reference speech)."""
    hyp, ref = _mask(regions, seconds), _mask(reference, seconds)
    return (hyp & ref).sum() / ref.sum(), (hyp & ~ref).sum() / ref.sum()


@pytest.fixture(scope="module")
def sample_audio(sample_wav):
    return decode_audio(str(sample_wav)).samples[0]


@pytest.mark.parametrize("backend", ["onnx", "jit"])
def test_vad_covers_reference_speech(sample_audio, sample_rttm, backend, figure):
    regions = detect_speech(sample_audio, load_vad_model(backend), VadOptions(vad_backend=backend))
    reference = [(s, e) for _, s, e in read_rttm(sample_rttm)]
    coverage, false_alarm = vad_scores(regions, reference, 30.0)
    figure("coverage", coverage, at_least=0.90)
    figure("false_alarm", false_alarm, at_most=0.10)


def test_windowed_vad_matches_whole_file(sample_audio):
    model = load_vad_model()
    whole = detect_speech(sample_audio, model, VadOptions(vad_window_s=600))
    windowed = detect_speech(sample_audio, model, VadOptions(vad_window_s=30))
    # 30 s windows over a 30 s file: one window, identical
    assert whole == windowed
    long_audio = np.concatenate([sample_audio] * 3)
    regions = detect_speech(long_audio, model, VadOptions(vad_window_s=30))
    assert len(regions) >= 3 * len(whole) - 3
    assert regions[-1][1] > 85.0


def test_silence_has_no_speech():
    assert detect_speech(np.zeros(16000 * 5, np.float32), load_vad_model(), VadOptions()) == []


def test_options_validate():
    with pytest.raises(ValueError, match="vad_threshold"):
        VadOptions(vad_threshold=1.5)
