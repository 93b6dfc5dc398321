"""``python -m model.onnx_export``: export a checkpoint to ONNX (:mod:`model.export.onnx_export`)."""

import sys

from model.export.onnx_export import main

if __name__ == "__main__":
    sys.exit(main())
