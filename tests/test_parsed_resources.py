"""Resource files parsed once per content (`confd.config.parsed`): a load that finds a file's
bytes parsed before takes that parse; an edited, broken or removed file is never served stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from confd.config.parsed import ParsedFiles
from confd.config.resource import load_resources
from confd.errors import ConfigError


@pytest.fixture
def confdir(make_confdir) -> Path:
    return make_confdir(templates={"app.tmpl": "x\n"})


def write(confdir: Path, name: str, dest: str, extra: str = "") -> Path:
    path = confdir / "conf.d" / name
    path.write_text(f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/a"]\n{extra}')
    return path


def parses(confdir: Path, cache: Path | None) -> int:
    """How many files a load through `cache` parsed (the rest came from it)."""
    parsed = ParsedFiles(cache, confdir / "conf.d")
    for path in sorted((confdir / "conf.d").glob("*.toml")):
        parsed.load(path)
    parsed.save()
    return parsed.parsed


def test_a_second_load_parses_nothing_and_gets_the_same_resources(confdir: Path,
                                                                 tmp_path: Path) -> None:
    for n in range(3):
        write(confdir, f"r{n}.toml", f"/tmp/out{n}", 'check_cmd = "true"\nmode = "0600"\n')
    cache = tmp_path / "cache"
    first, errors = load_resources(confdir, cache=cache)
    assert errors == []
    assert parses(confdir, cache) == 0
    again, _ = load_resources(confdir, cache=cache)
    assert again == first and again[1].check_cmd == "true" and again[1].mode == 0o600
    assert [p.name for p in (cache / "parsed").iterdir()] != []


def test_an_edited_file_is_parsed_again_and_a_broken_one_is_an_error(confdir: Path,
                                                                     tmp_path: Path) -> None:
    path = write(confdir, "app.toml", "/tmp/one")
    cache = tmp_path / "cache"
    load_resources(confdir, cache=cache)
    write(confdir, "app.toml", "/tmp/two")
    [resource], _ = load_resources(confdir, cache=cache)
    assert resource.dest == Path("/tmp/two")
    path.write_text('[template]\nsrc = "app.tmpl"\ndest = \n')
    resources, [error] = load_resources(confdir, cache=cache)
    assert resources == []
    assert isinstance(error, ConfigError) and str(path) in str(error)
    assert "invalid TOML" in str(error) and "line 3" in str(error)


def test_the_entry_keeps_only_the_files_a_load_read(confdir: Path, tmp_path: Path) -> None:
    write(confdir, "a.toml", "/tmp/a")
    gone = write(confdir, "b.toml", "/tmp/b")
    cache = tmp_path / "cache"
    assert parses(confdir, cache) == 2
    gone.unlink()
    assert parses(confdir, cache) == 0
    gone.write_text(gone.parent.joinpath("a.toml").read_text().replace("/tmp/a", "/tmp/b"))
    assert parses(confdir, cache) == 1  # b's parse went with the load that no longer had it


def test_a_file_marshal_cannot_hold_is_parsed_at_every_load(confdir: Path,
                                                            tmp_path: Path) -> None:
    write(confdir, "a.toml", "/tmp/a")
    write(confdir, "dated.toml", "/tmp/d", "[extra]\nwhen = 2026-12-07\n")
    cache = tmp_path / "cache"
    assert parses(confdir, cache) == 2
    assert parses(confdir, cache) == 1
    [entry] = (cache / "parsed").iterdir()
    written = entry.stat().st_mtime_ns
    assert parses(confdir, cache) == 1
    assert entry.stat().st_mtime_ns == written  # nothing new to keep: not rewritten


def test_a_damaged_entry_is_parsed_around(confdir: Path, tmp_path: Path) -> None:
    write(confdir, "a.toml", "/tmp/a")
    cache = tmp_path / "cache"
    parses(confdir, cache)
    [entry] = (cache / "parsed").iterdir()
    entry.write_bytes(entry.read_bytes()[:-5])
    assert parses(confdir, cache) == 1
    [resource], _ = load_resources(confdir, cache=cache)
    assert resource.dest == Path("/tmp/a")


def test_no_cache_directory_writes_nothing(confdir: Path, tmp_path: Path) -> None:
    write(confdir, "a.toml", "/tmp/a")
    assert parses(confdir, None) == 1
    assert parses(confdir, None) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confdir"]


def test_a_warm_onetime_start_does_not_import_tomllib(confdir: Path, tmp_path: Path) -> None:
    write(confdir, "app.toml", str(tmp_path / "out"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
    env.update(A="1", CONFD_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-X", "importtime", "-m", "confd", "--onetime", "--backend", "env",
           "--confdir", str(confdir)]
    imported = []
    for _ in range(2):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        imported.append("| tomllib\n" in result.stderr)
    assert (tmp_path / "out").read_text() == "x\n"
    assert imported == [True, False]
