"""The fork's `include` function: render another template of the templates directory inline.

`include "partials/footer.tmpl"` or `include "server.tmpl" $data`: names are relative to the
templates directory (subdirectories allowed, nothing outside it), includes nest at most
`MAX_DEPTH` deep and a template that includes itself, directly or not, is refused, with the
fork's messages. One `Includes` serves one render; the renderer supplies how a file is
rendered (same function map, same recording view, so what an included template reads counts
for the watch like any other read).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["MAX_DEPTH", "Includes", "inside"]

MAX_DEPTH = 10  # the fork's maxIncludeDepth

# Renders the template at a path relative to the templates directory with a data context.
RenderFile = Callable[[str, Any], str]


def inside(root: str, name: str) -> str | None:
    """The normalized path of `name` relative to `root` (normalized, absolute), or None when
    it lies outside `root`: the rule for every template path, rendered or included."""
    full = os.path.normpath(os.path.join(root, name))
    return full if full.startswith(root.rstrip(os.sep) + os.sep) else None


class Includes:
    """The `include` function of one render: resolves names, refuses cycles and depth > 10."""

    def __init__(self, templates_dir: Path | str, render: RenderFile) -> None:
        self._root = os.path.normpath(os.path.abspath(templates_dir))
        self._render = render
        self._stack: list[str] = []  # the included files being rendered, outermost first

    def __call__(self, name: Any, *data: Any) -> str:
        """Render template `name` with `data[0]` as its context (None without data)."""
        if not isinstance(name, str):
            raise TypeError(f"template name must be a string, got {type(name).__name__}")
        full = inside(self._root, name)
        if full is None:
            raise ValueError(f"include path {name!r} is outside the templates directory")
        if full in self._stack:
            raise ValueError(f"include cycle detected: {full} is already being processed")
        if len(self._stack) >= MAX_DEPTH:
            raise ValueError(f"maximum include depth ({MAX_DEPTH}) exceeded")
        relative = os.path.relpath(full, self._root).replace(os.sep, "/")
        self._stack.append(full)
        try:
            return self._render(relative, data[0] if data else None)
        finally:
            self._stack.pop()
