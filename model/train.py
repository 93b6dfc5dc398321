"""``python -m model.train``: train the dialogue TTS model (:mod:`model.training.train`)."""

import sys

from model.training.train import main

if __name__ == "__main__":
    sys.exit(main())
