"""Load every default model once, so caches (e.g. Whisper base assembled from two wheels) exist.

``python -m pipeline.warm_cache`` is run when a worker image is built (see deploy/Dockerfile).
"""

from __future__ import annotations

import logging

from apache_beam.options.pipeline_options import PipelineOptions

logger = logging.getLogger(__name__)


def main() -> None:
    from pipeline.output.run_files import models_used

    logging.basicConfig(level=logging.INFO)
    for name, entry in models_used(PipelineOptions([])).items():
        logger.info("%s: %s", name, entry.get("path", entry["id"]))


if __name__ == "__main__":
    main()
