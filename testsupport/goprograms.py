"""Building the Go interop programs (integration/go): a go-plugin database plugin and a go-plugin
host, offline in GOPATH mode from Debian's Go sources. Shared by the Go interop tests and the
plugin benchmark; the build cache persists under ~/.cache so rebuilds are quick."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
GO_TREE = REPO / "integration" / "go"
GOCODE = Path("/usr/share/gocode/src")
# what the build needs -> the Debian package that provides it
GO_SOURCES = {
    "github.com/hashicorp/go-plugin": "golang-github-hashicorp-go-plugin-dev",
    "google.golang.org/grpc": "golang-google-grpc-dev",
    "google.golang.org/protobuf": "golang-google-protobuf-dev",
    "github.com/golang/protobuf": "golang-github-golang-protobuf-1-5-dev",
}
GO_PACKAGES = ("confdinterop/confd-database-gomem", "confdinterop/gohost")


class GoBuildError(Exception):
    """The Go programs cannot be built here; the message says what to install."""


class GoPrograms(NamedTuple):
    """The built Go programs: a plugin directory holding confd-database-gomem, and gohost."""

    plugin_dir: Path
    gohost: Path

    @property
    def gomem(self) -> Path:
        return self.plugin_dir / "confd-database-gomem"


def go_binary() -> str:
    """The `go` command; GoBuildError naming the apt package when there is none."""
    found = shutil.which("go") or next(
        (p for p in ("/usr/lib/go/bin/go", "/usr/lib/go-1.19/bin/go") if os.path.exists(p)), None
    )
    if not found:
        raise GoBuildError("no Go toolchain: run `apt-get install golang-go` (or scripts/test)")
    return found


def go_env() -> dict[str, str]:
    """The environment of an offline GOPATH build against /usr/share/gocode."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "confd-go-interop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GO111MODULE="off",
        GOPATH=f"{GO_TREE}:{GOCODE.parent}",
        GOCACHE=str(cache),
        GOPROXY="off",
        GOTOOLCHAIN="local",
        GOFLAGS="",
    )
    return env


def build_go_programs(out: Path) -> GoPrograms:
    """Build the Go plugin and host into `out`; GoBuildError saying what is missing."""
    go = go_binary()
    missing = [pkg for path, pkg in GO_SOURCES.items() if not (GOCODE / path).is_dir()]
    if missing:
        raise GoBuildError(
            f"Go sources missing under {GOCODE}: run `apt-get install {' '.join(missing)}`"
        )
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go, "build", "-o", f"{out}/", *GO_PACKAGES],
        cwd=GO_TREE, env=go_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        raise GoBuildError(f"go build {' '.join(GO_PACKAGES)} failed:\n{done.stderr[-3000:]}")
    plugin_dir = out / "plugins"
    plugin_dir.mkdir(exist_ok=True)
    (out / "confd-database-gomem").replace(plugin_dir / "confd-database-gomem")
    return GoPrograms(plugin_dir, out / "gohost")
