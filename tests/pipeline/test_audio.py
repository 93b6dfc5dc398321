"""A recording's audio in a scratch file, read by window (pipeline.audio): the same samples as
the whole decoded array, small when pickled, decoded again where the file is missing, deleted
when the recording is finished."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from core.audio_io import ContentHash, content_sha1, decode_audio, decode_to_file, read_frames
from pipeline.audio import (
    AudioMismatchError,
    Clips,
    MixSignal,
    OnDemand,
    RecordingAudio,
    clear_scratch,
    clip_lengths,
    embed_in_slices,
    scratch_dir_for,
)
from pipeline.decode import DecodeOptions, decode_recording
from pipeline.records import Recording, RecordingWork
from tests.pipeline.audio_factory import encode_with_pyav, tone

SR = 16000


@pytest.fixture
def stereo_mp3(tmp_path):
    """A 3 s 2-channel MP3 at 44.1 kHz (decoding resamples it): two different tones."""
    return encode_with_pyav(tmp_path / "call.mp3", tone(3.0, 44100, 2), 44100)


def _file_audio(uri: str, folder) -> tuple[RecordingAudio, np.ndarray]:
    """The URI decoded into a scratch file, and the same URI decoded whole into memory."""
    path = str(folder / "rec.f32")
    info = decode_to_file(uri, path)
    whole = decode_audio(uri).samples
    return RecordingAudio.from_file(path, info.num_channels, info.num_samples, uri), whole


def test_windows_of_the_file_are_the_windows_of_the_whole_array(stereo_mp3, tmp_path):
    audio, whole = _file_audio(str(stereo_mp3), tmp_path)
    memory = RecordingAudio.from_array(whole)
    assert (audio.num_channels, audio.num_samples) == whole.shape
    assert audio.num_samples == pytest.approx(3 * SR, abs=SR // 100)
    np.testing.assert_array_equal(audio.read(), whole)
    mix = whole.mean(axis=0)
    for start, stop in [(0, 100), (1234, 20000), (40000, 10**9), (-500, None), (30000, 10)]:
        for source in (audio, memory):
            np.testing.assert_array_equal(source.read(start, stop), whole[:, start:stop])
            np.testing.assert_array_equal(source.channel(1, start, stop), whole[1, start:stop])
            np.testing.assert_array_equal(source.mix(start, stop), mix[start:stop])
    np.testing.assert_array_equal(audio.span(0.5, 1.25), mix[8000:20000])
    np.testing.assert_array_equal(audio.span(-1.0, 0.25, channel=0), whole[0, :4000])
    blocks = list(audio.blocks(7000))
    assert [s for s, _ in blocks] == list(range(0, audio.num_samples, 7000))
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks], axis=1), whole)
    with pytest.raises(IndexError):
        audio.channel(2)


def test_the_mix_signal_slices_like_an_array(stereo_mp3, tmp_path):
    audio, whole = _file_audio(str(stereo_mp3), tmp_path)
    mix = whole.mean(axis=0)
    signal = audio.mix_signal()
    assert isinstance(signal, MixSignal)
    assert len(signal) == signal.shape[0] == len(mix) and signal.ndim == 1
    for index in [slice(0, 10), slice(100, None), slice(-50, None), slice(5, 2), slice(None)]:
        np.testing.assert_array_equal(signal[index], mix[index])
    np.testing.assert_array_equal(np.asarray(signal, dtype=np.float32), mix)
    with pytest.raises(TypeError):
        signal[3]
    # in memory the mix is the array itself, as before
    assert isinstance(RecordingAudio.from_array(whole[:1]).mix_signal(), np.ndarray)


def test_file_backed_audio_pickles_as_its_path(stereo_mp3, tmp_path):
    audio, whole = _file_audio(str(stereo_mp3), tmp_path)
    data = pickle.dumps(audio)
    assert len(data) < 1000, "the samples never travel between steps"
    np.testing.assert_array_equal(pickle.loads(data).read(100, 900), whole[:, 100:900])
    in_memory = pickle.dumps(RecordingAudio.from_array(whole))
    assert len(in_memory) > whole.nbytes  # an array in memory goes with it


def test_a_missing_scratch_file_is_decoded_again_and_checked(stereo_mp3, tmp_path):
    audio, whole = _file_audio(str(stereo_mp3), tmp_path)
    audio.content_sha1 = content_sha1(whole)
    moved = pickle.loads(pickle.dumps(audio))  # as on another machine: the file is not there
    os.unlink(audio.path)
    np.testing.assert_array_equal(moved.read(2000, 6000), whole[:, 2000:6000])
    assert os.path.exists(moved.path)
    os.unlink(moved.path)
    wrong = RecordingAudio.from_file(
        moved.path, 2, whole.shape[1], str(stereo_mp3), content_sha1="0" * 40
    )
    with pytest.raises(AudioMismatchError):
        wrong.read(0, 10)
    assert not os.path.exists(moved.path), "a copy that does not match is not kept"
    with pytest.raises(FileNotFoundError):  # no URI: nothing to decode again
        RecordingAudio.from_file(str(tmp_path / "gone.f32"), 1, 10).read()


def test_release_deletes_the_file_once(tmp_path):
    path = tmp_path / "a.f32"
    np.zeros((100, 1), "<f4").tofile(path)
    audio = RecordingAudio.from_file(str(path), 1, 100)
    np.testing.assert_array_equal(read_frames(str(path), 1, 10, 20), np.zeros((1, 10)))
    audio.release()
    audio.release()
    assert not path.exists()
    RecordingAudio.from_array(np.zeros((1, 5), np.float32)).release()  # in memory: nothing


def test_clips_are_read_when_indexed(stereo_mp3, tmp_path):
    audio, whole = _file_audio(str(stereo_mp3), tmp_path)
    clips = audio.clips([(0, 800, None), (1000, 1500, 1), (47000, 60000, 0)])
    assert isinstance(clips, Clips) and len(clips) == 3
    assert clip_lengths(clips) == [800, 500, audio.num_samples - 47000]
    assert clip_lengths([np.zeros(4), np.zeros(7)]) == [4, 7]
    np.testing.assert_array_equal(clips[0], whole.mean(axis=0)[:800])
    np.testing.assert_array_equal(clips[1], whole[1, 1000:1500])
    assert all(c.dtype == np.float32 and c.flags.c_contiguous for c in clips[0:3])
    made = []
    lazy = OnDemand(5, lambda i: made.append(i) or i * i)
    assert lazy[1:3] == [1, 4] and lazy[-1] == 16 and made == [1, 2, 4]
    with pytest.raises(IndexError):
        lazy[5]


def test_content_hash_in_pieces_is_the_whole_arrays(stereo_mp3):
    whole = decode_audio(str(stereo_mp3)).samples
    pieces = ContentHash()
    for channel in whole:
        for start in range(0, whole.shape[1], 999):
            pieces.update(channel[start : start + 999])
    assert pieces.hexdigest() == content_sha1(whole)


@pytest.mark.parametrize("isolation", ["inline", "subprocess"])
def test_decoding_into_scratch_gives_the_recording_decoding_in_memory_gives(
    stereo_mp3, tmp_path, isolation
):
    opts = DecodeOptions(decode_isolation=isolation)
    scratch = tmp_path / "scratch"
    on_disk = decode_recording(str(stereo_mp3), opts, str(scratch))
    in_memory = decode_recording(str(stereo_mp3), opts)
    assert on_disk.recording == in_memory.recording
    assert on_disk.recording.content_sha1 == content_sha1(decode_audio(str(stereo_mp3)).samples)
    assert not on_disk.audio.in_memory and in_memory.audio.in_memory
    assert os.path.dirname(on_disk.audio.path) == str(scratch)
    np.testing.assert_array_equal(on_disk.audio.read(), in_memory.audio.read())


def test_a_finished_recording_leaves_no_scratch_audio(stereo_mp3, tmp_path):
    from pipeline.output.tables import PersistRecordingFn

    scratch = tmp_path / "out" / "_scratch"
    work = decode_recording(str(stereo_mp3), DecodeOptions(decode_isolation="inline"), str(scratch))
    assert len(list(scratch.iterdir())) == 1
    persist = PersistRecordingFn(str(tmp_path / "out"), None)
    persist.setup()
    rows = list(persist.process(work))
    assert rows and not any(scratch.iterdir())
    assert (tmp_path / "out" / "_state" / f"{work.recording_id}.json").exists()


def test_where_the_scratch_files_go(tmp_path):
    assert scratch_dir_for("", str(tmp_path / "out")) == str(tmp_path / "out" / "_scratch")
    assert scratch_dir_for("", "file:///data/out") == "/data/out/_scratch"
    assert scratch_dir_for("/fast/disk", str(tmp_path)) == "/fast/disk"
    remote = scratch_dir_for("", "gs://bucket/out")
    assert "://" not in remote and remote.endswith("opendialog-audio")
    (tmp_path / "out" / "_scratch").mkdir(parents=True)
    (tmp_path / "out" / "_scratch" / "left.f32").write_bytes(b"x")
    clear_scratch(str(tmp_path / "out"))
    assert not (tmp_path / "out" / "_scratch").exists() and (tmp_path / "out").exists()


def test_a_work_given_an_array_holds_it_in_memory(tmp_path):
    samples = tone(1.0, SR, 1).T.copy()
    work = RecordingWork(Recording("r", str(tmp_path / "r.wav"), SR, 1, 1.0), samples)
    assert isinstance(work.audio, RecordingAudio) and work.audio.in_memory
    np.testing.assert_array_equal(work.audio.mix(), samples[0])
    with pytest.raises(ValueError):
        RecordingAudio.from_array(np.zeros(10, np.float32))


def test_speaker_embeddings_in_slices_are_those_of_one_call(sample_wav):
    """The diarization embeds a recording's chunks 32 at a time (its memory then stays flat):
    CAM++ gives every clip the same row whatever else is in its batch."""
    from pipeline.diarization.embedding import load_embedder

    embedder = load_embedder("campplus", num_threads=1)
    audio = decode_audio(str(sample_wav)).samples[0]
    rng = np.random.default_rng(0)
    clips = []
    for k in range(40):
        start = int(rng.integers(0, len(audio) - 3 * SR))
        clips.append(
            audio[start : start + (3 * SR if k % 3 else int(rng.integers(SR // 2, 3 * SR)))]
        )
    whole = embedder.embed(clips)
    calls = []

    def embed(batch):
        calls.append(len(batch))
        return embedder.embed(batch)

    np.testing.assert_array_equal(embed_in_slices(embed, iter(clips), size=16), whole)
    assert calls == [16, 16, 8]
    assert embed_in_slices(embedder.embed, iter([])).shape == (0, whole.shape[1])
