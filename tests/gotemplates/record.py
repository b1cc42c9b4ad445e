"""Record what Go confd renders for each template of this corpus (run by hand, not by pytest).

For every case directory (template.tmpl, data.json) it runs Go confd (`confd-go -onetime
-backend env`, each key /a/b as the variable A_B, TZ=UTC, nothing else in the environment) and
writes its output to `expected`; then it writes `convert`'s Jinja to `converted.j2`, or the
problems to `refused.txt` when the template cannot be converted exactly.

Run: .venv/bin/python tests/gotemplates/record.py [/path/to/confd-go] [CASE...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from confd.template.golang.convert import convert  # noqa: E402
from confd.template.golang.functions import SIGNATURES  # noqa: E402
from testsupport.peer import go_confd as peer_binary  # noqa: E402

PEER = peer_binary() or Path("/nonexistent/confd-go")


def env_name(key: str) -> str:
    """Go confd's env backend name for a key: /a/b is A_B."""
    return key.strip("/").replace("/", "_").upper()


def go_confd(peer: Path, template: str, data: dict[str, str]) -> tuple[int, str, str]:
    """(exit status, output, log) of Go confd rendering `template` against `data`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf.d").mkdir()
        (root / "templates").mkdir()
        (root / "templates" / "template.tmpl").write_text(template)
        dest = root / "out"
        (root / "conf.d" / "t.toml").write_text(
            f'[template]\nsrc = "template.tmpl"\ndest = "{dest}"\nkeys = ["/"]\n'
        )
        env = {env_name(k): v for k, v in data.items()}
        env.update(TZ="UTC", PATH="/usr/bin:/bin")
        run = subprocess.run(
            [str(peer), "-onetime", "-backend", "env", "-confdir", str(root), "-log-level",
             "error"],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        output = dest.read_text() if dest.exists() else ""
        return run.returncode, output, run.stdout + run.stderr


def main() -> None:
    args = sys.argv[1:]
    peer = PEER
    if args and Path(args[0]).is_file():
        peer = Path(args.pop(0))
    for case in sorted(p for p in HERE.iterdir() if (p / "template.tmpl").exists()):
        if args and case.name not in args:
            continue
        template = (case / "template.tmpl").read_text()
        data = json.loads((case / "data.json").read_text())
        status, output, log = go_confd(peer, template, data)
        if status != 0:
            print(f"{case.name}: Go confd failed ({status}): {log.strip()}")
            continue
        (case / "expected").write_text(output)
        converted = convert(template, "template.tmpl", SIGNATURES)
        for stale in ("converted.j2", "refused.txt"):
            (case / stale).unlink(missing_ok=True)
        if converted.text is not None:
            (case / "converted.j2").write_text(converted.text)
        else:
            (case / "refused.txt").write_text("".join(f"{p}\n" for p in converted.problems))
        print(f"{case.name}: recorded ({'converted' if converted.text is not None else 'refused'})")


if __name__ == "__main__":
    main()
