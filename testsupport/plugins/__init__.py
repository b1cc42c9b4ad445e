"""Small plugin programs for the protocol tests, and a helper installing them as executables."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent


def install(directory: Path, script: str, name: str) -> Path:
    """Write `directory/confd-database-NAME` running testsupport/plugins/SCRIPT with this Python."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"confd-database-{name}"
    path.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(HERE / script)!r})\n")
    path.chmod(0o755)
    return path
