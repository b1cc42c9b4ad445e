"""Where Go confd's binary is, for the tests and benchmarks that compare with it when present.

`$CONFD_GO_PEER` when set (a path that is not there: none), else `shared/peer/confd-go` beside
the checkout (`../shared`, or `../../shared` from a worktree under another folder).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def go_confd() -> Path | None:
    """The Go confd binary, or None when this machine has none."""
    if "CONFD_GO_PEER" in os.environ:
        candidates = [os.environ["CONFD_GO_PEER"]]
    else:
        candidates = [str(base / "shared" / "peer" / "confd-go") for base in REPO.parents[:2]]
    return next((Path(c) for c in candidates if c and os.access(c, os.X_OK)), None)
