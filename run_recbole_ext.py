#!/usr/bin/env python
"""Run a recommender by name: ``python run_recbole_ext.py --model=GLINTRU --dataset=ml-100k``."""

import sys

from recbole_ext.cli import main

if __name__ == "__main__":
    sys.exit(main())
