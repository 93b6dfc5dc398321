"""``python -m model.distill``: distil a trained model into a few-step student (:mod:`model.training.distill`)."""

import sys

from model.training.distill import main

if __name__ == "__main__":
    sys.exit(main())
