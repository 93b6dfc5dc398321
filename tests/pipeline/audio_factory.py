"""Audio the tests generate: tones and files encoded with PyAV in any container."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_CODECS = {
    "wav": ("pcm_s16le", "s16"),
    "flac": ("flac", "s16"),
    "mp3": ("libmp3lame", "fltp"),
    "ogg": ("vorbis", "fltp"),
    "opus": ("libopus", "flt"),
    "m4a": ("aac", "fltp"),
}


def tone(seconds: float, sample_rate: int, channels: int, hz: float = 440.0) -> np.ndarray:
    """A ``(samples, channels)`` float32 tone, a different pitch per channel."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    cols = [0.5 * np.sin(2 * np.pi * hz * (c + 1) * t) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def encode_with_pyav(path: Path, wave: np.ndarray, sample_rate: int) -> Path:
    """Write ``wave`` (samples, channels) to ``path`` in the container its suffix names."""
    import av

    fmt = path.suffix.lstrip(".")
    codec, sample_fmt = _CODECS[fmt]
    channels = wave.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format="ipod" if fmt == "m4a" else None) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder is marked experimental
            stream.codec_context.options = {"strict": "experimental"}
        frame_size = 960 if fmt == "opus" else 1024
        for start in range(0, len(wave), frame_size):
            block = wave[start : start + frame_size]
            if sample_fmt == "s16":
                data = (np.clip(block, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
            elif sample_fmt == "flt":
                data = block.reshape(1, -1).astype(np.float32)
            else:  # planar float
                data = np.ascontiguousarray(block.T.astype(np.float32))
            frame = av.AudioFrame.from_ndarray(data, format=sample_fmt, layout=layout)
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
