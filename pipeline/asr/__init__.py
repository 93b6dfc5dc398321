"""Speech recognition of diarized turns.

* :mod:`pipeline.asr.stage`: the ``Transcribe`` stage and its ``AsrOptions`` (``--asr_*`` flags);
* :mod:`pipeline.asr.plan`: which audio each turn is read from (turns merged, cut at 30 s);
* :mod:`pipeline.asr.pack`: several short turns laid end to end in one 30 s Whisper window;
* :mod:`pipeline.asr.whisper`: batched faster-whisper decoding with the hallucination guards;
* :mod:`pipeline.asr.models`: where the Whisper weights come from (offline packages, local
  directories, hub sizes);
* :mod:`pipeline.asr.paraformer`: FunASR Paraformer for Chinese turns.
"""
