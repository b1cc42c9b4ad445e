"""Helpers for driving `confd` as a subprocess over the file backend (used by the daemon tests).

`Confdir` writes a values file, resources and templates in a temp directory; `ConfdProcess`
starts confd, collects its log lines, and always kills it at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Confdir:
    """A confdir whose resources render into `out/`, plus a YAML values file for the file
    backend (`args()`); tests of other backends use it for the confdir alone."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.confdir = base / "confd"
        self.out = base / "out"
        self.values = base / "values.yaml"
        (self.confdir / "conf.d").mkdir(parents=True)
        (self.confdir / "templates").mkdir()
        self.out.mkdir()

    def set_values(self, text: str) -> None:
        """Replace the values file atomically (as an editor or config management would)."""
        stage = self.values.with_suffix(".tmp")
        stage.write_text(text)
        os.replace(stage, self.values)

    def resource(self, name: str, template: str, keys: Sequence[str], **extra: str) -> Path:
        """Add `conf.d/NAME.toml` rendering `template` into `out/NAME`; returns the dest."""
        dest = self.out / name
        (self.confdir / "templates" / f"{name}.tmpl").write_text(template)
        lines = [
            "[template]",
            f'src = "{name}.tmpl"',
            f'dest = "{dest}"',
            "keys = [" + ", ".join(f'"{k}"' for k in keys) + "]",
        ]
        lines += [f"{key} = {value}" for key, value in extra.items()]
        (self.confdir / "conf.d" / f"{name}.toml").write_text("\n".join(lines) + "\n")
        return dest

    def args(self) -> list[str]:
        return ["--backend", "file", "--file", str(self.values), "--confdir", str(self.confdir)]


class ConfdProcess:
    """A running `confd` whose stderr is collected line by line."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        inherited = os.environ.items()
        full_env = {k: v for k, v in inherited if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "confd", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 10.0, count: int = 1) -> None:
        """Wait until `text` appeared in `count` log lines; fail with the log otherwise."""
        wait_until(lambda: sum(text in line for line in self.lines) >= count, timeout,
                   lambda: f"{text!r} not logged {count}x; log:\n{self.log}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"confd did not exit in {timeout}s; log:\n{self.log}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self._reader.join(2)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 10.0,
    message: Callable[[], str] = lambda: "condition not reached",
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(0.02)


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
