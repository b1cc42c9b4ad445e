"""A well-behaved plugin: keys from a JSON file (setting `path`), watched by polling mtime.

On configure it writes one stderr line at each relay form (hclog warn, [ERROR], plain), so the
tests can check levels.
"""

import json
import logging
import os
import sys
import threading

from plugin_sdk import Database, DatabaseError, LastReads, Setting, select_prefix, serve

log = logging.getLogger("jsonfile")


class JsonFileDatabase(Database):
    name = "jsonfile"
    settings = (Setting("path", required=True),)
    can_watch = True

    def __init__(self):
        super().__init__()
        self.reads = LastReads()

    def configure(self, config):
        super().configure(config)
        log.warning("configured warn-marker", extra={"keys": 3})
        sys.__stderr__.write("[ERROR] error-marker\n")
        sys.__stderr__.write("plain-marker\n")
        sys.__stderr__.flush()

    def _load(self):
        try:
            with open(self.options["path"]) as handle:
                return json.load(handle)
        except (OSError, ValueError) as exc:
            raise DatabaseError(f"cannot read {self.options['path']}: {exc}") from None

    def get_values(self, keys):
        data = self._load()
        values = {k: v for k, v in data.items() if any(select_prefix(k, r) for r in keys)}
        self.reads.remember(keys, values)
        return values

    def watch_prefix(self, prefix, keys, stop: threading.Event):
        def stamp():
            try:
                info = os.stat(self.options["path"])
                return info.st_ino, info.st_mtime_ns
            except OSError:
                return None

        seen = stamp()
        if self.reads.changed_since(list(keys or [prefix]), self._load()):
            yield None  # changed since confd's last read: report it at once
        while not stop.wait(0.05):
            now = stamp()
            if now != seen:
                seen = now
                yield None


serve(JsonFileDatabase())
