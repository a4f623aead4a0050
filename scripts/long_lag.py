#!/usr/bin/env python
"""The long-time-lag lab: Hochreiter & Schmidhuber's (1997) problems for every recurrent cell.

    python scripts/long_lag.py --problem adding --lengths 50 100 200 --cells lstm gru rnn --seeds 3 --out docs/lab/

A thin wrapper around :func:`seqtag.lab.main`; ``--help`` lists the options and docs/lstm-lab.md
has the results.
"""

from __future__ import annotations

import sys

from seqtag.lab import main

if __name__ == "__main__":
    sys.exit(main())
