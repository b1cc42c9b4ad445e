"""Fixtures for every test folder: temporary confdirs, the confd command as a subprocess, logs."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from confd.log import setup_logging

REPO = Path(__file__).resolve().parent.parent
CONFD = Path(sys.executable).with_name("confd")


@pytest.fixture(autouse=True, scope="session")
def template_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled templates go to a directory of this test session, never the user's
    ~/.cache (confd and the confd processes tests start find it through XDG_CACHE_HOME)."""
    home = tmp_path_factory.mktemp("cache-home")
    saved = {name: os.environ.get(name) for name in ("XDG_CACHE_HOME", "CACHE_DIRECTORY")}
    os.environ["XDG_CACHE_HOME"] = str(home)
    os.environ.pop("CACHE_DIRECTORY", None)
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The template files Jinja compiled in this process, in order (a template whose shape
    compiled before compiles nothing: `confd.template.shapes`; workers are other processes)."""
    from jinja2 import Environment

    seen: list[str] = []
    original = Environment.compile

    def counting(self: Environment, source: Any, name: str | None = None,
                 filename: str | None = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(os.path.basename(filename) if filename else name)
        return original(self, source, name, filename, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    yield seen


@pytest.fixture
def make_confdir(tmp_path: Path) -> Callable[..., Path]:
    """Build `<tmp>/confdir` with templates {name: text} and resources {name.toml: text}."""

    def build(
        templates: Mapping[str, str] | None = None,
        resources: Mapping[str, str] | None = None,
        confd_toml: str | None = None,
    ) -> Path:
        confdir = tmp_path / "confdir"
        (confdir / "templates").mkdir(parents=True, exist_ok=True)
        (confdir / "conf.d").mkdir(exist_ok=True)
        for name, text in (templates or {}).items():
            (confdir / "templates" / name).write_text(text)
        for name, text in (resources or {}).items():
            (confdir / "conf.d" / name).write_text(textwrap.dedent(text))
        if confd_toml is not None:
            (confdir / "confd.toml").write_text(textwrap.dedent(confd_toml))
        return confdir

    return build


@pytest.fixture
def run_confd() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `confd` command with `args` and a clean CONFD_* environment."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60,
        executable: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CONFD_", "MYAPP_"))}
        base.update(env or {})
        if not CONFD.exists():
            pytest.fail(f"{CONFD} is missing: run scripts/bootstrap")
        return subprocess.run(
            [str(executable or CONFD), *args],
            env=base,
            cwd=cwd or REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def confd_log() -> Iterator[io.StringIO]:
    """confd's log output (text form, debug level) captured in a buffer."""
    buffer = io.StringIO()
    setup_logging("debug", "text", stream=buffer)
    yield buffer
    logger = logging.getLogger("confd")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
