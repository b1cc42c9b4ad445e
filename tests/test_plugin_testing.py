"""The plugin authors' kit (`plugin_sdk.testing`): a well-behaved plugin passes the
conformance suite through the real protocol, and plugins that break prefix semantics, ignore
`stop` or leak a secret fail it with a message saying what is wrong."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from plugin_sdk import Database, DatabaseError, LastReads, Setting, select_prefix
from plugin_sdk.testing import (
    ConformanceError,
    DatabaseConformance,
    check_no_secret_in_errors,
    check_prefix_semantics,
    check_watch,
    check_watch_from_the_last_read,
    run_plugin,
)


class JsonStore:
    """A JSON file the plugins below read; `put` rewrites it atomically."""

    def __init__(self, root: Path) -> None:
        self.path = root / "store.json"
        self.path.write_text("{}")

    @property
    def settings(self) -> Mapping[str, str]:
        return {"path": str(self.path)}

    def put(self, values: Mapping[str, str]) -> None:
        data = {**json.loads(self.path.read_text()), **values}
        staged = self.path.with_suffix(".tmp")
        staged.write_text(json.dumps(data))
        os.replace(staged, self.path)


class JsonDatabase(Database):
    """A conforming plugin: keys from a JSON file, watched by polling its mtime."""

    name = "jsonkit"
    settings = (
        Setting("path", required=True, help="the JSON file"),
        Setting("token", secret=True, help="not used; here to be kept secret"),
    )
    can_watch = True

    def __init__(self) -> None:
        super().__init__()
        self.reads = LastReads()

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(Path(self.options["path"]).read_text())
        except (OSError, ValueError) as exc:
            raise DatabaseError(f"backend {self.name!r}: cannot read setting 'path': "
                                f"{type(exc).__name__}") from None

    def configure(self, config):
        super().configure(config)
        self._load()

    def get_values(self, keys):
        values = {k: v for k, v in self._load().items() if any(select_prefix(k, r) for r in keys)}
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
        while not stop.wait(0.02):
            if stamp() != seen:
                seen = stamp()
                yield None


class PrefixBreaking(JsonDatabase):
    """Deliberately broken: `/app` also matches `/application` and `/apple`."""

    def get_values(self, keys):
        return {k: v for k, v in self._load().items() if any(k.startswith(r) for r in keys)}


class StopIgnoring(JsonDatabase):
    """Deliberately broken: its watch notices `stop` only every 3 seconds."""

    def watch_prefix(self, prefix, keys, stop):
        for item in super().watch_prefix(prefix, keys, threading.Event()):
            yield item
            time.sleep(3.0)
            if stop.is_set():
                return


class WatchFromNow(JsonDatabase):
    """Deliberately broken: its watch starts from the store as it is when the watch starts."""

    def watch_prefix(self, prefix, keys, stop):
        self.reads = LastReads()  # forgets what was read: starts from the store as it is
        yield from super().watch_prefix(prefix, keys, stop)


class SecretLeaking(JsonDatabase):
    """Deliberately broken: its configure error shows the token."""

    def configure(self, config):
        super().configure(config)
        if not Path(self.options["path"]).name.startswith("store"):
            raise DatabaseError(f"bad path for token {self.options['token']}")


class TestConformingPlugin(DatabaseConformance):
    """The whole suite against a plugin that conforms: every check passes."""

    plugin = JsonDatabase
    bad_settings = ({"path": "/nonexistent/store.json"},)

    def make_store(self, tmp_path: Path) -> JsonStore:
        return JsonStore(tmp_path)


class PrefixBreakingSuite(TestConformingPlugin):
    plugin = PrefixBreaking


def test_kit_fails_a_plugin_that_breaks_prefix_semantics(tmp_path: Path) -> None:
    with pytest.raises(ConformanceError) as info:
        PrefixBreakingSuite().test_prefix_semantics(tmp_path)
    text = str(info.value)
    assert "get_values(['/app']) returned" in text
    assert "keys outside the request: ['/apple', '/application/name']" in text
    assert "use plugin_sdk.select_prefix" in text


def test_run_plugin_serves_a_class_through_confds_host(tmp_path: Path) -> None:
    store = JsonStore(tmp_path)
    store.put({"/app/x": "1", "/application": "2"})
    with run_plugin(JsonDatabase, store.settings) as database:
        process = database.process  # type: ignore[attr-defined]
        assert process.transport == "TLS (AutoMTLS)"
        assert database.plugin_description.name == "jsonkit"  # type: ignore[attr-defined]
        assert database.get_values(["/app"]) == {"/app/x": "1"}
    assert process._proc.returncode == 0  # stopped at the end, by Shutdown (no kill)


def test_run_plugin_names_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="backend 'jsonkit' has no setting 'pth'"), \
            run_plugin(JsonDatabase, {"pth": "x"}):
        pass


def test_check_prefix_semantics_through_the_protocol_fails_the_broken_plugin(
    tmp_path: Path,
) -> None:
    store = JsonStore(tmp_path)
    with run_plugin(JsonDatabase, store.settings) as good:
        check_prefix_semantics(good, store)
    with run_plugin(PrefixBreaking, store.settings) as broken, \
            pytest.raises(ConformanceError, match="/application/name"):
        check_prefix_semantics(broken, store)


def test_kit_fails_a_watch_that_ignores_stop(tmp_path: Path) -> None:
    store = JsonStore(tmp_path)
    database = StopIgnoring()
    database.configure(dict(store.settings))
    with pytest.raises(ConformanceError, match=r"the watch returned \d\.\d\d s after stop"):
        check_watch(database, store)


def test_kit_fails_a_watch_that_misses_a_change_made_since_the_last_read(
    tmp_path: Path,
) -> None:
    store = JsonStore(tmp_path)
    database = WatchFromNow()
    database.configure(dict(store.settings))
    with pytest.raises(ConformanceError, match="after get_values and before watch_prefix"):
        check_watch_from_the_last_read(database, store)


def test_kit_fails_a_plugin_that_shows_a_secret(tmp_path: Path) -> None:
    store = JsonStore(tmp_path)
    other = tmp_path / "other.json"
    other.write_text("{}")

    def start(settings):
        return run_plugin(SecretLeaking, settings)

    with pytest.raises(ConformanceError, match="an error shows a secret setting's value"):
        check_no_secret_in_errors(start, store.settings, ["token"], [{"path": str(other)}])


def test_last_reads_name_what_changed_since_the_read_under_the_keys_read() -> None:
    reads = LastReads()
    assert reads.changed_since(["/app"], {"/app/x": "1"}) is None  # never read: no baseline
    reads.remember(["/app", "/db"], {"/app/x": "1", "/app/y": "1", "/db/h": "a"})
    assert reads.changed_since(["/app"], {"/app/x": "1", "/app/y": "1", "/other": "9"}) == []
    assert reads.changed_since(["/app"], {"/app/x": "2", "/app/z": "1"}) == [
        "/app/x", "/app/y", "/app/z"]  # changed, gone, new; /db not asked
    assert reads.changed_since(["/app", "/cache"], {"/app/x": "1"}) is None
