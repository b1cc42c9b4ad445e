"""The confd side of the integration suite: the shared cases and how confd is run and waited on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from integration.servers import terminate
from integration.stores import Store

__all__ = [
    "CASES",
    "CONFDIR",
    "EXPECT",
    "EXPECTED",
    "KEYS",
    "Confd",
    "Daemon",
    "confdir_with",
    "read",
    "wait_for",
]

CASES = Path(__file__).parent / "cases"
CONFDIR = CASES / "confdir"
EXPECT = CASES / "expect"
KEYS: dict[str, str] = json.loads((CASES / "keys.json").read_text())
CONFD = Path(sys.executable).with_name("confd")

# destination file -> expected file (confd's own integration cases, translated to Jinja)
EXPECTED = {
    "basic.conf": "basic.conf",
    "exists-test.conf": "exists-test.conf",
    "iteration.conf": "iteration.conf",
    "nested.conf": "nested.conf",
    "manykeys.conf": "basic.conf",  # 132 keys: more than one etcd transaction holds
    "prefix-basic.conf": "basic.conf",  # prefix = "/prefix" in the resource
    "prefix-iteration.conf": "iteration.conf",
    "boundary.conf": "boundary.conf",  # /app must not read /application
}


class Confd:
    """Runs confd as a user would: the installed console script, in an output directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.out = workdir / "out"
        self.out.mkdir()
        self.processes: list[subprocess.Popen[str]] = []

    def _env(self, store: Store) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
        return {**base, "HOSTNAME": "localhost", **store.env()}

    def command(self, store: Store, extra: Sequence[str]) -> list[str]:
        if not CONFD.exists():
            raise AssertionError(f"{CONFD} is missing: run scripts/bootstrap")
        flags = ["--confdir", str(CONFDIR), "--log-level", "debug"]
        return [str(CONFD), *flags, *store.args(), *extra]

    def onetime(
        self, store: Store, extra: Sequence[str] = (), timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(store, ["--onetime", *extra]),
            cwd=self.out,
            env=self._env(store),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def watch(self, store: Store, extra: Sequence[str] = ()) -> subprocess.Popen[str]:
        """Start `confd --watch`; it is stopped when the test ends."""
        log = open(self.workdir / f"confd-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            self.command(store, ["--watch", *extra]),
            cwd=self.out,
            env=self._env(store),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        self.processes.append(process)
        return process

    def wait_watching(self, timeout: float = 20) -> None:
        """Wait until the daemon reports its first pass done and its watches running
        (the "N/N resources rendered; watching" line)."""
        wait_for(lambda: "; watching" in self.log(), "confd to start watching", self.log, timeout)

    def log(self, index: int = -1) -> str:
        logs = sorted(self.workdir.glob("confd-*.log"))
        return logs[index].read_text(errors="replace") if logs else ""

    def stop(self) -> None:
        for process in self.processes:
            terminate(process)


def wait_for(
    condition: Callable[[], bool],
    what: str,
    details: Callable[[], str] = str,
    timeout: float = 20,
    step: float = 0.05,
) -> None:
    """Poll `condition` every `step` s until true; after `timeout` seconds fail naming `what`,
    plus `details()` (e.g. confd's log) read at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details()}")


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


class Daemon:
    """One `confd --watch` over a confdir of our own; its log goes to a file."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = workdir / "confd.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
        base["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack into the log
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(CONFD), "--log-level", "debug", *args],
                cwd=workdir, env={**base, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM; a daemon still running after 15 s gets SIGABRT, so the log shows where
        each of its threads hung."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGABRT)
                terminate(self.process, 5)
        return self.process.returncode


def confdir_with(base: Path, resources: dict[str, tuple[str, str]]) -> Path:
    """A confdir whose resources are {name: (template, extra toml)}; dests are base/out/NAME."""
    confdir = base / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (base / "out").mkdir(exist_ok=True)
    for name, (template, extra) in resources.items():
        (confdir / "templates" / f"{name}.tmpl").write_text(template)
        (confdir / "conf.d" / f"{name}.toml").write_text(
            f'[template]\nsrc = "{name}.tmpl"\ndest = "{base / "out" / name}"\n'
            f'keys = ["/fault"]\n{extra}'
        )
    return confdir
