"""The SQLite example plugin as a user installs it: confd and the plugin pip-installed into a
fresh venv, confd run from there (not activated, PATH without the venv), finding the plugin's
console script beside itself; and why a `#!/usr/bin/env python3` script plugin fails there."""

from __future__ import annotations

import os
import shutil
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
# What a user's shell has: system directories, not the venv (it is not activated).
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


def _pip_install(python: Path, source: Path) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"pip install {source} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with confd-py and the example installed by pip (copies of the sources, so
    nothing is built in the tree); only third-party dependencies come from this venv."""
    root = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)})
    )
    # grpcio, click, pip, setuptools...: offline, from the environment running the tests
    paths = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    (purelib / "deps_from_parent.pth").write_text("\n".join(dict.fromkeys(paths)) + "\n")
    sources = tmp_path_factory.mktemp("sources")
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    confd_src = sources / "confd-py"
    for part in ("confd", "builtin", "plugin_sdk"):
        shutil.copytree(REPO / part, confd_src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, confd_src / part)
    plugin_src = sources / "plugin-sqlite"
    shutil.copytree(HERE, plugin_src, ignore=ignore)
    python = root / "bin" / "python"
    _pip_install(python, confd_src)
    _pip_install(python, plugin_src)
    return root


def test_confd_and_the_plugin_are_installed_in_the_venv(venv: Path) -> None:
    """pip writes the venv's interpreter into each console script: that is how the plugin
    finds plugin_sdk, whatever python3 is on PATH."""
    for script in ("confd", "confd-database-sqlite"):
        first = (venv / "bin" / script).read_text().splitlines()[0]
        assert first == f"#!{venv / 'bin' / 'python'}", (script, first)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import confd, plugin_sdk; "
         "print(confd.__file__); print(plugin_sdk.__file__)"],
        capture_output=True, text=True, timeout=60, cwd="/", check=True,
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where


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


def _confd(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`VENV/bin/confd ARGS` as a user runs it: by path, the venv not on PATH."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CONFD_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(venv / "bin" / "confd"), *args], capture_output=True, text=True, timeout=60,
        cwd=cwd, env={**clean, "PATH": BARE_PATH, **env},
    )


def test_renders_end_to_end_through_confd(venv, database, confdir, tmp_path) -> None:
    result = _confd(venv, "--onetime", "--confdir", str(confdir), "--backend", "sqlite",
                    "--backend-opt", f"path={database}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == (
        "name = shop\nport = 8080\n/app/name\n/app/port\n"
    )


def test_bad_table_is_a_clear_error(venv, database, confdir, tmp_path) -> None:
    result = _confd(venv, "--onetime", "--confdir", str(confdir), "--backend", "sqlite",
                    "--backend-opt", f"path={database}", "--backend-opt", "table=missing",
                    cwd=tmp_path)
    assert result.returncode != 0
    assert "cannot read table 'missing'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "app.conf").exists()


def test_misspelled_setting_is_refused_with_the_plugins_list(
    venv, database, confdir, tmp_path
) -> None:
    result = _confd(venv, "--onetime", "--confdir", str(confdir), "--backend", "sqlite",
                    "--backend-opt", f"path={database}", "--backend-opt", "tabel=kv",
                    cwd=tmp_path)
    assert result.returncode == 1
    assert ("plugin 'sqlite': backend 'sqlite' has no setting 'tabel' (its settings: path, "
            "table)") in result.stderr


def test_plugins_describe_and_backends_show_the_installed_plugin(venv, tmp_path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    described = _confd(venv, "plugins", "describe", "sqlite", cwd=tmp_path, **env)
    assert described.returncode == 0, described.stderr
    assert f"command:    {venv / 'bin' / 'confd-database-sqlite'}\n" in described.stdout
    assert ("settings:\n"
            "    path  str  required  - the SQLite database file\n"
            "    table  str  default kv  - the table holding key and value columns\n"
            ) in described.stdout
    listed = _confd(venv, "backends", cwd=tmp_path, **env)
    assert listed.returncode == 0, listed.stderr
    assert (f"sqlite: keys from a SQLite table (key TEXT PRIMARY KEY, value TEXT) (plugin "
            f"{venv / 'bin' / 'confd-database-sqlite'})\n"
            "    path  str  required") in listed.stdout


README_PLUGIN = """#!/usr/bin/env python3
from plugin_sdk import Database, serve

class Memory(Database):
    name = "memory"

    def get_values(self, keys):
        return {}

serve(Memory())
"""


def test_env_python3_script_plugin_fails_with_a_hint(venv, confdir, tmp_path) -> None:
    """A single-file plugin with `#!/usr/bin/env python3` runs whatever python3 is on PATH,
    which is not the venv's: it cannot import plugin_sdk, and confd says what to do."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    script = plugins / "confd-database-memory"
    script.write_text(README_PLUGIN)
    script.chmod(0o755)
    other = tmp_path / "other-python"  # a python3 without confd, first on PATH
    other.mkdir()
    (other / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    result = _confd(venv, "--onetime", "--confdir", str(confdir), "--backend", "memory",
                    "--plugin-dir", str(plugins), cwd=tmp_path,
                    PATH=f"{other}{os.pathsep}{BARE_PATH}")
    assert result.returncode == 1
    assert "plugin 'memory'" in result.stderr
    assert "exited with status 1 before its handshake" in result.stderr
    assert "No module named 'plugin_sdk'" in result.stderr
    assert ("the plugin's Python cannot import plugin_sdk: install the plugin into confd's "
            "environment as a console script") in result.stderr
    assert not (tmp_path / "app.conf").exists()
    # the same script with the venv's interpreter in its first line works
    script.write_text(README_PLUGIN.replace("/usr/bin/env python3", str(venv / "bin" / "python")))
    (confdir / "templates" / "app.conf.tmpl").write_text('{{ getv("/app/name", "none") }}\n')
    result = _confd(venv, "--onetime", "--confdir", str(confdir), "--backend", "memory",
                    "--plugin-dir", str(plugins), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == "none\n"


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


def test_the_installed_plugin_passes_the_kit_as_a_command(venv, tmp_path) -> None:
    """The kit also takes an installed plugin's command (any language): here the console
    script, which runs in the venv's own environment."""
    from plugin_sdk.testing import check_prefix_semantics, check_values, run_plugin

    store = tmp_path / "kit.db"
    with sqlite3.connect(store) as connection:
        connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)")
    connection.close()

    class Store:
        settings = {"path": str(store)}

        @staticmethod
        def put(values) -> None:
            with sqlite3.connect(store) as db:
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", values.items())
            db.close()

    with run_plugin([str(venv / "bin" / "confd-database-sqlite")], Store.settings) as database:
        assert database.name == "sqlite"
        check_prefix_semantics(database, Store)
        check_values(database, Store)
