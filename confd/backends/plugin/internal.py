"""Serving a built-in database over the plugin protocol (`confd internal-plugin database NAME`).

Also runnable as `python -m confd.backends.plugin.internal NAME`, which skips loading the CLI.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from confd.backends.registry import default_registry
from confd.errors import ConfdError


def serve_builtin(name: str) -> NoReturn:
    """Serve built-in `name` to the host that started this process; never returns."""
    from plugin_sdk.server import serve

    try:
        database = default_registry().get(name).load()()
    except ConfdError as exc:
        sys.stderr.write(f"[ERROR] {exc}\n")
        sys.exit(1)
    serve(database)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m confd.backends.plugin.internal NAME\n")
        sys.exit(2)
    serve_builtin(sys.argv[1])
