"""`confd --onetime --backend env` must start light: no gRPC, YAML or store client imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("grpc", "yaml", "pyetcd", "consul", "redis", "kazoo", "hvac", "boto3", "botocore",
         "moto", "re2", "psutil")
# Light, but each a cost on every start that the env path does not need (see
# docs/performance.md): they load only for the resource or template that uses them.
ON_USE = ("base64", "dataclasses", "grp", "pwd", "decimal", "difflib", "confd.config.durations",
          # a batch's group flush (syncfs through ctypes) and compile workers pay only for
          # batches of 16 and 100 resources up
          "concurrent.futures", "multiprocessing", "confd.flush", "ctypes",
          # confd writes its own log lines until something else loads the logging package
          "logging",
          # click's gettext lookups import it, at import (version_option) and at every parse
          # (its help option); confd gives both texts itself
          "locale")


def imported_modules(stderr: str) -> set[str]:
    """Module names from `python -X importtime` lines: `import time: self | cumul | name`."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") >= 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_onetime_env_does_not_import_heavy_modules(make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"a.tmpl": '{{ getv("/app/x") }}\n'},
        resources={"a.toml": f'[template]\nsrc = "a.tmpl"\ndest = "{tmp_path}/a"\n'
                             'keys = ["/app"]\n'},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
    env["APP_X"] = "1"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "confd", "--onetime", "--backend", "env",
         "--confdir", str(confdir)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "a").read_text() == "1\n"
    modules = imported_modules(result.stderr)
    assert "confd.cli.main" in modules  # the parse really saw the imports
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == [], f"start-up imported {heavy}"
    unused = sorted(m for m in modules if m in ON_USE)
    assert unused == [], f"start-up imported {unused}, which this confdir does not use"
