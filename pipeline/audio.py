"""A recording's decoded audio, read by window: the one way the stages get at samples.

Decoding writes each recording's 16 kHz float32 samples once, to a scratch file (raw interleaved
frames, :func:`core.audio_io.decode_to_file`). The :class:`RecordingAudio` that travels in
:class:`pipeline.records.RecordingWork` holds only that file's path and shape (so it pickles
small between Beam steps), and every stage reads the windows it needs with plain reads at an
offset: nothing holds the whole recording, and the pages read are the kernel's file cache, not
the process's memory (a memory map would count every page it touched in the process's RSS).
An array in memory is the other backing (tests, library callers), behind the same methods.

Where the scratch files live (:func:`scratch_dir_for`): ``--audio_scratch_dir``, else
``<output>/_scratch`` for a local output (the run clears it when it starts and ends), else the
worker's temp dir. The per-recording chain has no shuffle inside it, so runners fuse it into one
step (the DirectRunner never decodes the record between its stages) and the worker that decoded
a recording is the one that reads it. Should a runner still move a recording to a machine
without its file, :meth:`RecordingAudio.read` decodes the URI again there (decoding is
deterministic; the content sha1 is checked) rather than fail.
The last step (:class:`pipeline.output.tables.PersistRecordingFn`) deletes the file.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

import numpy as np

logger = logging.getLogger(__name__)

ANALYSIS_SAMPLE_RATE = 16000
SCRATCH_DIR = "_scratch"  # under a local output
SCRATCH_SUFFIX = ".f32"
BLOCK_SAMPLES = 60 * ANALYSIS_SAMPLE_RATE  # what a scan reads at a time
EMBED_SLICE = 32  # clips a speaker embedder gets at a time (CAM++: ~2.5 MB of working memory each)


class AudioMismatchError(RuntimeError):
    """A recording decoded again (its scratch file missing here) is not the audio it was."""


class RecordingAudio:
    """One recording's decoded audio at :data:`ANALYSIS_SAMPLE_RATE`, ``num_channels`` x
    ``num_samples`` float32 in [-1, 1], in a scratch file or in memory.

    Reads return ``(channels, samples)`` arrays (a channel or the mix: ``(samples,)``); bounds
    are clipped as numpy slices clip them. From a file every read is a fresh array; from memory
    a read is a view of the array (do not write into it).
    """

    def __init__(
        self,
        num_channels: int,
        num_samples: int,
        *,
        array: np.ndarray | None = None,
        path: str | None = None,
        uri: str = "",
        content_sha1: str = "",
    ):
        if (array is None) == (path is None):
            raise ValueError("RecordingAudio needs exactly one of array and path")
        self.num_channels = int(num_channels)
        self.num_samples = int(num_samples)
        self._array = array
        self._path = path
        self.uri = uri  # where the audio can be decoded again (a file-backed audio only)
        self.content_sha1 = content_sha1

    @classmethod
    def from_array(cls, samples: np.ndarray) -> RecordingAudio:
        """Audio held in memory: ``samples`` float32 ``(channels, samples)``."""
        samples = np.asarray(samples)
        if samples.ndim != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {samples.shape}")
        return cls(samples.shape[0], samples.shape[1], array=samples)

    @classmethod
    def from_file(
        cls, path: str, num_channels: int, num_samples: int, uri: str = "", content_sha1: str = ""
    ) -> RecordingAudio:
        """Audio in a raw float32 file as :func:`core.audio_io.decode_to_file` writes it;
        ``uri`` and ``content_sha1`` let a machine without the file decode it again."""
        return cls(num_channels, num_samples, path=path, uri=uri, content_sha1=content_sha1)

    # --- what it is -------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return ANALYSIS_SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.num_samples / ANALYSIS_SAMPLE_RATE

    @property
    def path(self) -> str | None:
        """The scratch file (None in memory)."""
        return self._path

    @property
    def in_memory(self) -> bool:
        return self._array is not None

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else self._path
        return f"RecordingAudio({self.num_channels}x{self.num_samples}, {where})"

    # --- reads ------------------------------------------------------------------------------

    def _bounds(self, start: int, stop: int | None) -> tuple[int, int]:
        start, stop, _ = slice(start, stop).indices(self.num_samples)
        return start, max(start, stop)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of every channel, ``(channels, n)`` float32."""
        start, stop = self._bounds(start, stop)
        if self._array is not None:
            return self._array[:, start:stop]
        from core.audio_io import read_frames

        return read_frames(self._local_file(), self.num_channels, start, stop)

    def channel(self, channel: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of one channel, ``(n,)``."""
        if not 0 <= channel < self.num_channels:
            raise IndexError(f"channel {channel} of {self.num_channels}")
        if self._array is not None:
            start, stop = self._bounds(start, stop)
            return self._array[channel, start:stop]
        return self.read(start, stop)[channel]

    def mix(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of the channels averaged (the mono mix), ``(n,)``. A window of
        the mix is exactly that window of the whole recording's mix."""
        audio = self.read(start, stop)
        return audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]

    def span(self, start_s: float, end_s: float, channel: int | None = None) -> np.ndarray:
        """The samples between two times (rounded to samples, clipped at 0): one channel, or
        the mix when ``channel`` is None."""
        start = max(0, round(start_s * ANALYSIS_SAMPLE_RATE))
        stop = max(0, round(end_s * ANALYSIS_SAMPLE_RATE))
        return self.mix(start, stop) if channel is None else self.channel(channel, start, stop)

    def blocks(self, block: int = BLOCK_SAMPLES) -> Iterator[tuple[int, np.ndarray]]:
        """The whole recording a block at a time: ``(first sample, (channels, n))``."""
        for start in range(0, self.num_samples, block):
            yield start, self.read(start, start + block)

    def mix_signal(self) -> np.ndarray | MixSignal:
        """The mix as one signal for code that indexes a whole recording (``len`` and slices):
        the array itself in memory, a :class:`MixSignal` reading by window from a file."""
        if self._array is not None:
            return self.mix()
        return MixSignal(self)

    def load(self) -> np.ndarray:
        """The whole recording, ``(channels, samples)``: only for the steps that need every
        sample at once (the speaker-per-channel test of 2-channel files, pyannote's pipeline)."""
        return self.read()

    def clips(self, spans: Sequence[tuple[int, int, int | None]]) -> Clips:
        """Clips ``(start, stop, channel or None for the mix)`` read when asked for."""
        return Clips(self, spans)

    # --- the scratch file -------------------------------------------------------------------

    def release(self) -> None:
        """Delete the scratch file (the recording is finished); a no-op in memory."""
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass

    def _local_file(self) -> str:
        """The scratch file, decoded again from the URI when this machine does not have it."""
        assert self._path is not None
        if os.path.exists(self._path):
            return self._path
        if not self.uri:
            raise FileNotFoundError(f"audio scratch file {self._path} is gone")
        self._path = self._decode_again()
        return self._path

    def _decode_again(self) -> str:
        from core.audio_io import ContentHash, decode_isolated_to_file

        assert self._path is not None
        folder = os.path.dirname(self._path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            folder = default_scratch_dir()
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, os.path.basename(self._path))
        logger.warning("%s: scratch audio not on this machine; decoding it again", self.uri)
        info = decode_isolated_to_file(
            self.uri, path + ".part", ANALYSIS_SAMPLE_RATE, self.num_channels, 3600.0
        )
        os.replace(path + ".part", path)
        again = RecordingAudio.from_file(path, info.num_channels, info.num_samples)
        content = ContentHash()
        for channel in range(again.num_channels):
            for _, block in again.blocks():
                content.update(block[channel])
        shape = (info.num_channels, info.num_samples)
        if shape != (self.num_channels, self.num_samples) or (
            self.content_sha1 and content.hexdigest() != self.content_sha1
        ):
            again.release()
            raise AudioMismatchError(f"{self.uri} decoded again differs from its first decoding")
        return path


class MixSignal:
    """A file-backed recording's mix as a read-only 1-D signal: ``len()`` and slices (step 1),
    each slice read from the file. ``np.asarray`` reads it whole."""

    ndim = 1
    dtype = np.dtype(np.float32)

    def __init__(self, audio: RecordingAudio):
        self.audio = audio

    def __len__(self) -> int:
        return self.audio.num_samples

    @property
    def shape(self) -> tuple[int]:
        return (self.audio.num_samples,)

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError(f"MixSignal takes slices only, got {index!r}")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("MixSignal slices take no step")
        return self.audio.mix(start, max(start, stop))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.audio.mix()
        return whole if dtype is None else whole.astype(dtype, copy=False)


def as_signal(samples: Any) -> np.ndarray | MixSignal:
    """A mono signal as code that indexes one wants it: a :class:`MixSignal` as it is (read by
    window), anything else as a float32 array."""
    if isinstance(samples, MixSignal):
        return samples
    return np.asarray(samples, dtype=np.float32)


T = TypeVar("T")


class OnDemand(Sequence[T]):
    """A sequence whose items are made when indexed (``make(i)``), so only the items in use are
    held: a slice gives a list of those items."""

    def __init__(self, count: int, make: Callable[[int], T]):
        self._count = count
        self._make = make

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(self._count))]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return self._make(index % self._count)


class Clips(OnDemand[np.ndarray]):
    """Clips of one recording, each read when indexed; ``lengths`` without reading."""

    def __init__(self, audio: RecordingAudio, spans: Sequence[tuple[int, int, int | None]]):
        bounded = [(*audio._bounds(a, b), c) for a, b, c in spans]
        super().__init__(len(bounded), self._read)
        self.audio = audio
        self.spans = bounded
        self.lengths = [b - a for a, b, _ in bounded]

    def _read(self, index: int) -> np.ndarray:
        start, stop, channel = self.spans[index]
        if channel is None:
            return np.ascontiguousarray(self.audio.mix(start, stop), dtype=np.float32)
        return np.ascontiguousarray(self.audio.channel(channel, start, stop), dtype=np.float32)


def embed_in_slices(
    embed: Callable[[list[np.ndarray]], np.ndarray],
    clips: Iterable[np.ndarray],
    size: int = EMBED_SLICE,
) -> np.ndarray:
    """``embed`` (clips → one row each) over clips made and embedded ``size`` at a time: the
    clips of a whole recording (its speech, once over) and the model's batch over them are
    never held at once. The rows are those of one call (a clip's embedding does not depend
    on its batch; tests/pipeline/test_audio.py checks CAM++'s)."""
    rows = []
    pending: list[np.ndarray] = []
    for clip in clips:
        pending.append(clip)
        if len(pending) == size:
            rows.append(embed(pending))
            pending = []
    if pending or not rows:
        rows.append(embed(pending))
    return np.concatenate(rows) if len(rows) > 1 else rows[0]


def clip_lengths(clips: Sequence[np.ndarray]) -> list[int]:
    """Samples of each clip (a :class:`Clips` answers without reading them)."""
    return list(clips.lengths) if isinstance(clips, Clips) else [len(c) for c in clips]


# --- scratch files --------------------------------------------------------------------------


def default_scratch_dir() -> str:
    """The worker's own scratch folder (its temp dir)."""
    return os.path.join(tempfile.gettempdir(), "opendialog-audio")


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def scratch_dir_for(setting: str, output: str) -> str:
    """Where decoded audio waits between the stages: ``setting`` when given (a folder every
    worker can write, on disk rather than in memory), else ``<output>/_scratch`` for a local
    output, else the worker's temp dir."""
    if setting:
        return os.path.abspath(setting)
    if is_local(output):  # absolute: a worker process may not share the launcher's cwd
        return os.path.abspath(os.path.join(output.removeprefix("file://"), SCRATCH_DIR))
    return default_scratch_dir()


def scratch_path(scratch_dir: str, recording_id: str) -> str:
    """A new file name for one decoding of ``recording_id`` (unique: two runs or two attempts
    never share one)."""
    return os.path.join(scratch_dir, f"{recording_id}-{uuid.uuid4().hex[:12]}{SCRATCH_SUFFIX}")


def clear_scratch(output: str) -> None:
    """Remove a local output's scratch folder (under the output's lock: no run is using it)."""
    if is_local(output):
        shutil.rmtree(os.path.join(output.removeprefix("file://"), SCRATCH_DIR), ignore_errors=True)
