"""examples/confdir rendered by the installed `confd` command through env and file backends."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from testsupport.fixtures import REPO

EXAMPLE = REPO / "examples" / "confdir"
EXPECTED = REPO / "examples" / "expected"
DEMO_ENV = {
    "MYAPP_DATABASE_URL": "db.example.com",
    "MYAPP_DATABASE_USER": "rob",
    "MYAPP_DATABASE_PORT": "5432",
    "MYAPP_UPSTREAM_APP1": "10.0.0.1:8080",
    "MYAPP_UPSTREAM_APP2": "10.0.0.2:8080",
}
BACKENDS = {
    "env": (["--backend", "env"], DEMO_ENV),
    "file": (["-backend", "file", "-file", str(EXAMPLE / "data" / "myapp.yaml")], {}),
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory holding demo-out/, where the example's relative dests point."""
    (tmp_path / "demo-out").mkdir()
    return tmp_path


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_example_renders_expected_files(run_confd, workdir: Path, backend: str) -> None:
    args, env = BACKENDS[backend]
    result = run_confd("--onetime", "--confdir", str(EXAMPLE), *args, env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    expected = sorted(p.name for p in EXPECTED.iterdir())
    assert sorted(p.name for p in (workdir / "demo-out").iterdir()) == expected
    for name in expected:
        assert (workdir / "demo-out" / name).read_text() == (EXPECTED / name).read_text(), name
    assert stat.S_IMODE((workdir / "demo-out" / "myapp.conf").stat().st_mode) == 0o640


def test_second_run_changes_nothing(run_confd, workdir: Path) -> None:
    args, env = BACKENDS["env"]
    first = run_confd("--onetime", "--confdir", str(EXAMPLE), *args, env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr
    second = run_confd("--onetime", "--confdir", str(EXAMPLE), *args, env=env, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "has been updated" not in second.stderr


def test_missing_key_fails_and_leaves_other_files(run_confd, workdir: Path) -> None:
    args, env = BACKENDS["env"]
    env = {k: v for k, v in env.items() if k != "MYAPP_DATABASE_USER"}
    result = run_confd("--onetime", "--confdir", str(EXAMPLE), *args, env=env, cwd=workdir)
    assert result.returncode == 1
    assert "1 of 2 resources failed" in result.stderr
    assert "myapp.toml" in result.stderr and "/database/user" in result.stderr
    assert not (workdir / "demo-out" / "myapp.conf").exists()
    assert (workdir / "demo-out" / "nginx-upstream.conf").read_text() == (
        EXPECTED / "nginx-upstream.conf").read_text()


def test_demo_script_renders_into_demo_out(tmp_path: Path) -> None:
    """scripts/demo, run from a copy of the repo's relevant parts, prints both files."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copytree(EXAMPLE, repo / "examples" / "confdir")
    shutil.copy(REPO / "scripts" / "demo", repo / "scripts" / "demo")
    (repo / "scripts" / "bootstrap").write_text("#!/bin/sh\n")  # the venv exists already
    (repo / "scripts" / "bootstrap").chmod(0o755)
    (repo / ".venv").mkdir()
    (repo / ".venv" / "bin").symlink_to(REPO / ".venv" / "bin")
    result = subprocess.run([str(repo / "scripts" / "demo")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ("myapp.conf", "nginx-upstream.conf"):
        assert (repo / "demo-out" / name).read_text() == (EXPECTED / name).read_text()
        assert f"==> demo-out/{name}" in result.stdout
