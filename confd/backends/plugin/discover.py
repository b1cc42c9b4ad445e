"""Finding `confd-database-NAME` executables, in the order DESIGN.md gives.

Plugin dirs (--plugin-dir, CONFD_PLUGIN_DIR), the directory of the confd executable, the
current directory, then PATH. Nothing is started here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from confd.errors import PluginError

PREFIX = "confd-database-"


def search_dirs(plugin_dirs: Sequence[str] = ()) -> list[Path]:
    """The directories searched for plugins, first match wins, without duplicates."""
    dirs: list[str] = list(plugin_dirs)
    dirs += [d for d in os.environ.get("CONFD_PLUGIN_DIR", "").split(os.pathsep) if d]
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name.startswith("confd") and argv0.parent != Path(""):
        dirs.append(str(argv0.resolve().parent))
    dirs.append(str(Path(sys.executable).parent))  # where console scripts of this env live
    dirs.append(os.getcwd())
    dirs += [d for d in os.environ.get("PATH", os.defpath).split(os.pathsep) if d]
    seen: set[Path] = set()
    result: list[Path] = []
    for raw in dirs:
        path = Path(raw).expanduser().absolute()
        if path not in seen:
            seen.add(path)
            result.append(path)
    return result


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_plugin(name: str, plugin_dirs: Sequence[str] = ()) -> Path:
    """The executable of plugin `name`; PluginError naming the directories searched if none."""
    if not name or "/" in name or name.startswith("."):
        raise PluginError(f"invalid plugin name {name!r}")
    dirs = search_dirs(plugin_dirs)
    for directory in dirs:
        candidate = directory / f"{PREFIX}{name}"
        if _is_executable(candidate):
            return candidate
    shown = ", ".join(str(d) for d in dirs[:8]) + (" ..." if len(dirs) > 8 else "")
    raise PluginError(
        f"backend {name!r} is not built in and no plugin {PREFIX}{name} was found "
        f"(searched {shown}; add --plugin-dir or set CONFD_PLUGIN_DIR)"
    )


def list_plugins(plugin_dirs: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """Every plugin found as (name, path), the one that would be selected for each name."""
    found: dict[str, Path] = {}
    for directory in search_dirs(plugin_dirs):
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            name = entry.name[len(PREFIX) :]
            fresh = entry.name.startswith(PREFIX) and name and name not in found
            if fresh and _is_executable(entry):
                found[name] = entry
    return sorted(found.items())
