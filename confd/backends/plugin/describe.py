"""Asking plugins what they are: the `Describe` call, and a cache of the answers for
`confd backends`, which lists every installed plugin's settings without starting them all on
every call.

The cache is one JSON file (`$XDG_CACHE_HOME/confd/plugin-descriptions.json`, else
`~/.cache/...`) keyed by the executable's resolved path, and valid while its size and mtime
stay the same: a reinstalled or rebuilt plugin is started once more, an unchanged one never.
A plugin without `Describe` is remembered as such; one that fails to start is not remembered.
Secret settings' defaults are never sent by `plugin_sdk` and never written here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confd.log import get_logger
from plugin_sdk.description import Description, SettingDescription

if TYPE_CHECKING:
    import grpc

    from confd.backends.plugin.launch import LaunchOptions

log = get_logger("confd.backends.plugin")

_TIMEOUT = 10.0
_VERSION = 1


def request_description(channel: grpc.Channel, timeout: float = _TIMEOUT) -> Description | None:
    """The plugin's `Describe` answer; None from a plugin older than `Describe`. Other RPC
    errors propagate (grpc.RpcError)."""
    import grpc

    from plugin_sdk.description import from_message
    from plugin_sdk.proto.confd_plugin import database_pb2, database_pb2_grpc

    try:
        reply = database_pb2_grpc.DatabaseStub(channel).Describe(
            database_pb2.DescribeRequest(), timeout=timeout
        )
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise
    return from_message(reply)


def describe_executable(options: LaunchOptions) -> Description | None:
    """Start the plugin, ask `Describe`, stop it. PluginError if it cannot start or answer."""
    import grpc

    from confd.backends.plugin.process import PluginProcess
    from confd.errors import PluginError

    process = PluginProcess(options)
    process.start()
    try:
        return request_description(process.channel)
    except grpc.RpcError as exc:
        raise PluginError(
            f"plugin {options.name!r}: Describe failed: {exc.code().name}: {exc.details()}"
        ) from None
    finally:
        process.stop()


def cache_path() -> Path:
    """Where descriptions are cached (XDG cache directory)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "confd" / "plugin-descriptions.json"


class DescriptionCache:
    """Plugin descriptions by executable path, valid while its size and mtime are unchanged."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self._entries: dict[str, dict[str, Any]] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return {}
        entries = data.get("plugins")
        return entries if isinstance(entries, dict) else {}

    @staticmethod
    def _stamp(executable: Path) -> tuple[str, list[int]] | None:
        try:
            resolved = executable.resolve()
            st = resolved.stat()
        except OSError:
            return None
        return str(resolved), [st.st_size, st.st_mtime_ns]

    def get(self, executable: Path) -> tuple[bool, Description | None]:
        """(found, description): found is False when the plugin must be asked again."""
        stamp = self._stamp(executable)
        if stamp is None:
            return False, None
        entry = self._entries.get(stamp[0])
        if not isinstance(entry, dict) or entry.get("stamp") != stamp[1]:
            return False, None
        try:
            return True, _decode(entry.get("description"))
        except (TypeError, ValueError, KeyError):
            return False, None

    def put(self, executable: Path, description: Description | None) -> None:
        stamp = self._stamp(executable)
        if stamp is None:
            return
        self._entries[stamp[0]] = {"stamp": stamp[1], "description": _encode(description)}
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically; a cache that cannot be written is only a slower next
        call, so failures are logged at debug and otherwise ignored."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, staged = tempfile.mkstemp(prefix=".plugin-descriptions-", dir=self.path.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump({"version": _VERSION, "plugins": self._entries}, handle, indent=1)
            os.replace(staged, self.path)
            self._dirty = False
        except OSError as exc:
            log.debug("cannot write the plugin description cache %s: %s", self.path, exc)
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(staged)


def _encode(description: Description | None) -> dict[str, Any] | None:
    if description is None:
        return None
    return {
        "name": description.name,
        "description": description.description,
        "can_watch": description.can_watch,
        "settings": [
            {**s._asdict(), "default": None if s.secret else s.default}
            for s in description.settings
        ],
    }


def _decode(data: dict[str, Any] | None) -> Description | None:
    if data is None:
        return None
    return Description(
        str(data["name"]),
        str(data["description"]),
        tuple(SettingDescription(**s) for s in data["settings"]),
        bool(data["can_watch"]),
    )
