"""Print what a pipeline run produced and where to look (the end of `make demo`).

    python jobs/show.py [--landing data/landing] [--warehouse data/warehouse]
"""
from __future__ import annotations

import sys

from jobs.dev.show import main

if __name__ == "__main__":
    sys.exit(main())
