"""``python -m model.export_upstream``: a checkpoint in upstream ZipVoice's layout
(:mod:`model.export.upstream_layout`)."""

import sys

from model.export.upstream_layout import main

if __name__ == "__main__":
    sys.exit(main())
