"""Scale and fault tolerance: the same outputs on every runner, and after a kill and a re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.run import run
from tests.conftest import REPO
from tests.pipeline.tables_compare import assert_same_tables


@pytest.mark.parametrize(
    "runner_args",
    [
        [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_threading",
            "--direct_num_workers=2",
        ],
        [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        ],
    ],
    ids=["multi_threading", "multi_processing"],
)
def test_direct_runner_modes_give_the_same_outputs(sample_run, tmp_path, runner_args):
    run(runner_args + [f"--output={tmp_path / 'out'}"])
    assert_same_tables(sample_run.output, tmp_path / "out")


@pytest.fixture
def job_service(tmp_path):
    """Beam's own Python job service (the portable path Flink and Dataflow use), on localhost."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apache_beam.runners.portability.local_job_service_main",
            "--port=0",
            f"--port_file={port_file}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_portable_runner_loopback_gives_the_same_outputs(sample_run, tmp_path, job_service):
    run(
        [
            "--runner=PortableRunner",
            f"--job_endpoint={job_service}",
            "--environment_type=LOOPBACK",
            f"--output={tmp_path / 'out'}",
        ]
    )
    assert_same_tables(sample_run.output, tmp_path / "out")


@pytest.fixture(scope="module")
def two_recordings(tmp_path_factory) -> Path:
    """The sample and a quieter copy of it (different content, so both are kept)."""
    folder = tmp_path_factory.mktemp("two")
    audio, rate = sf.read(REPO / "pipeline/assets/sample.wav", dtype="float32")
    sf.write(folder / "a.wav", audio, rate)
    sf.write(folder / "b.flac", (audio * 0.7).astype(np.float32), rate)
    return folder


def test_killed_run_resumes_to_the_uninterrupted_outputs(two_recordings, tmp_path):
    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        "beam_runner.py",
        "--runner=DirectRunner",
        f"--input={two_recordings}",
        f"--output={killed}",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    state = killed / "_state"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and any(state.glob("*.json")):
            break
        time.sleep(0.05)
    finished_at_kill = len(list(state.glob("*.json"))) if state.exists() else 0
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished_at_kill == 1, "the kill must land between the two recordings"
    assert not (killed / "recordings").exists() or not any(
        (killed / "recordings").glob("*.parquet")
    ), "tables are only written at the end"

    run(["--runner=DirectRunner", f"--input={two_recordings}", f"--output={killed}"])
    whole = tmp_path / "whole"
    run(["--runner=DirectRunner", f"--input={two_recordings}", f"--output={whole}"])
    assert_same_tables(whole, killed)


def test_local_workers_share_the_cores_of_auto_thread_options(monkeypatch):
    """``--direct_num_workers=N`` splits the usable cores among the N workers for every thread
    option left at 0 (auto); options the user set, single-worker runs and remote runners are
    left alone."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline import run as run_module

    monkeypatch.setattr("core.cpu.usable_cores", lambda: 8)
    split = run_module.split_local_threads
    two = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert split(PipelineOptions(two)) == [
        "--asr_threads=4",
        "--diar_num_threads=4",
        "--quality_num_threads=4",
    ]
    assert split(PipelineOptions([*two, "--asr_threads=3"])) == [
        "--diar_num_threads=4",
        "--quality_num_threads=4",
    ]
    assert split(PipelineOptions(["--direct_num_workers=16"])) == [
        f"--{name}=1" for name in run_module.AUTO_THREAD_OPTIONS
    ]
    assert split(PipelineOptions([])) == []
    assert split(PipelineOptions(["--runner=DataflowRunner", "--direct_num_workers=2"])) == []
