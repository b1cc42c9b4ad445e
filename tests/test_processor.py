"""Processing resources: prefix re-rooting, one failure never stops the others, outcomes."""

from __future__ import annotations

import io
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
