"""Hostile input: random bytes and mutated headers never crash decoding, and always get a reason."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import errors
from pipeline.decode import DecodeOptions, decode_recording
from pipeline.errors import DecodeError
from tests.pipeline.audio_factory import encode_with_pyav, tone

DECODE_REASONS = {
    errors.UNREADABLE,
    errors.DECODER_CRASH,
    errors.EMPTY,
    errors.TOO_SHORT,
    errors.TOO_LONG,
    errors.BAD_CHANNELS,
    errors.NON_FINITE,
    errors.SILENT,
}


def _valid_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    buf = io.BytesIO()
    sf.write(buf, tone(1.5, 16000, 1), 16000, format="WAV")
    seeds = {"wav": buf.getvalue()}
    for fmt in ("mp3", "flac", "ogg"):
        # (FFmpeg's own Vorbis encoder only writes stereo)
        path = encode_with_pyav(folder / f"seed.{fmt}", tone(1.5, 44100, 2), 44100)
        seeds[fmt] = path.read_bytes()
    return seeds


_SEEDS: dict[str, bytes] = {}


def _decode_bytes(tmp_path, data: bytes, suffix: str, isolation: str = "inline") -> None:
    """Decode as the pipeline does (into a scratch file): a reason, or finite float32 audio;
    a rejected file leaves no scratch file behind."""
    path = tmp_path / f"fuzz.{suffix}"
    path.write_bytes(data)
    scratch = tmp_path / "scratch"
    try:
        work = decode_recording(str(path), DecodeOptions(decode_isolation=isolation), str(scratch))
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS and str(exc)
        assert not any(scratch.iterdir())
        return
    audio = work.audio.load()
    assert audio.dtype == np.float32 and np.all(np.isfinite(audio))
    work.audio.release()
    assert not any(scratch.iterdir())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_never_crash(tmp_path_factory, data):
    _decode_bytes(tmp_path_factory.mktemp("fz"), data, "wav")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fmt=st.sampled_from(["wav", "mp3", "flac", "ogg"]),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 6000)),
)
def test_mutated_headers_never_crash(tmp_path_factory, fmt, edits, cut):
    if not _SEEDS:
        _SEEDS.update(_valid_files(tmp_path_factory))
    data = bytearray(_SEEDS[fmt])
    for offset, value in edits:  # corrupt bytes in and near the header
        if offset < len(data):
            data[offset] = value
    if cut is not None:
        data = data[:cut]
    _decode_bytes(tmp_path_factory.mktemp("fz"), bytes(data), fmt)


def test_fuzzed_files_in_a_child_decoder_land_in_rejects(tmp_path):
    rng = np.random.default_rng(7)
    for _i in range(5):
        _decode_bytes(
            tmp_path, rng.bytes(int(rng.integers(10, 3000))), "mp3", isolation="subprocess"
        )
