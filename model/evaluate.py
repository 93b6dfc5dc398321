"""``python -m model.evaluate``: score generated dialogues (:mod:`model.evaluation.evaluate`)."""

import sys

from model.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
