"""DNSMOS P.835 (OVRL, SIG, BAK) of generated audio: a thin adapter over the pipeline's scorer.

:class:`pipeline.quality.dnsmos.DnsmosScorer` runs the ONNX models the ``speechmos`` package
ships (Microsoft DNSMOS, non-personalised P.835), all 9.01 s windows of a clip in one call.
DNSMOS is an offline stand-in for the paper's UTMOS: a different scale, not comparable.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.api import DnsmosScore

logger = logging.getLogger(__name__)

__all__ = ["DnsmosScore", "QualityScorer"]


class QualityScorer:
    """DNSMOS of 16 kHz mono clips.

    Args:
        num_threads: onnxruntime intra-op threads (0: its default).
    """

    def __init__(self, num_threads: int = 0):
        from pipeline.api import DnsmosScorer

        self._scorer = DnsmosScorer(p808=False, num_threads=num_threads)

    def __call__(self, samples: np.ndarray) -> DnsmosScore:
        """DNSMOS of one clip (clips under 9 s are tiled, as DNSMOS does)."""
        return self._scorer.score([np.asarray(samples, dtype=np.float32)])[0]
