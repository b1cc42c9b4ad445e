"""The SQLite example plugin, pip-installed into a fresh venv, rendering through `confd`."""

from __future__ import annotations

import site
import sqlite3
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parent.parent


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv with the example installed by pip; confd-py and its deps come from this one."""
    root = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)})
    )
    paths = [sysconfig.get_path("purelib"), *site.getsitepackages(), str(REPO)]
    (purelib / "confd_parent.pth").write_text("\n".join(dict.fromkeys(paths)) + "\n")
    python = root / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", str(HERE)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert (root / "bin" / "confd-database-sqlite").exists()
    return root


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "config.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)")
        connection.executemany(
            "INSERT INTO kv VALUES (?, ?)",
            [("/app/name", "shop"), ("/app/port", "8080"), ("/apple", "no")],
        )
    return path


@pytest.fixture
def confdir(tmp_path) -> Path:
    root = tmp_path / "confd"
    (root / "conf.d").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "templates" / "app.conf.tmpl").write_text(
        'name = {{ getv("/app/name") }}\nport = {{ getv("/app/port") }}\n'
        "{% for kv in gets('/app/*') %}{{ kv.key }}\n{% endfor %}"
    )
    (root / "conf.d" / "app.toml").write_text(
        f'[template]\nsrc = "app.conf.tmpl"\ndest = "{tmp_path / "app.conf"}"\n'
        'keys = ["/app"]\n'
    )
    return root


def test_renders_end_to_end_through_confd(venv, database, confdir, tmp_path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "confd", "--onetime", "--confdir", str(confdir),
         "--backend", "sqlite", "--backend-opt", f"path={database}"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == (
        "name = shop\nport = 8080\n/app/name\n/app/port\n"
    )


def test_bad_table_is_a_clear_error(venv, database, confdir, tmp_path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "confd", "--onetime", "--confdir", str(confdir),
         "--backend", "sqlite", "--backend-opt", f"path={database}",
         "--backend-opt", "table=missing"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "cannot read table 'missing'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "app.conf").exists()


def test_watch_reports_changed_keys(venv, database) -> None:
    from confd.backends.plugin.client import PluginDatabase
    from confd.backends.plugin.launch import LaunchOptions

    command = [str(venv / "bin" / "confd-database-sqlite")]
    plugin = PluginDatabase(LaunchOptions("sqlite", command))
    try:
        plugin.configure({"path": str(database)})
        assert plugin.get_values(["/app"]) == {"/app/name": "shop", "/app/port": "8080"}
        stop = threading.Event()
        seen: list[object] = []
        got = threading.Event()

        def watch() -> None:
            for item in plugin.watch_prefix("/app", ["/app"], stop):
                seen.append(item)
                got.set()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        threading.Event().wait(0.8)
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE kv SET value = 'mall' WHERE key = '/app/name'")
            connection.execute("UPDATE kv SET value = 'yes' WHERE key = '/apple'")
        assert got.wait(5)
        assert seen == [["/app/name"]]
        stop.set()
        thread.join(3)
    finally:
        plugin.close()
