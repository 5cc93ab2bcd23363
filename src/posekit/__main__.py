"""``python -m posekit ...`` (also ``torchrun -m posekit train ...``): the same CLI as ``posekit``."""

from __future__ import annotations

import sys

from posekit.cli import main

if __name__ == "__main__":
    sys.exit(main())
