"""confd's log lines: written directly while nothing imported `logging`, through it after,
the same either way."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The same run started so that `logging` is already loaded: every record takes that route.
THROUGH_LOGGING = ("import logging, runpy, sys; sys.argv[0] = 'confd'; "
                   "runpy.run_module('confd', run_name='__main__')")


def run(confdir: Path, *args: str, preload: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
    env["APP_X"] = "1"
    start = [sys.executable, "-c", THROUGH_LOGGING] if preload else [sys.executable, "-m",
                                                                     "confd"]
    return subprocess.run([*start, "--onetime", "--backend", "env", "--confdir", str(confdir),
                           *args], capture_output=True, text=True, env=env, timeout=60)


def lines(stderr: str) -> list[str]:
    """The log lines with the time and pid masked (they differ between two runs)."""
    masked = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", stderr)
    return re.sub(r"confd\[\d+\]", "confd[<pid>]", masked).splitlines()


@pytest.fixture
def confdir(make_confdir, tmp_path: Path) -> Path:
    """One resource that renders, one whose key is missing."""
    return make_confdir(
        templates={"a.tmpl": '{{ getv("/app/x") }}\n', "b.tmpl": '{{ getv("/app/missing") }}\n'},
        resources={
            "a.toml": f'[template]\nsrc = "a.tmpl"\ndest = "{tmp_path}/a"\nkeys = ["/app"]\n',
            "b.toml": f'[template]\nsrc = "b.tmpl"\ndest = "{tmp_path}/b"\nkeys = ["/app"]\n',
        },
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_both_routes_print_the_same_lines(confdir: Path, tmp_path: Path, fmt: str) -> None:
    direct = run(confdir, "--log-format", fmt, "--log-level", "debug", preload=False)
    (tmp_path / "a").unlink()
    through = run(confdir, "--log-format", fmt, "--log-level", "debug", preload=True)
    assert direct.returncode == through.returncode == 1
    assert lines(direct.stderr) == lines(through.stderr)
    assert len(lines(direct.stderr)) >= 6
    if fmt == "json":
        records = [json.loads(line) for line in direct.stderr.splitlines()]
        out_of_sync = [r for r in records if r["msg"].endswith("out of sync")]
        assert [(r["level"], r["dest"]) for r in out_of_sync] == [("info", str(tmp_path / "a"))]
        assert records[-1]["level"] == "error" and records[-1]["msg"] == "1 of 2 resources failed"
    else:
        text = direct.stderr
        assert f"INFO Target config {tmp_path / 'a'} has been updated" in text
        assert re.search(r"ERROR .*b\.toml: .*b\.tmpl:1: key \"/app/missing\" not found", text)
        assert text.rstrip().endswith("ERROR 1 of 2 resources failed")


def test_a_quiet_run_prints_nothing_below_its_level(confdir: Path) -> None:
    result = run(confdir, "--log-level", "error", preload=False)
    assert result.returncode == 1
    assert [line.split(": ", 1)[1].split(" ", 1)[0] for line in lines(result.stderr)] == \
        ["ERROR", "ERROR"]
