"""The `file` database: flattening, merging, directories, errors, and the native watch."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import builtin.file as file_backend
from builtin.file import FileDatabase, flatten
from plugin_sdk.database import DatabaseError

ROOT = Path(__file__).resolve().parents[1]


def database(*paths: Path | str, **settings: str) -> FileDatabase:
    db = FileDatabase()
    db.configure({"file": ",".join(str(p) for p in paths), **settings})
    return db


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- flattening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a": {"b": {"c": "x"}}}, {"/a/b/c": "x"}),
        ({"a": ["x", "y"]}, {"/a/0": "x", "/a/1": "y"}),
        ({"a": [{"n": 1}, {"n": 2}]}, {"/a/0/n": "1", "/a/1/n": "2"}),
        ({"a": [["x"], ["y", "z"]]}, {"/a/0/0": "x", "/a/1/0": "y", "/a/1/1": "z"}),
        (["x", {"k": "v"}], {"/0": "x", "/1/k": "v"}),
        ({"a": {}, "b": []}, {}),
        ({"a/b": "nested by slash"}, {"/a/b": "nested by slash"}),
        ({1: "int key", False: "bool key"}, {"/1": "int key", "/false": "bool key"}),
        ({"ключ": "значение ✓"}, {"/ключ": "значение ✓"}),
    ],
)
def test_flatten_structure(document: Any, expected: dict[str, str]) -> None:
    assert flatten(document) == expected


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("text", "text"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (123456789012345678901234567890, "123456789012345678901234567890"),
        (1.5, "1.5"),
        (3.0, "3"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (1e21, "1000000000000000000000"),
        (1.25e-7, "0.000000125"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (None, ""),
    ],
)
def test_flatten_scalars_print_as_confd_does(value: Any, printed: str) -> None:
    assert flatten({"k": value}) == {"/k": printed}


@pytest.mark.parametrize(
    ("yaml_scalar", "printed"),
    [
        ("true", "true"),
        ("False", "false"),
        ("yes", "yes"),  # YAML 1.2 / yaml.v3: not a boolean
        ("off", "off"),
        ("8080", "8080"),
        ("1_000", "1000"),
        ("0x1F", "31"),
        ("0o17", "15"),
        ("017", "15"),
        ("2.50", "2.5"),
        ("1e3", "1000"),
        (".inf", "+Inf"),
        ("-.Inf", "-Inf"),
        (".nan", "NaN"),
        ("~", ""),
        ("null", ""),
        ("", ""),
        ("2024-01-02", "2024-01-02"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("'007'", "007"),
        ('"true"', "true"),
        ("1.2.3", "1.2.3"),
        ("naïve ✓", "naïve ✓"),
    ],
)
def test_yaml_scalars(tmp_path: Path, yaml_scalar: str, printed: str) -> None:
    path = write(tmp_path / "v.yaml", f"k: {yaml_scalar}\n")
    assert database(path).get_values(["/k"]) == {"/k": printed}


def test_json_file_is_flattened(tmp_path: Path) -> None:
    doc = {"db": {"port": 5432, "ratio": 0.5, "on": True, "none": None, "hosts": ["a", "b"]}}
    path = write(tmp_path / "c.json", json.dumps(doc))
    assert database(path).get_values(["/db"]) == {
        "/db/port": "5432",
        "/db/ratio": "0.5",
        "/db/on": "true",
        "/db/none": "",
        "/db/hosts/0": "a",
        "/db/hosts/1": "b",
    }


def test_yaml_anchors_and_merge_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.yaml",
        "base: &base {user: app, port: 1}\nprod:\n  <<: *base\n  port: 2\n",
    )
    assert database(path).get_values(["/prod"]) == {"/prod/user": "app", "/prod/port": "2"}


def test_several_yaml_documents_merge_in_order(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", "a: 1\nb: 1\n---\nb: 2\n---\n")
    assert database(path).get_values(["/"]) == {"/a": "1", "/b": "2"}


def test_empty_file_has_no_keys(tmp_path: Path) -> None:
    assert database(write(tmp_path / "e.yaml", "")).get_values(["/"]) == {}


# --- prefixes, merging, directories -----------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["/app"], {"/app": "x", "/app/port": "1"}),
        (["/app/"], {"/app": "x", "/app/port": "1"}),
        (["/application"], {"/application/name": "long"}),
        (["/app/port"], {"/app/port": "1"}),
        (["/ap"], {}),
        (["/app/port", "/other"], {"/app/port": "1", "/other": "o"}),
        (
            ["/"],
            {"/app": "x", "/app/port": "1", "/application/name": "long", "/other": "o"},
        ),
        ([], {}),
    ],
)
def test_prefix_semantics(tmp_path: Path, keys: list[str], expected: dict[str, str]) -> None:
    # `/app` as both a value and a parent cannot come from one document: use two files.
    first = write(tmp_path / "1.yaml", "app: x\napplication: {name: long}\nother: o\n")
    second = write(tmp_path / "2.yaml", "app: {port: 1}\n")
    assert database(first, second).get_values(keys) == expected


def test_later_file_wins(tmp_path: Path) -> None:
    first = write(tmp_path / "defaults.yaml", "db: {host: localhost, port: 5432}\n")
    second = write(tmp_path / "override.json", '{"db": {"host": "prod-db"}}')
    assert database(first, second).get_values(["/db"]) == {
        "/db/host": "prod-db",
        "/db/port": "5432",
    }
    assert database(second, first).get_values(["/db/host"]) == {"/db/host": "localhost"}


def test_directory_is_read_recursively_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "b.yaml", "k: b\nonly_b: 1\n")
    write(tmp_path / "conf" / "a" / "deep" / "x.yml", "k: a\ndeep: 1\n")
    write(tmp_path / "conf" / "c.json", '{"k": "c"}')
    write(tmp_path / "conf" / "noext", "noext: 1\n")
    assert database(tmp_path / "conf").get_values(["/"]) == {
        "/k": "c",
        "/only_b": "1",
        "/deep": "1",
        "/noext": "1",
    }


def test_directory_filter_selects_file_names(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "app.yaml", "a: 1\n")
    write(tmp_path / "conf" / "sub" / "more.yaml", "b: 2\n")
    write(tmp_path / "conf" / "skip.json", '{"c": 3}')
    db = database(tmp_path / "conf", filter="*.yaml")
    assert db.get_values(["/"]) == {"/a": "1", "/b": "2"}


def test_directory_skips_hidden_entries_and_non_data_files(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write(conf / "app.yaml", "a: 1\n")
    write(conf / ".app.yaml.swp", "not: yaml: at: all\n")
    write(conf / "app.yaml~", "a: stale\n")
    write(conf / "README.md", "# not: [data\n")
    write(conf / "..2024_01_01" / "app.yaml", "a: from-hidden-dir\n")
    assert database(conf).get_values(["/"]) == {"/a": "1"}


def test_named_file_is_read_whatever_its_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "values.conf", "a: 1\n")
    assert database(path).get_values(["/a"]) == {"/a": "1"}


def test_filter_does_not_apply_to_named_files(tmp_path: Path) -> None:
    path = write(tmp_path / "values.json", '{"a": 1}')
    assert database(path, filter="*.yaml").get_values(["/a"]) == {"/a": "1"}


def test_files_are_read_again_at_each_call(tmp_path: Path) -> None:
    path = write(tmp_path / "v.yaml", "a: 1\n")
    db = database(path)
    assert db.get_values(["/a"]) == {"/a": "1"}
    write(path, "a: 2\n")
    assert db.get_values(["/a"]) == {"/a": "2"}


# --- errors -------------------------------------------------------------------------------


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "ok: 1\nlist: [1, 2\nnext: 3\n")
    with pytest.raises(DatabaseError, match=rf"{path}:3:\d+: invalid YAML"):
        database(path).get_values(["/"])


def test_yaml_error_in_directory_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "good.yaml", "a: 1\n")
    bad = write(tmp_path / "conf" / "sub" / "bad.yml", "a:\n\tb: 1\n")
    with pytest.raises(DatabaseError, match=rf"{bad}:2:\d+: invalid YAML"):
        database(tmp_path / "conf").get_values(["/"])


def test_json_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(DatabaseError, match=rf"{path}:4:1: invalid JSON"):
        database(path).get_values(["/"])


def test_missing_file_is_named(tmp_path: Path) -> None:
    present = write(tmp_path / "here.yaml", "a: 1\n")
    missing = tmp_path / "gone.yaml"
    with pytest.raises(DatabaseError, match=rf"{missing} does not exist"):
        database(present, missing).get_values(["/"])


def test_scalar_document_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "just a string\n")
    with pytest.raises(DatabaseError, match=rf"{path}: top level must be a mapping or a list"):
        database(path).get_values(["/"])


def test_non_utf8_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(DatabaseError, match=str(path)):
        database(path).get_values(["/"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "backend 'file': setting 'file' is required"),
        ({"file": " , "}, "setting 'file' needs at least one path"),
        ({"file": "a.yaml", "separator": "/"}, "backend 'file' has no setting 'separator'"),
        ({"file": "a.yaml", "node": "x"}, "backend 'file' has no setting 'node'"),
        ({"file": "a.yaml", "filter": ""}, "setting 'filter' must be a glob on file names"),
        ({"file": "a.yaml", "filter": "sub/*.yaml"}, "setting 'filter' must be a glob"),
    ],
)
def test_bad_settings_are_refused(config: dict[str, str], message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        FileDatabase().configure(config)


def test_yaml_is_imported_only_when_a_yaml_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "v.json", '{"a": 1}')
    script = (
        "import sys\n"
        "from builtin.file import FileDatabase\n"
        "db = FileDatabase()\n"
        f"db.configure({{'file': {str(path)!r}}})\n"
        "assert db.get_values(['/a']) == {'/a': '1'}\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# --- watch ------------------------------------------------------------------------------


class Watch:
    """`watch_prefix` running in a thread; what it yields lands in `events`."""

    def __init__(self, db: FileDatabase, prefix: str) -> None:
        self.stop = threading.Event()
        self.events: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(db, prefix), daemon=True)
        self.thread.start()
        time.sleep(0.6)  # let it take its first reading

    def _run(self, db: FileDatabase, prefix: str) -> None:
        try:
            for item in db.watch_prefix(prefix, [], self.stop):
                self.events.put(item)
        except BaseException as exc:  # surfaced by next()
            self.events.put(exc)

    def next(self, timeout: float = 5.0) -> Any:
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"watch yielded nothing within {timeout} s") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def assert_quiet(self, seconds: float = 1.5) -> None:
        try:
            item = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"watch yielded {item!r} for a change outside its prefix")


@pytest.fixture(params=["native", "polling"])
def watch_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each watch test with watchfiles, and with the stat-polling fallback."""
    if request.param == "polling":
        monkeypatch.setattr(file_backend, "_watchfiles", lambda: None)
    else:
        assert file_backend._watchfiles() is not None, "watchfiles must be installed"
    return request.param


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for watch in started:
        watch.stop.set()
    for watch in started:
        watch.thread.join(timeout=3)
        assert not watch.thread.is_alive(), "watch did not stop"


def start(watches: list[Watch], db: FileDatabase, prefix: str) -> Watch:
    watch = Watch(db, prefix)
    watches.append(watch)
    return watch


def test_watch_yields_changed_keys_under_prefix(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    path = write(tmp_path / "v.yaml", "app: {port: 1, host: h}\nother: 1\n")
    watch = start(watches, database(path), "/app")
    write(path, "app: {port: 2, host: h, new: n}\nother: 1\n")
    assert watch.next() == {"/app/port", "/app/new"}


def test_watch_ignores_changes_outside_prefix(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    path = write(tmp_path / "v.yaml", "app: {port: 1}\napplication: {port: 1}\n")
    watch = start(watches, database(path), "/app")
    write(path, "app: {port: 1}\napplication: {port: 2}\n")
    watch.assert_quiet()
    write(path, "app: {port: 3}\napplication: {port: 2}\n")
    assert watch.next() == {"/app/port"}


def test_watch_follows_files_replaced_by_rename(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    path = write(tmp_path / "v.yaml", "app: {port: 1}\n")
    watch = start(watches, database(path), "/")
    for port in (2, 3):  # twice: the second proves the watch moved to the new file
        staged = write(tmp_path / f".v.yaml.tmp{port}", f"app: {{port: {port}}}\n")
        os.replace(staged, path)
        assert watch.next() == {"/app/port"}


def test_watch_sees_new_file_in_directory(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    conf = tmp_path / "conf"
    write(conf / "a.yaml", "app: {a: 1}\n")
    watch = start(watches, database(conf), "/app")
    write(conf / "sub" / "b.yaml", "app: {b: 2}\n")
    assert watch.next() == {"/app/b"}


def test_watch_reports_broken_file_then_its_repair(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    path = write(tmp_path / "v.yaml", "app: {port: 1}\n")
    db = database(path)
    watch = start(watches, db, "/app")
    write(path, "app: {port: [1\n")
    assert watch.next() is None
    with pytest.raises(DatabaseError, match=rf"{path}:\d+:\d+: invalid YAML"):
        db.get_values(["/app"])
    write(path, "app: {port: 5}\n")
    assert watch.next() is None
    assert db.get_values(["/app"]) == {"/app/port": "5"}


def test_watch_survives_file_deleted_and_recreated(
    tmp_path: Path, watch_mode: str, watches: list[Watch]
) -> None:
    path = write(tmp_path / "v.yaml", "app: {port: 1}\n")
    watch = start(watches, database(path), "/app")
    path.unlink()
    assert watch.next() is None
    write(path, "app: {port: 9}\n")
    assert watch.next() is None  # from "missing" back to values


@pytest.mark.parametrize("how", ["stop", "close"])
def test_watch_returns_promptly(tmp_path: Path, watch_mode: str, how: str) -> None:
    path = write(tmp_path / "v.yaml", "app: 1\n")
    db = database(path)
    watch = Watch(db, "/app")
    began = time.monotonic()
    if how == "stop":
        watch.stop.set()
    else:
        db.close()
    watch.thread.join(timeout=3)
    elapsed = time.monotonic() - began
    watch.stop.set()
    assert not watch.thread.is_alive(), "watch did not return"
    assert elapsed < 1.0, f"watch took {elapsed:.2f} s to return"
    assert watch.events.empty()
