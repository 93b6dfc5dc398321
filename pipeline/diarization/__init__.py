"""Pure parts of the diarization stage (no Beam): segmentation, embeddings, clustering, timeline.

``pipeline.diarize`` is the stage; :func:`pipeline.diarization.recipe.diarize_array` is the ONNX
recipe over one array, :mod:`pipeline.diarization.pyannote_backend` the pyannote.audio one.
"""

from pipeline.diarization.timeline import read_rttm, to_rttm

__all__ = ["read_rttm", "to_rttm"]
