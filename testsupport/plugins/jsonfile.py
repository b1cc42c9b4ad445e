"""A well-behaved plugin: keys from a JSON file (setting `path`), watched by polling mtime.

On configure it writes one stderr line at each relay form (hclog warn, [ERROR], plain), so the
tests can check levels.
"""

import json
import logging
import os
import sys
import threading

from plugin_sdk import Database, DatabaseError, Setting, select_prefix, serve

log = logging.getLogger("jsonfile")


class JsonFileDatabase(Database):
    name = "jsonfile"
    settings = (Setting("path", required=True),)
    can_watch = True

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
        reads = self.__dict__.setdefault("reads", {})  # key -> what the last read found
        for key in keys:
            reads[key] = {k: v for k, v in values.items() if select_prefix(k, key)}
        return values

    def watch_prefix(self, prefix, keys, stop: threading.Event):
        def stamp():
            try:
                info = os.stat(self.options["path"])
                return info.st_ino, info.st_mtime_ns
            except OSError:
                return None

        seen = stamp()
        roots = list(keys or [prefix])
        known = [self.__dict__.get("reads", {}).get(k) for k in roots]
        if all(r is not None for r in known):  # changed since the last read: report it now
            before = {k: v for r in known for k, v in r.items()}
            now = {k: v for k, v in self._load().items()
                   if any(select_prefix(k, root) for root in roots)}
            if now != before:
                yield None
        while not stop.wait(0.05):
            now = stamp()
            if now != seen:
                seen = now
                yield None


serve(JsonFileDatabase())
