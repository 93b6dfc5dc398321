"""Objective metrics of generated dialogues (audio in, numbers out), one module per job.

- :mod:`model.metrics.script`: the ``[S1] ... [S2] ...`` script split into turns and per-speaker text.
- :mod:`model.metrics.audio`: any audio file as 16 kHz mono float32.
- :mod:`model.metrics.wer`: WER and cpWER (with the pipeline's fixed normalisation; word alignment is :func:`core.wer.align`).
- :mod:`model.metrics.asr`: Whisper transcripts (whole clip in silero-VAD windows with word times,
  or per speaker turn), Whisper's hallucination guards on.
- :mod:`model.metrics.diarization`: two-speaker diarization with the pipeline's ONNX recipe.
- :mod:`model.metrics.similarity`: cpSIM from GE2E speaker embeddings.
- :mod:`model.metrics.turns`: speaker switches and turn accuracy.
- :mod:`model.metrics.quality`: DNSMOS P.835 (OVRL/SIG/BAK).
- :mod:`model.metrics.rtf`: real-time factor.
- :mod:`model.metrics.testlist`: ZipVoice-Dialog test lists (merged or split prompts).
- :mod:`model.metrics.report`: the markdown results table.

The models are offline stand-ins for the paper's (Whisper base for WhisperD, GE2E for WavLM-ECAPA,
DNSMOS for UTMOS), so the numbers are not comparable with the ZipVoice-Dialog paper's.
"""
