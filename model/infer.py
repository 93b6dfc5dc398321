"""``python -m model.infer``: zero-shot dialogue synthesis (:mod:`model.inference.infer`)."""

import sys

from model.inference.infer import main

if __name__ == "__main__":
    sys.exit(main())
