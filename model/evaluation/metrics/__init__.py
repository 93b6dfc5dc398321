"""Objective metrics of generated dialogues (audio in, numbers out), one module per job.

- :mod:`model.evaluation.metrics.script`: the ``[S1] ... [S2] ...`` script split into turns and per-speaker text.
- :mod:`model.evaluation.metrics.audio`: any audio file as 16 kHz mono float32.
- :mod:`model.evaluation.metrics.wer`: WER and cpWER (with the pipeline's fixed normalisation; word alignment is :func:`core.wer.align`).
- :mod:`model.evaluation.metrics.asr`: Whisper transcripts (whole clip in silero-VAD windows with word times,
  or per speaker turn), Whisper's hallucination guards on.
- :mod:`model.evaluation.metrics.diarization`: two-speaker diarization with the pipeline's ONNX recipe.
- :mod:`model.evaluation.metrics.similarity`: cpSIM from GE2E speaker embeddings.
- :mod:`model.evaluation.metrics.turns`: speaker switches and turn accuracy.
- :mod:`model.evaluation.metrics.quality`: DNSMOS P.835 (OVRL/SIG/BAK).
- :mod:`model.evaluation.metrics.rtf`: real-time factor.
- :mod:`model.evaluation.metrics.testlist`: ZipVoice-Dialog test lists (merged or split prompts).
- :mod:`model.evaluation.metrics.report`: the markdown results table.

The models are offline stand-ins for the paper's (Whisper base for WhisperD, GE2E for WavLM-ECAPA,
DNSMOS for UTMOS), so the numbers are not comparable with the ZipVoice-Dialog paper's.
"""
