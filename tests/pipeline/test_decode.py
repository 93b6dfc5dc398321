"""Decoding: every format PyAV reads, channel layouts kept, and bad input becomes a reject."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from core.audio_io import decode_audio, decode_isolated, decode_span
from pipeline import errors
from pipeline.decode import (
    DecodeOptions,
    check_audio,
    decode_recording,
    recording_id_for,
    scan_audio,
)
from pipeline.errors import DecodeError
from tests.pipeline.audio_factory import encode_with_pyav, tone


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "m4a"])
def test_decodes_every_supported_format_to_16k(tmp_path, fmt):
    rate = 48000 if fmt == "opus" else 44100  # opus only encodes at 48 kHz
    wave = tone(seconds=2.0, sample_rate=rate, channels=2)
    path = encode_with_pyav(tmp_path / f"clip.{fmt}", wave, rate)
    decoded = decode_audio(str(path))
    assert decoded.target_rate == 16000
    assert decoded.num_channels == 2, "the channel layout must be kept"
    assert decoded.samples.shape[0] == 2
    assert decoded.samples.dtype == np.float32
    assert abs(decoded.duration_s - 2.0) < 0.1
    assert 0.2 < np.abs(decoded.samples).max() <= 1.0


@pytest.mark.parametrize("fmt, lag_ms", [("wav", 0), ("flac", 0), ("mp3", 80), ("opus", 10)])
def test_a_span_decodes_as_the_same_slice_of_the_whole_file(tmp_path, fmt, lag_ms):
    """decode_span (the report's clips) seeks instead of decoding the file: same samples as
    the slice of decode_audio for PCM and FLAC; compressed formats land within their codec's
    priming delay (an MP3 frame, Opus's pre-skip)."""
    rate = 48000 if fmt == "opus" else 44100
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal((rate * 12, 1))).astype(np.float32)
    path = encode_with_pyav(tmp_path / f"noise.{fmt}", wave, rate)
    whole = decode_audio(str(path)).samples
    spans = [(0.0, 1.5), (7.25, 9.0)] + ([(11.5, 12.5)] if lag_ms == 0 else [])  # past the end
    for start, end in spans:
        span = decode_span(str(path), start, end)
        lo = round(start * 16000)
        expected = whole[:, lo : round(end * 16000)]
        assert span.shape[0] == 1 and abs(span.shape[1] - expected.shape[1]) <= 2
        n = min(span.shape[1], expected.shape[1], 8000) - 2 * 1600
        lags = range(-lag_ms * 16, lag_ms * 16 + 1)
        best = min(
            lags,
            key=lambda k: np.abs(
                span[0, 1600 : 1600 + n] - whole[0, lo + 1600 + k : lo + 1600 + k + n]
            ).mean(),
        )
        error = np.abs(span[0, 1600 : 1600 + n] - whole[0, lo + 1600 + best : lo + 1600 + best + n])
        assert error.mean() < (1e-6 if lag_ms == 0 else 0.05), (start, best, error.mean())


def test_resampling_keeps_the_signal(tmp_path):
    rate = 44100
    t = np.arange(rate) / rate
    path = tmp_path / "sine.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), rate)
    decoded = decode_audio(str(path))
    spectrum = np.abs(np.fft.rfft(decoded.samples[0]))
    peak_hz = np.argmax(spectrum) * 16000 / len(decoded.samples[0])
    assert abs(peak_hz - 1000) < 5


def test_isolated_decode_equals_inline(sample_wav):
    inline = decode_audio(str(sample_wav))
    isolated = decode_isolated(str(sample_wav))
    np.testing.assert_array_equal(inline.samples, isolated.samples)
    assert isolated.sample_rate == 16000
    # the sample is telephone audio: its bandwidth is near 4 kHz, far below 8 kHz
    assert 3000 < isolated.bandwidth_hz < 4500


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", errors.UNREADABLE),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(200)), errors.UNREADABLE),
        (np.random.default_rng(0).bytes(5000), errors.UNREADABLE),
    ],
)
def test_garbage_files_are_rejected_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        decode_recording(str(path), DecodeOptions())
    assert info.value.reason == reason


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(DecodeError) as info:
        decode_recording(str(tmp_path / "nope.wav"), DecodeOptions())
    assert info.value.reason == errors.UNREADABLE


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: np.zeros((1, 16000 * 3), np.float32), errors.SILENT),
        (lambda: tone(0.3, 16000, 1).T, errors.TOO_SHORT),
        (
            lambda: np.where(np.arange(48000) == 100, np.nan, 0.1).astype(np.float32)[None],
            errors.NON_FINITE,
        ),
        (lambda: np.zeros((1, 0), np.float32), errors.EMPTY),
    ],
)
def test_checks_reject_unusable_audio(make, reason):
    from pipeline.audio import RecordingAudio

    with pytest.raises(DecodeError) as info:
        check_audio(scan_audio(RecordingAudio.from_array(make())), DecodeOptions())
    assert info.value.reason == reason


def test_nan_samples_in_a_float_wav_are_rejected(tmp_path):
    wave = tone(2.0, 16000, 1)
    wave[100:200] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(DecodeError) as info:
        decode_recording(str(path), DecodeOptions())
    assert info.value.reason == errors.NON_FINITE


def test_absurd_channel_count_is_rejected(tmp_path):
    path = tmp_path / "many.wav"
    sf.write(path, np.zeros((16000, 12), np.float32) + 0.1, 16000)
    with pytest.raises(DecodeError) as info:
        decode_recording(str(path), DecodeOptions(max_channels=8))
    assert info.value.reason == errors.BAD_CHANNELS


def test_recording_ids_are_deterministic_and_unique():
    a = recording_id_for("/data/calls/a.wav")
    assert a == recording_id_for("/data/calls/a.wav")
    assert a.startswith("a-")
    assert a != recording_id_for("/data/other/a.wav")


def test_options_validate():
    with pytest.raises(ValueError, match="min_duration_s"):
        DecodeOptions(min_duration_s=10, max_duration_s=5)
