"""``python -m pipeline.output.report OUTPUT_DIR``."""

from .cli import main

main()
