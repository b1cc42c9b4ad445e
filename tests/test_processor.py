"""Processing resources: prefix re-rooting, one failure never stops the others, outcomes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from confd.backends.pool import DatabasePool
from confd.config.settings import Settings
from confd.run.assembly import Runtime
from confd.run.processor import Status, failure_summary


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_DB_HOST", "db.local")
    monkeypatch.setenv("MYAPP_DB_PORT", "5432")
    monkeypatch.setenv("OTHER_NAME", "other")


def processor_for(confdir: Path, prefix: str = "", **settings) -> tuple[Runtime, int]:
    runtime = Runtime(Settings(backend="env", confdir=str(confdir), prefix=prefix, **settings),
                      DatabasePool())
    return runtime, len(runtime.load_errors)


def test_template_sees_keys_rerooted_under_the_prefix(
    make_confdir, tmp_path: Path, env: None
) -> None:
    confdir = make_confdir(
        templates={"db.tmpl": '{{ getv("/db/host") }}:{{ getv("/db/port") }}\n'},
        resources={"db.toml": f"""
            [template]
            src = "db.tmpl"
            dest = "{tmp_path}/db.conf"
            prefix = "/myapp"
            keys = ["/db"]
            """},
    )
    processor, _ = processor_for(confdir)
    [outcome] = processor.run_once()
    assert outcome.status is Status.CHANGED
    assert (tmp_path / "db.conf").read_text() == "db.local:5432\n"
    assert outcome.reads is not None
    assert processor.run_once()[0].status is Status.UNCHANGED


def test_global_prefix_replaces_the_resource_prefix(
    make_confdir, tmp_path: Path, env: None
) -> None:
    # Go confd's meaning of -prefix: it replaces the resource's own prefix, it is not joined.
    confdir = make_confdir(
        templates={"db.tmpl": '{{ getv("/db/host") }}\n'},
        resources={"db.toml": f"""
            [template]
            src = "db.tmpl"
            dest = "{tmp_path}/db.conf"
            prefix = "other"
            keys = ["/db/host"]
            """},
    )
    processor, _ = processor_for(confdir, prefix="/myapp")
    assert processor.run_once()[0].status is Status.CHANGED
    assert (tmp_path / "db.conf").read_text() == "db.local\n"


def test_failed_resource_is_named_and_others_still_run(
    make_confdir, tmp_path: Path, env: None, confd_log: io.StringIO
) -> None:
    (tmp_path / "bad.conf").write_text("untouched\n")
    confdir = make_confdir(
        templates={"ok.tmpl": '{{ getv("/db/host") }}\n', "bad.tmpl": '{{ getv("/db/nope") }}\n'},
        resources={
            "a-bad.toml": f"""
                [template]
                src = "bad.tmpl"
                dest = "{tmp_path}/bad.conf"
                prefix = "/myapp"
                keys = ["/db"]
                """,
            "b-ok.toml": f"""
                [template]
                src = "ok.tmpl"
                dest = "{tmp_path}/ok.conf"
                prefix = "/myapp"
                keys = ["/db"]
                """,
        },
    )
    processor, load_errors = processor_for(confdir)
    outcomes = processor.run_once()
    assert [o.status for o in outcomes] == [Status.FAILED, Status.CHANGED]
    assert (tmp_path / "bad.conf").read_text() == "untouched\n"
    assert (tmp_path / "ok.conf").read_text() == "db.local\n"
    log = confd_log.getvalue()
    assert f"ERROR {confdir / 'conf.d' / 'a-bad.toml'}: " in log
    assert "/db/nope" in log
    assert failure_summary(outcomes, load_errors) == "1 of 2 resources failed"


def test_noop_reports_noop_and_writes_nothing(make_confdir, tmp_path: Path, env: None) -> None:
    confdir = make_confdir(
        templates={"db.tmpl": '{{ getv("/db/host") }}\n'},
        resources={"db.toml": f"""
            [template]
            src = "db.tmpl"
            dest = "{tmp_path}/db.conf"
            prefix = "/myapp"
            keys = ["/db"]
            """},
    )
    out = io.StringIO()
    runtime = Runtime(Settings(backend="env", confdir=str(confdir), noop=True), DatabasePool(),
                      out=out)
    assert runtime.run_once()[0].status is Status.NOOP
    assert not (tmp_path / "db.conf").exists()
    assert "+db.local" in out.getvalue()


def test_resource_backend_table_selects_its_own_database(
    make_confdir, tmp_path: Path, env: None
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("myapp:\n  db:\n    host: from-file\n")
    confdir = make_confdir(
        templates={"db.tmpl": '{{ getv("/db/host") }}\n'},
        resources={
            "env.toml": f"""
                [template]
                src = "db.tmpl"
                dest = "{tmp_path}/env.conf"
                prefix = "/myapp"
                keys = ["/db"]
                """,
            "file.toml": f"""
                [template]
                src = "db.tmpl"
                dest = "{tmp_path}/file.conf"
                prefix = "/myapp"
                keys = ["/db"]
                [backend]
                name = "file"
                file = "{values}"
                """,
        },
    )
    processor, _ = processor_for(confdir)
    assert [o.status for o in processor.run_once()] == [Status.CHANGED, Status.CHANGED]
    assert (tmp_path / "env.conf").read_text() == "db.local\n"
    assert (tmp_path / "file.conf").read_text() == "from-file\n"


@pytest.mark.parametrize(
    ("failed", "total", "load_errors", "summary"),
    [(0, 3, 0, None), (1, 1, 0, "1 of 1 resource failed"), (2, 5, 0, "2 of 5 resources failed"),
     (1, 3, 2, "3 of 5 resources failed")],
)
def test_failure_summary(failed: int, total: int, load_errors: int, summary: str | None,
                         tmp_path: Path) -> None:
    from confd.config.resource import TemplateResource
    from confd.run.processor import Outcome

    resource = TemplateResource(tmp_path / "r.toml", "t", tmp_path / "t", tmp_path / "d")
    outcomes = [Outcome(resource, Status.FAILED if i < failed else Status.UNCHANGED)
                for i in range(total)]
    assert failure_summary(outcomes, load_errors) == summary


# -- a batch: one read per database, syncs on threads, commands in order -----------------------


class CountingDatabase:
    """Values in a dict; counts reads; refuses (as a backend would) a read asking for /secret."""

    name = "counting"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads: list[list[str]] = []

    def get_values(self, keys):
        from plugin_sdk.database import DatabaseError, select_prefix

        self.reads.append(list(keys))
        if any(select_prefix("/secret", k) or k == "/" for k in keys):
            raise DatabaseError("counting: permission denied for /secret")
        return {k: v for k, v in self.values.items() if any(select_prefix(k, q) for q in keys)}


class OneDatabase:
    def __init__(self, database: CountingDatabase) -> None:
        self.db = database

    def database(self, resource):
        return self.db


def batch_of(tmp_path: Path, count: int, **template) -> list:
    from confd.config.resource import TemplateResource

    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "templates" / "t.tmpl").write_text('{{ getv("/host") }}\n')
    return [TemplateResource(tmp_path / f"r{i}.toml", "t.tmpl", tmp_path / "templates" / "t.tmpl",
                             tmp_path / "out" / f"r{i:02d}", keys=("/",),
                             prefix=f"/app{i % 2}", **template) for i in range(count)]


def processor_over(tmp_path: Path, db: CountingDatabase):
    from confd.run.processor import Processor
    from confd.template.renderer import Renderer

    return Processor(Renderer(tmp_path / "templates"), OneDatabase(db))


def test_a_batch_reads_its_database_once(tmp_path: Path) -> None:
    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b"})
    resources = batch_of(tmp_path, 20)
    outcomes = processor_over(tmp_path, db).run_once(resources)
    assert db.reads == [["/app0", "/app1"]]
    assert [o.resource for o in outcomes] == resources
    assert all(o.status is Status.CHANGED for o in outcomes)
    assert [(tmp_path / "out" / f"r{i:02d}").read_text() for i in range(4)] == \
        ["a\n", "b\n", "a\n", "b\n"]
    assert processor_over(tmp_path, db).run_once(resources)[0].status is Status.UNCHANGED


def test_a_failed_shared_read_lets_each_resource_read_and_report(
    tmp_path: Path, confd_log: io.StringIO
) -> None:
    from confd.config.resource import TemplateResource

    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b", "/secret/host": "s"})
    resources = batch_of(tmp_path, 2)
    secret = TemplateResource(tmp_path / "s.toml", "t.tmpl", tmp_path / "templates" / "t.tmpl",
                              tmp_path / "out" / "s", keys=("/",), prefix="/secret")
    outcomes = processor_over(tmp_path, db).run_once([*resources, secret])
    assert [o.status for o in outcomes] == [Status.CHANGED, Status.CHANGED, Status.FAILED]
    assert "permission denied for /secret" in str(outcomes[2].error)
    assert f"{tmp_path / 's.toml'}: " in confd_log.getvalue()
    assert len(db.reads) == 4  # the shared read, then one each


def test_commands_of_a_batch_run_in_order(tmp_path: Path) -> None:
    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b"})
    order = tmp_path / "order"
    resources = batch_of(tmp_path, 20, reload_cmd=f"basename {{{{.dest}}}} >> {order}")
    outcomes = processor_over(tmp_path, db).run_once(resources)
    assert all(o.status is Status.CHANGED for o in outcomes)
    assert order.read_text().split() == [f"r{i:02d}" for i in range(20)]


def test_a_batch_flushes_each_directory_once(tmp_path: Path, monkeypatch) -> None:
    import confd.sync

    flushed: list[Path] = []
    real = confd.sync._fsync_dir
    monkeypatch.setattr(confd.sync, "_fsync_dir", lambda d: (flushed.append(d), real(d)))
    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b"})
    outcomes = processor_over(tmp_path, db).run_once(batch_of(tmp_path, 20))
    assert all(o.status is Status.CHANGED for o in outcomes)
    assert flushed == [tmp_path / "out"]


def test_a_batch_makes_its_new_files_durable_with_one_flush(tmp_path: Path, monkeypatch) -> None:
    """20 new files: one syncfs (where it reports failed writes, as on ext4 from Linux 5.8),
    not 20 fsyncs; the directory then once."""
    import confd.flush

    syncfs: list[int] = []
    fsynced: list[str] = []
    real_syncfs, real_fsync = confd.flush._libc_syncfs(), os.fsync
    monkeypatch.setattr(confd.flush, "_syncfs_reports_errors", lambda device: True)
    monkeypatch.setattr(confd.flush, "_dirty_bytes", lambda: 0)
    monkeypatch.setattr(confd.flush, "_libc_syncfs",
                        lambda: lambda fd: (syncfs.append(fd), real_syncfs(fd))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd))[1])
    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b"})
    outcomes = processor_over(tmp_path, db).run_once(batch_of(tmp_path, 20))
    assert all(o.status is Status.CHANGED for o in outcomes)
    assert len(syncfs) == 1 and fsynced == [str(tmp_path / "out")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"r{i:02d}" for i in range(20)]
