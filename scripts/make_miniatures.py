#!/usr/bin/env python3
"""Build the random-weight miniature VLM checkpoints used by the tests.

Usage (from the repository root)::

    python scripts/make_miniatures.py models/miniatures [--seed S] [--families F ...]

Same as the installed ``focus-make-miniatures`` command.
"""

import sys
from pathlib import Path

try:
    from focus_ros.training.miniatures import main
except ImportError:  # not installed: run from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from focus_ros.training.miniatures import main

if __name__ == "__main__":
    sys.exit(main())
