"""Failures as a user of `confd --onetime` meets them, end to end through the real command.

A failing check (or one that hangs) leaves the destination and no stage file, and names the
resource; a failing reload keeps the new file and the next change reloads again; a read-only
or full destination filesystem keeps the previous file; misbehaving plugins are named while the
healthy resources still render; hostile values files (YAML alias bombs, python tags)
are refused clearly (through real etcd and Redis: integration/test_hostile_values.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testsupport.plugins import install

Run = Callable[..., subprocess.CompletedProcess[str]]


class Site:
    """A confdir over the file backend with one healthy resource, and an output directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.confdir = base / "confdir"
        self.out = base / "out"
        self.values = base / "values.yaml"
        (self.confdir / "conf.d").mkdir(parents=True)
        (self.confdir / "templates").mkdir()
        self.out.mkdir()
        self.set_values(value="one")
        self.add("healthy", '{{ getv("/app/healthy") }}\n')

    def set_values(self, **values: str) -> None:
        values = {"healthy": "fine", **values}
        lines = ["app:"] + [f'  {k}: "{v}"' for k, v in values.items()]
        staged = self.values.with_suffix(".tmp")
        staged.write_text("\n".join(lines) + "\n")
        staged.replace(self.values)  # atomically, so a watching confd never reads half a file

    def add(self, name: str, template: str, dest: Path | None = None, **fields: str) -> Path:
        dest = dest or self.out / f"{name}.conf"
        (self.confdir / "templates" / f"{name}.tmpl").write_text(template)
        lines = ["[template]", f'src = "{name}.tmpl"', f'dest = "{dest}"', 'keys = ["/app"]']
        lines += [f"{key} = {value}" for key, value in fields.items()]
        (self.confdir / "conf.d" / f"{name}.toml").write_text("\n".join(lines) + "\n")
        return dest

    def resource_path(self, name: str) -> str:
        return str(self.confdir / "conf.d" / f"{name}.toml")

    def run(self, run_confd: Run, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess:
        args = ["--onetime", "--log-level", "debug", "--backend", "file", "--file",
                str(self.values), "--confdir", str(self.confdir), *extra]
        return run_confd(*args, cwd=self.base, timeout=timeout)

    def healthy(self) -> str:
        return (self.out / "healthy.conf").read_text()


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped yet counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def stage_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def no_traceback(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return output


# -- check and reload commands -------------------------------------------------------------


def test_failing_check_keeps_destination_and_names_the_resource(site: Site, run_confd) -> None:
    dest = site.add("app", 'v={{ getv("/app/value") }}\n',
                    check_cmd='"grep -q v=one {{.src}}"')
    assert site.run(run_confd).returncode == 0
    site.set_values(value="two")
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert dest.read_text() == "v=one\n"
    assert f"{site.resource_path('app')}: check_cmd for {dest} failed (exit status 1)" in output
    assert stage_files(site.out) == []
    assert site.healthy() == "fine\n"


def test_hanging_check_is_killed_at_its_timeout(site: Site, run_confd) -> None:
    pidfile = site.base / "check.pid"
    dest = site.add("app", 'v={{ getv("/app/value") }}\n',
                    check_cmd=f'"sleep 300 & echo $! > {pidfile}; wait"',
                    check_cmd_timeout='"0.5s"')
    started = time.monotonic()
    result = site.run(run_confd)
    elapsed = time.monotonic() - started
    output = no_traceback(result)
    assert result.returncode == 1
    assert elapsed < 15, f"confd took {elapsed:.1f}s with a 0.5s check timeout"
    assert f"{site.resource_path('app')}: check_cmd for {dest} timed out after 0.5s" in output
    assert not dest.exists()
    assert stage_files(site.out) == []
    pid = int(pidfile.read_text())
    assert not running(pid), "the check's child outlived it (its process group was not killed)"
    assert site.healthy() == "fine\n"


def test_failing_reload_keeps_new_file_and_next_change_reloads_again(
    site: Site, run_confd
) -> None:
    reloads = site.base / "reloads"
    dest = site.add("app", 'v={{ getv("/app/value") }}\n',
                    reload_cmd=f'"echo reload >> {reloads}; exit 7"')
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert f"{site.resource_path('app')}: reload_cmd for {dest} failed (exit status 7)" in output
    assert dest.read_text() == "v=one\n"
    assert reloads.read_text().count("reload") == 1
    assert site.run(run_confd).returncode == 0  # nothing changed: no reload, no failure
    assert reloads.read_text().count("reload") == 1
    site.set_values(value="two")
    assert site.run(run_confd).returncode == 1
    assert dest.read_text() == "v=two\n"
    assert reloads.read_text().count("reload") == 2
    assert site.healthy() == "fine\n"


# -- the destination's filesystem ------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount tmpfs filesystems (`mount("size=64k")`); always unmounted at teardown."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        directory = tmp_path / f"fs{len(mounted)}"
        directory.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"this test needs to mount a tmpfs (run as root with CAP_SYS_ADMIN): "
                        f"mount said: {done.stderr.strip()}")
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def test_read_only_destination_keeps_previous_file(site: Site, run_confd, small_fs) -> None:
    directory = small_fs("size=1m,mode=0755")
    dest = site.add("app", 'v={{ getv("/app/value") }}\n', dest=directory / "app.conf")
    assert site.run(run_confd).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
    site.set_values(value="two")
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert f"{site.resource_path('app')}: cannot create a stage file for {dest}" in output
    assert "Read-only file system" in output
    assert dest.read_text() == "v=one\n"
    assert site.healthy() == "fine\n"


def test_full_disk_keeps_previous_file_and_frees_the_stage(
    site: Site, run_confd, small_fs
) -> None:
    directory = small_fs("size=64k,mode=0755")
    dest = site.add("app", '{{ getv("/app/value") }}\n', dest=directory / "app.conf")
    assert site.run(run_confd).returncode == 0
    assert dest.read_text() == "one\n"
    site.set_values(value="x" * 200_000)
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert f"{site.resource_path('app')}: cannot write stage file" in output
    assert "No space left on device" in output
    assert dest.read_text() == "one\n"
    assert stage_files(directory) == []
    site.set_values(value="small again")
    assert site.run(run_confd).returncode == 0  # the space was given back
    assert dest.read_text() == "small again\n"


def test_full_disk_in_a_batch_fails_only_the_file_that_does_not_fit(
    site: Site, run_confd, small_fs
) -> None:
    """20 resources sync together (staged, flushed at once, then renamed): the one whose file
    cannot fit fails alone, keeps its previous content and leaves no stage; the rest land.
    (tmpfs gives each file a 4 KiB page at least: 20 files and their 20 stages fit in 256k.)"""
    directory = small_fs("size=256k,mode=0755")
    dests = [site.add(f"r{i:02d}", f'{{{{ getv("/app/v{i}") }}}}\n', dest=directory / f"r{i:02d}")
             for i in range(20)]
    site.set_values(**{f"v{i}": "one" for i in range(20)})
    assert site.run(run_confd).returncode == 0
    site.set_values(**{f"v{i}": "x" * 200_000 if i == 7 else "two" for i in range(20)})
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert f"{site.resource_path('r07')}: cannot write stage file" in output
    assert "No space left on device" in output
    assert [d.read_text() for d in dests] == ["one\n" if i == 7 else "two\n" for i in range(20)]
    assert stage_files(directory) == []
    assert "1 of 21 resources failed" in output


# -- misbehaving plugins next to healthy resources --------------------------------------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "printed 'hello, I am definitely a plugin' instead of a handshake line"),
        ("exit", "exited with status 3 before its handshake"),
        ("errors", "store is on fire"),
        ("errors-internal", "GetValues failed"),
        ("silent", "printed no handshake line within"),
    ],
)
def test_misbehaving_plugin_is_named_and_healthy_resources_render(
    site: Site, run_confd, mode: str, message: str
) -> None:
    plugins = site.base / "plugins"
    install(plugins, "misbehave.py", "misbehave")
    dest = site.add("app", "{{ getv('/k') }}\n")
    with (site.confdir / "conf.d" / "app.toml").open("a") as handle:
        handle.write('[backend]\nname = "misbehave"\n')
    started = time.monotonic()
    result = run_confd(
        "--onetime", "--backend", "file", "--file", str(site.values), "--confdir",
        str(site.confdir), "--plugin-dir", str(plugins), "--plugin-start-timeout", "3",
        env={"MISBEHAVE": mode}, timeout=60,
    )
    output = no_traceback(result)
    assert result.returncode == 1, output
    assert time.monotonic() - started < 20  # the silent one gives up after 3 s, not 10
    assert f"{site.resource_path('app')}: plugin 'misbehave'" in output
    assert message in output
    assert not dest.exists()
    assert site.healthy() == "fine\n"


# -- the watching daemon keeps serving ---------------------------------------------------------


def test_watch_keeps_serving_healthy_resources_beside_broken_ones(site: Site) -> None:
    """Under --watch, a resource with a missing key, one with a template syntax error (Jinja
    and Go), one with an unknown Go function, and one whose check fails never stop the healthy
    one from following changes; the missing-key one renders as soon as its key appears."""
    from testsupport.daemon_process import ConfdProcess, wait_until

    missing = site.add("missing", 'host={{ getv("/app/host") }}\n')
    site.add("syntax", "{% if %}\n")
    site.add("gosyntax", 'a\nb {{ getv "/app/host" }\n')
    site.add("gofunc", 'x\n{{getvv "/app/host"}}\n', template_syntax='"go"')
    checked = site.add("checked", 'v={{ getv("/app/value") }}\n', check_cmd='"false"')
    proc = ConfdProcess(["--watch", "--log-level", "debug", "--backend", "file", "--file",
                         str(site.values), "--confdir", str(site.confdir)])
    try:
        wait_until(lambda: (site.out / "healthy.conf").exists(), 20, lambda: proc.log)
        for round_ in range(3):
            site.set_values(value=str(round_), healthy=f"fine-{round_}")
            wait_until(lambda r=round_: site.healthy() == f"fine-{r}\n", 20,  # type: ignore[misc]
                       lambda: proc.log)
        site.set_values(value="3", healthy="fine-3", host="db.example")
        wait_until(lambda: missing.exists() and missing.read_text() == "host=db.example\n", 20,
                   lambda: proc.log)
        assert proc.proc.poll() is None, proc.log
        assert not checked.exists()
        assert f"{site.resource_path('syntax')}" in proc.log
        assert f"{site.confdir / 'templates' / 'syntax.tmpl'}:1: " in proc.log
        templates = site.confdir / "templates"
        assert f"{templates / 'gosyntax.tmpl'}:2:" in proc.log  # neither syntax reads it
        assert f'{templates / "gofunc.tmpl"}:2:2: function "getvv" not defined' in proc.log
        assert "Traceback" not in proc.log
    finally:
        proc.kill()


# -- hostile values files -------------------------------------------------------------------------

_LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
) + "\n"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("app: &x [*x]\n", "/app/0 contains itself (a YAML alias cycle)"),
        (_LAUGHS, "more than 1000000 keys"),
        ("app: !!python/object:os.system [touch pwned]\n", "invalid YAML"),
        ("app: [unclosed\n", "invalid YAML"),
    ],
    ids=["alias-cycle", "alias-bomb", "python-tag", "syntax"],
)
def test_hostile_values_file_is_a_clear_error(
    site: Site, run_confd, document: str, message: str
) -> None:
    site.values.write_text(document)
    started = time.monotonic()
    result = site.run(run_confd)
    output = no_traceback(result)
    assert result.returncode == 1
    assert f"file backend: {site.values}" in output and message in output, output
    assert time.monotonic() - started < 20
    assert not (site.base / "pwned").exists()
