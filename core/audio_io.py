"""Decode any audio file once with PyAV into float32 at the analysis rate (no Beam here).

PyAV bundles FFmpeg, so wav, flac, mp3, ogg, opus and m4a decode with no system ffmpeg. Audio is
resampled with soxr while it is decoded, a block at a time (:func:`decode_stream`): into memory
(:func:`decode_audio`) or straight into a raw float32 file (:func:`decode_to_file`, read back by
window with :func:`read_frames`), so a long file need never be held whole. The channel layout is
kept: shape ``(channels, samples)``.

Run as ``python -m core.audio_io URI OUT [RATE] [MAX_CHANNELS]`` it decodes into the raw float32
file ``OUT`` (:func:`decode_to_file`) in a child process (see :func:`decode_isolated_to_file`): a
native crash inside the decoder then kills the child, not the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# reason codes of the decode errors (the pipeline's rejects table names them, pipeline.errors)
UNREADABLE = "unreadable"  # the file could not be opened or decoded
DECODER_CRASH = "decoder_crash"  # the decoder process died (native crash) on this file
BAD_CHANNELS = "bad_channels"  # channel count outside 1..max_channels


class DecodeError(Exception):
    """The file cannot be decoded into usable audio.

    Args:
        reason: a reason code (this module's, or the pipeline's file-level ones).
        message: a one-line explanation.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded audio and what the file said about itself.

    Attributes:
        samples: float32, shape ``(channels, samples)`` at ``target_rate``.
        target_rate: sample rate of ``samples``.
        sample_rate: the file's original sample rate.
        num_channels: the file's channel count.
        codec: codec name as FFmpeg reports it.
        bandwidth_hz: effective bandwidth estimated on the original-rate audio.
    """

    samples: np.ndarray
    target_rate: int
    sample_rate: int
    num_channels: int
    codec: str
    bandwidth_hz: float

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.target_rate


def _open(uri: str):
    import av

    if "://" in uri and not uri.startswith("file://"):
        from apache_beam.io.filesystems import FileSystems

        return av.open(FileSystems.open(uri))
    return av.open(uri.removeprefix("file://"))


def _open_audio(uri: str):
    """The opened container of ``uri`` and its first audio stream.

    Raises:
        DecodeError: the file cannot be opened or has no audio stream.
    """
    import av

    try:
        container = _open(uri)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise DecodeError(UNREADABLE, f"cannot open: {exc}") from exc
    streams = [s for s in container.streams if s.type == "audio"]
    if not streams:
        container.close()
        raise DecodeError(UNREADABLE, "no audio stream")
    return container, streams[0]


def probe_duration_s(path: str) -> float | None:
    """A local file's length in seconds from its header (no decoding; an estimate for some
    formats, e.g. MP3 without a length tag); None when it cannot be read."""
    import av

    try:
        with av.open(path) as container:
            if container.duration:
                return container.duration / av.time_base
            for stream in container.streams.audio:
                if stream.duration and stream.time_base:
                    return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class DecodeInfo:
    """What decoding a file said about it, without its samples (see :func:`decode_stream`).

    Attributes:
        target_rate: sample rate of the decoded samples.
        sample_rate: the file's original sample rate.
        num_channels: the file's channel count.
        codec: codec name as FFmpeg reports it.
        bandwidth_hz: effective bandwidth estimated on the original-rate audio.
        num_samples: decoded samples per channel at ``target_rate``.
    """

    target_rate: int
    sample_rate: int
    num_channels: int
    codec: str
    bandwidth_hz: float
    num_samples: int


def decode_stream(
    uri: str,
    sink: Callable[[np.ndarray], object],
    target_rate: int = 16000,
    max_channels: int = 8,
) -> DecodeInfo:
    """Decode ``uri``, handing its audio to ``sink`` block by block as float32
    ``(samples, channels)`` at ``target_rate``: nothing but one block is held.

    Raises:
        DecodeError: the file cannot be opened, has no audio stream, or an absurd channel count.
    """
    import av
    import soxr

    from core.bandwidth import BandwidthProbe

    container, stream = _open_audio(uri)
    with container:
        codec_context = stream.codec_context
        if codec_context is None:  # FFmpeg found a stream but no decoder for it (broken header)
            raise DecodeError(UNREADABLE, "audio stream without a usable codec")
        channels = codec_context.channels or 0
        sample_rate = codec_context.sample_rate or 0
        if not 1 <= channels <= max_channels:
            raise DecodeError(BAD_CHANNELS, f"{channels} channels (allowed 1..{max_channels})")
        if sample_rate <= 0:
            raise DecodeError(UNREADABLE, f"invalid sample rate {sample_rate}")
        resampler = (
            None
            if sample_rate == target_rate
            else soxr.ResampleStream(
                sample_rate, target_rate, channels, dtype="float32", quality="HQ"
            )
        )
        probe = BandwidthProbe(sample_rate)
        blocks = samples = 0

        def emit(block: np.ndarray) -> None:
            nonlocal blocks, samples
            blocks += 1
            samples += block.shape[0]
            sink(block)

        try:
            for frame in container.decode(stream):
                block = _frame_to_array(frame, channels)  # (samples, channels)
                if block.size == 0:
                    continue
                probe.update(block)
                emit(resampler.resample_chunk(block) if resampler else block)
            if resampler is not None:
                emit(resampler.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True))
        except (av.error.FFmpegError, ValueError) as exc:
            if not blocks:
                raise DecodeError(UNREADABLE, f"decode failed: {exc}") from exc
            # keep what decoded before a corrupt tail (a truncated download, say)
        codec = codec_context.name or ""
    return DecodeInfo(target_rate, sample_rate, channels, codec, probe.bandwidth_hz(), samples)


def decode_audio(uri: str, target_rate: int = 16000, max_channels: int = 8) -> DecodedAudio:
    """Decode ``uri`` to float32 ``(channels, samples)`` at ``target_rate``, held in memory.

    Raises:
        DecodeError: the file cannot be opened, has no audio stream, or an absurd channel count.
    """
    chunks: list[np.ndarray] = []
    info = decode_stream(uri, chunks.append, target_rate, max_channels)
    samples = (
        np.concatenate(chunks, axis=0).T.astype(np.float32, copy=False)
        if chunks
        else np.zeros((info.num_channels, 0), dtype=np.float32)
    )
    return DecodedAudio(
        np.ascontiguousarray(samples),
        target_rate,
        info.sample_rate,
        info.num_channels,
        info.codec,
        info.bandwidth_hz,
    )


def decode_to_file(
    uri: str, path: str, target_rate: int = 16000, max_channels: int = 8
) -> DecodeInfo:
    """Decode ``uri`` into ``path`` as raw little-endian float32 frames (``(samples, channels)``
    interleaved, no header) at ``target_rate``, a block at a time: memory stays flat in the
    file's length. What decoded before an error stays in ``path``; the caller removes it.

    Raises:
        DecodeError: as :func:`decode_audio`.
    """
    with open(path, "wb") as out:
        return decode_stream(
            uri,
            lambda block: out.write(np.ascontiguousarray(block, dtype="<f4").data),
            target_rate,
            max_channels,
        )


def read_frames(
    path: str, num_channels: int, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Samples ``start:stop`` of a file :func:`decode_to_file` wrote, as float32
    ``(channels, samples)`` (a plain read at an offset: no memory map, so the pages read stay
    the kernel's cache and never count in this process's resident memory)."""
    frame = 4 * num_channels
    count = -1 if stop is None else max(0, stop - start)
    if count == 0:
        return np.zeros((num_channels, 0), dtype=np.float32)
    data = np.fromfile(
        path, dtype="<f4", count=-1 if count < 0 else count * num_channels, offset=start * frame
    )
    return np.ascontiguousarray(data.reshape(-1, num_channels).T, dtype=np.float32)


def _frame_to_array(frame, channels: int) -> np.ndarray:
    """One decoded frame as float32 ``(samples, channels)`` whatever the sample format."""
    data = frame.to_ndarray()
    fmt = frame.format
    if fmt.is_planar:
        data = data.reshape(channels, -1).T
    else:
        data = data.reshape(-1, channels)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    elif data.dtype.kind == "u":  # 8-bit PCM is unsigned
        data = (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32, copy=False)


def decode_span(uri: str, start_s: float, end_s: float, target_rate: int = 16000) -> np.ndarray:
    """The audio of ``uri`` from ``start_s`` to ``end_s`` as float32 ``(channels, samples)`` at
    ``target_rate``, without decoding the whole file (the decoder seeks to just before
    ``start_s``; a file whose frames carry no timestamps is read from its start).

    Raises:
        DecodeError: the file cannot be opened or holds no decodable audio.
    """
    import av
    import soxr

    if end_s <= start_s:
        raise ValueError(f"empty span {start_s}..{end_s}")
    container, stream = _open_audio(uri)
    with container:
        if stream.codec_context is None:
            raise DecodeError(UNREADABLE, "no decodable audio stream")
        channels = stream.codec_context.channels or 1
        rate = stream.codec_context.sample_rate or 0
        if rate <= 0:
            raise DecodeError(UNREADABLE, f"invalid sample rate {rate}")
        seeked = False
        if start_s > 1.0 and stream.time_base:
            try:  # lands on a frame at or before the requested time
                container.seek(int((start_s - 1.0) / stream.time_base), stream=stream)
                seeked = True
            except (av.error.FFmpegError, ValueError):
                seeked = False
        chunks: list[np.ndarray] = []
        first_s: float | None = None
        position_s = 0.0
        try:
            for frame in container.decode(stream):
                block = _frame_to_array(frame, channels)
                if first_s is None:
                    if seeked and frame.time is None:  # cannot place the frames: start over
                        return decode_span_from_start(uri, start_s, end_s, target_rate)
                    first_s = float(frame.time) if seeked else 0.0
                    position_s = first_s
                frame_end = position_s + block.shape[0] / rate
                if frame_end > start_s:
                    chunks.append(block)
                else:
                    first_s = frame_end
                position_s = frame_end
                if position_s >= end_s:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            if not chunks:
                raise DecodeError(UNREADABLE, f"decode failed: {exc}") from exc
    if not chunks:
        return np.zeros((channels, 0), dtype=np.float32)
    audio = np.concatenate(chunks, axis=0)
    skip = max(0, int(round((start_s - (first_s or 0.0)) * rate)))
    audio = audio[skip : skip + int(round((end_s - start_s) * rate))]
    if rate != target_rate and audio.shape[0]:
        audio = soxr.resample(audio, rate, target_rate, quality="HQ")
    return np.ascontiguousarray(audio.T.astype(np.float32, copy=False))


def decode_span_from_start(uri: str, start_s: float, end_s: float, target_rate: int) -> np.ndarray:
    """:func:`decode_span` for files whose frames carry no timestamps: samples are counted."""
    decoded = decode_audio(uri, target_rate)
    lo = int(round(start_s * target_rate))
    return np.ascontiguousarray(decoded.samples[:, lo : int(round(end_s * target_rate))])


def content_sha1(samples: np.ndarray) -> str:
    """sha1 of the audio quantised to int16 (the same audio under two URIs gets the same value):
    ``samples`` ``(channels, samples)``, hashed channel after channel."""
    content = ContentHash()
    content.update(samples)
    return content.hexdigest()


class ContentHash:
    """:func:`content_sha1` fed a piece at a time: the pieces of channel 0 in order, then those
    of channel 1, ... (the bytes of the whole array in C order) give the same digest."""

    def __init__(self):
        self._sha1 = hashlib.sha1()

    def update(self, samples: np.ndarray) -> None:
        quantised = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
        self._sha1.update(quantised.tobytes())

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()


def decode_isolated(
    uri: str, target_rate: int = 16000, max_channels: int = 8, timeout_s: float = 600.0
) -> DecodedAudio:
    """:func:`decode_audio` in a child process, so a native decoder crash loses one file only.

    Raises:
        DecodeError: as :func:`decode_audio`, plus ``decoder_crash`` when the child dies or hangs.
    """
    with tempfile.TemporaryDirectory(prefix="decode-") as tmp:
        out = os.path.join(tmp, "audio.f32")
        info = decode_isolated_to_file(uri, out, target_rate, max_channels, timeout_s)
        samples = read_frames(out, info.num_channels)
    return DecodedAudio(
        samples, target_rate, info.sample_rate, info.num_channels, info.codec, info.bandwidth_hz
    )


def decode_isolated_to_file(
    uri: str,
    path: str,
    target_rate: int = 16000,
    max_channels: int = 8,
    timeout_s: float = 600.0,
) -> DecodeInfo:
    """:func:`decode_to_file` in a child process (a native decoder crash loses one file only);
    the child streams into ``path``, so neither process holds the whole recording.

    Raises:
        DecodeError: as :func:`decode_audio`, plus ``decoder_crash`` when the child dies or hangs.
    """
    cmd = [sys.executable, "-m", "core.audio_io", uri, path, str(target_rate), str(max_channels)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    repo = os.path.dirname(os.path.dirname(__file__))
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=repo
        )
    except subprocess.TimeoutExpired as exc:
        raise DecodeError(DECODER_CRASH, f"decoder hung for {timeout_s:.0f} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise DecodeError(
            DECODER_CRASH,
            f"decoder process exited with {proc.returncode}: {proc.stderr.strip()[-300:]}",
        )
    meta = json.loads(lines[-1])
    if "reason" in meta:
        raise DecodeError(meta["reason"], meta["message"])
    return DecodeInfo(**meta)


def _main(argv: list[str]) -> int:
    uri, out = argv[0], argv[1]
    target_rate = int(argv[2]) if len(argv) > 2 else 16000
    max_channels = int(argv[3]) if len(argv) > 3 else 8
    try:
        info = decode_to_file(uri, out, target_rate, max_channels)
    except DecodeError as exc:
        print(json.dumps({"reason": exc.reason, "message": str(exc)}))
        return 0
    print(json.dumps(dataclasses.asdict(info)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
