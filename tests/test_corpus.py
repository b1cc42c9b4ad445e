"""The bad-input corpus (tests/corpus/CASE): each case run through the real `confd --onetime`.

A case is a confdir (conf.d/, templates/, optionally values.yaml) plus `expect.toml`:
`exit` (status), `log` (texts that must appear in confd's log), `files` (destination -> exact
content), `not_written` (destinations that must not exist), `symlinks` (made before the run) and
`check` (true: `confd check` finds the problem too, exits 1 and prints every `log` text).
Every case also gets a healthy resource, which must render whatever else is broken, and no
case may print a traceback or leave a stage file behind.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.toml").is_file())
BASE_VALUES = 'app:\n  value: "hello"\nhealthy: "yes"\n'
HEALTHY_RESOURCE = (
    '[template]\nsrc = "zz-healthy.tmpl"\ndest = "healthy.conf"\nkeys = ["/healthy"]\n'
)
EXPECT_KEYS = {"exit", "log", "files", "not_written", "symlinks", "check"}


def load_expectation(case: str) -> dict[str, Any]:
    expect = tomllib.loads((CORPUS / case / "expect.toml").read_text())
    unknown = set(expect) - EXPECT_KEYS
    assert not unknown, f"tests/corpus/{case}/expect.toml: unknown keys {sorted(unknown)}"
    assert isinstance(expect.get("exit"), int), f"tests/corpus/{case}/expect.toml: needs exit"
    return expect


def prepare(case: str, tmp_path: Path, expect: dict[str, Any]) -> tuple[Path, list[str]]:
    """Copy the case to `tmp_path`, add the healthy resource; the confdir and the value files."""
    confdir = tmp_path / "confdir"
    shutil.copytree(CORPUS / case, confdir, symlinks=True)
    (confdir / "expect.toml").unlink()
    for link, target in expect.get("symlinks", {}).items():
        (confdir / link).symlink_to(target)
    (confdir / "conf.d" / "zz-healthy.toml").write_text(HEALTHY_RESOURCE)
    (confdir / "templates" / "zz-healthy.tmpl").write_text('healthy={{ getv("/healthy") }}\n')
    base = tmp_path / "values.yaml"
    base.write_text(BASE_VALUES)
    files = [str(base)]
    if (confdir / "values.yaml").is_file():
        files.append(str(confdir / "values.yaml"))
    return confdir, files


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 30, f"only {len(CASES)} cases in {CORPUS}"


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, tmp_path: Path, run_confd) -> None:
    expect = load_expectation(case)
    confdir, files = prepare(case, tmp_path, expect)
    out = tmp_path / "out"
    out.mkdir()
    args = ["--onetime", "--log-level", "debug", "--backend", "file", "--confdir", str(confdir)]
    for name in files:
        args += ["--file", name]
    result: subprocess.CompletedProcess[str] = run_confd(*args, cwd=out, timeout=60)
    output = result.stdout + result.stderr
    context = f"case {case}: confd said:\n{output}"

    assert result.returncode == expect["exit"], context
    assert "Traceback" not in output, context
    for text in expect.get("log", []):
        assert text in result.stderr, f"{text!r} missing; {context}"
    assert (out / "healthy.conf").read_text() == "healthy=yes\n", context
    for name, content in expect.get("files", {}).items():
        assert (out / name).read_text(encoding="utf-8") == content, context
    for name in expect.get("not_written", []):
        assert not (out / name).exists(), f"{name} was written; {context}"
    stages = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert stages == [], f"stage files left behind: {stages}; {context}"
    if expect["exit"] != 0:
        assert "resource" in result.stderr and "failed" in result.stderr, context


@pytest.mark.parametrize("case", CASES)
def test_corpus_case_through_check(case: str, tmp_path: Path, run_confd) -> None:
    """`confd check` never crashes on the corpus, and reports what it can find statically."""
    expect = load_expectation(case)
    confdir, _ = prepare(case, tmp_path, expect)
    result = run_confd("check", "--confdir", str(confdir), cwd=tmp_path, timeout=60)
    output = result.stdout + result.stderr
    context = f"case {case}: confd check said:\n{output}"
    assert "Traceback" not in output, context
    assert result.returncode in (0, 1), context
    if expect.get("check"):
        assert result.returncode == 1, context
        for text in expect.get("log", []):
            assert text in output, f"{text!r} missing; {context}"
    assert not (tmp_path / "escaped").exists()
