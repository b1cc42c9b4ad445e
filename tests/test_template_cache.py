"""Compiled templates: compiled once per content, reused from disk by the next run, never stale,
skipped when the cache directory cannot be used, compiled by workers when a pass misses many."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from confd.cache_dir import cache_directory, default_cache_dir
from confd.errors import TemplateError
from confd.template import cache as cache_module
from confd.template.cache import CompiledTemplates
from confd.template.renderer import Renderer
from confd.template.store import KVStore

STORE = KVStore({"/app/host": "db.local", "/app/port": "5432"})


def templates(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def renderer(folder: Path, cache_dir: Path | None) -> Renderer:
    return Renderer(folder, cache=CompiledTemplates(cache_dir))


def test_templates_with_the_same_content_compile_once(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n',
                                  "b.tmpl": '{{ getv("/app/host") }}\n'})
    r = renderer(folder, None)
    assert r.render("a.tmpl", STORE).text == "db.local\n"
    assert r.render("b.tmpl", STORE).text == "db.local\n"
    assert compiles == ["a.tmpl"]


def test_shared_code_reports_errors_in_the_file_rendered(tmp_path: Path, compiles) -> None:
    text = 'line one\n{{ getv("/app/missing") }}\n'
    folder = templates(tmp_path, {"a.tmpl": text, "b.tmpl": text})
    r = renderer(folder, None)
    with pytest.raises(TemplateError, match=r"a\.tmpl:2: "):
        r.render("a.tmpl", STORE)
    with pytest.raises(TemplateError, match=r"b\.tmpl:2: ") as failed:
        r.render("b.tmpl", STORE)
    assert "a.tmpl" not in str(failed.value)
    assert compiles == ["a.tmpl"]


def test_the_next_run_loads_compiled_templates_from_disk(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}:{{ getv("/app/port") }}\n'})
    assert renderer(folder, tmp_path / "cache").render("a.tmpl", STORE).text == "db.local:5432\n"
    assert compiles == ["a.tmpl"]
    assert len(list((tmp_path / "cache" / "templates").glob("*.jbc"))) == 1
    again = renderer(folder, tmp_path / "cache")  # a restart: a new process, the same cache
    assert again.render("a.tmpl", STORE).text == "db.local:5432\n"
    assert compiles == ["a.tmpl"]


def test_an_edited_template_is_compiled_again(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n'})
    assert renderer(folder, tmp_path / "cache").render("a.tmpl", STORE).text == "db.local\n"
    (folder / "a.tmpl").write_text('port {{ getv("/app/port") }}\n')
    assert renderer(folder, tmp_path / "cache").render("a.tmpl", STORE).text == "port 5432\n"
    assert compiles == ["a.tmpl", "a.tmpl"]


def test_another_environment_never_reuses_the_code(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": "{{ 1 }}\n"})
    r = renderer(folder, tmp_path / "cache")
    r.render("a.tmpl", STORE)
    other = renderer(folder, tmp_path / "cache")
    other._env.trim_blocks = True  # any option that changes the generated code
    other.render("a.tmpl", STORE)
    assert compiles == ["a.tmpl", "a.tmpl"]


def test_a_damaged_cache_file_is_compiled_again(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n'})
    renderer(folder, tmp_path / "cache").render("a.tmpl", STORE)
    [cached] = (tmp_path / "cache" / "templates").glob("*.jbc")
    cached.write_bytes(cached.read_bytes()[:-10])  # cut short, as by a crash
    assert renderer(folder, tmp_path / "cache").render("a.tmpl", STORE).text == "db.local\n"
    assert compiles == ["a.tmpl", "a.tmpl"]


def test_a_cache_directory_that_cannot_be_made_is_skipped(tmp_path: Path, compiles) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n'})
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a read-only container's cache path is as unusable as this
    r = renderer(folder, blocker / "cache")
    assert r.render("a.tmpl", STORE).text == "db.local\n"
    assert r.render("a.tmpl", STORE).text == "db.local\n"
    assert compiles == ["a.tmpl"]


def test_a_directory_others_can_write_is_refused(tmp_path: Path, compiles, caplog) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n'})
    shared = tmp_path / "cache" / "templates"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    with caplog.at_level("WARNING", logger="confd"):
        r = renderer(folder, tmp_path / "cache")
        assert r.render("a.tmpl", STORE).text == "db.local\n"
    assert list(shared.iterdir()) == []
    assert any("not using it" in rec.getMessage() for rec in caplog.records)


def test_cache_files_are_private(tmp_path: Path) -> None:
    folder = templates(tmp_path, {"a.tmpl": "x\n"})
    renderer(folder, tmp_path / "cache").render("a.tmpl", STORE)
    root = tmp_path / "cache" / "templates"
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0
    [cached] = root.glob("*.jbc")
    assert stat.S_IMODE(cached.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"CACHE_DIRECTORY": "/var/cache/confd", "HOME": "/root"},
                     "/var/cache/confd", id="systemd CacheDirectory"),
        pytest.param({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, "/x/cache/confd",
                     id="XDG_CACHE_HOME"),
        pytest.param({"HOME": "/home/u"}, "/home/u/.cache/confd", id="home"),
        pytest.param({"HOME": "/"}, None, id="no home"),
    ],
)
def test_default_cache_directory(environ: dict[str, str], expected: str | None) -> None:
    found = default_cache_dir(environ)
    assert (str(found) if found else None) == expected


def test_the_setting_names_the_directory_or_turns_it_off() -> None:
    assert cache_directory("off", {"HOME": "/home/u"}) is None
    assert cache_directory("/srv/cache", {"HOME": "/home/u"}) == Path("/srv/cache")
    assert cache_directory("", {"HOME": "/home/u"}) == Path("/home/u/.cache/confd")


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile workers from 4 missing templates up, 2 templates a job."""
    monkeypatch.setattr(cache_module, "PARALLEL_COMPILE_MIN", 4)
    monkeypatch.setattr(cache_module, "PRELOAD_MIN", 4)
    monkeypatch.setattr(cache_module, "CHUNK", 2)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail("this test needs 2 cores to start compile workers")


def test_many_missing_templates_are_compiled_by_workers(
    tmp_path: Path, compiles, workers
) -> None:
    # {# #}: Jinja at a glance (only such templates go to the workers under auto)
    files = {f"t{i}.tmpl": f'{{# t #}}{i}: {{{{ getv("/app/host") }}}}\n' for i in range(6)}
    files["bad.tmpl"] = "{% if %}\n"
    folder = templates(tmp_path, files)
    r = renderer(folder, tmp_path / "cache")
    r.prepare((name, None) for name in files)  # t0 .. t5, then bad
    for i in range(6):
        assert r.render(f"t{i}.tmpl", STORE).text == f"{i}: db.local\n"
    with pytest.raises(TemplateError, match=r"bad\.tmpl:1: "):
        r.render("bad.tmpl", STORE)
    # the workers compiled the rest; the bad one (which they could not) is compiled here to
    # report its error
    assert compiles == ["bad.tmpl"]
    assert len(list((tmp_path / "cache" / "templates").glob("*.jbc"))) == 6


def test_go_templates_under_auto_are_decided_and_compiled_by_the_workers(
    tmp_path: Path, workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confd.template.golang.template import GoTemplate

    parsed: list[str] = []  # Go templates parsed in this process (workers are others)
    parse = GoTemplate.parse.__func__

    def counted(cls, source, name, *args, **kwargs):
        parsed.append(name)
        return parse(cls, source, name, *args, **kwargs)

    monkeypatch.setattr(GoTemplate, "parse", classmethod(counted))
    files = {f"g{i}.tmpl": f'{i}: {{{{getv "/app/host"}}}}\n' for i in range(8)}
    folder = templates(tmp_path, files)
    for _ in range(2):  # a cold run, then a restart on the cache it wrote
        r = renderer(folder, tmp_path / "cache")
        with r.batch((name, None) for name in sorted(files)):
            for i in range(8):
                assert r.render(f"g{i}.tmpl", STORE).text == f"{i}: db.local\n"
                assert r.syntax_of(f"g{i}.tmpl").name == "go"
    assert parsed == []


def test_closing_drops_jobs_no_worker_started(
    tmp_path: Path, compiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "PARALLEL_COMPILE_MIN", 4)
    monkeypatch.setattr(cache_module, "PRELOAD_MIN", 4)
    monkeypatch.setattr(cache_module, "CHUNK", 1)
    files = {f"t{i}.tmpl": f'{{# t #}}{i}: {{{{ getv("/app/host") }}}}\n' for i in range(40)}
    folder = templates(tmp_path, files)
    r = renderer(folder, None)
    r.prepare((name, None) for name in sorted(files))
    assert r.cache._pending  # jobs were handed to the workers
    r.cache.close()  # the daemon stops in the middle of a cold first pass
    assert r.cache._pending == {}
    assert r.render("t39.tmpl", STORE).text == "39: db.local\n"  # compiled here if need be


def test_a_cache_file_another_user_owns_is_not_loaded(
    tmp_path: Path, compiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = templates(tmp_path, {"a.tmpl": '{{ getv("/app/host") }}\n'})
    renderer(folder, tmp_path / "cache").render("a.tmpl", STORE)
    again = renderer(folder, tmp_path / "cache")
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)  # now the file is not ours
    assert again.render("a.tmpl", STORE).text == "db.local\n"
    assert compiles == ["a.tmpl", "a.tmpl"]


def test_a_batch_reads_each_template_once_and_the_next_batch_sees_an_edit(
    tmp_path: Path,
) -> None:
    folder = templates(tmp_path, {"a.tmpl": 'one {{ getv("/app/host") }}\n'})
    r = renderer(folder, None)
    with r.batch([("a.tmpl", None)]):
        assert r.render("a.tmpl", STORE).text == "one db.local\n"
        (folder / "a.tmpl").write_text("two {% if true %}x{% endif %}\n")
        later = (folder / "a.tmpl").stat().st_mtime + 5
        os.utime(folder / "a.tmpl", (later, later))
        assert r.render("a.tmpl", STORE).text == "one db.local\n"  # the batch's own reading
    assert r.render("a.tmpl", STORE).text == "two x\n"


def test_the_syntax_auto_found_is_kept_for_the_next_run(
    tmp_path: Path, compiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    import confd.template.golang.syntax as syntax

    decided: list[str] = []
    detect = syntax.detect_syntax
    monkeypatch.setattr(syntax, "detect_syntax",
                        lambda source, *rest: (decided.append(source), detect(source, *rest))[1])
    folder = templates(tmp_path, {"jinja.tmpl": '{{ getv("/app/host") }}\n',
                                  "go.tmpl": '{{getv "/app/port"}}\n'})
    for _ in range(2):  # a run, then a restart on the same cache
        r = renderer(folder, tmp_path / "cache")
        assert r.render("jinja.tmpl", STORE).text == "db.local\n"
        assert r.render("go.tmpl", STORE).text == "5432\n"
        assert r.syntax_of("go.tmpl").name == "go"
    assert len(decided) == 2  # each decided once, in the first run
    # ... where each was compiled as Jinja once to decide (the Go one failing); the restart
    # compiled and parsed nothing
    assert compiles == ["jinja.tmpl", "go.tmpl"]


def test_a_go_template_compiled_once_is_loaded_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confd.template.golang import template as go_template

    text = 'host={{getv "/app/host"}}\nmissing={{getv "/app/missing"}}\n'
    folder = templates(tmp_path, {"a.tmpl": text, "ok.tmpl": 'port={{getv "/app/port"}}\n'})
    cache_dir = tmp_path / "cache"
    assert renderer(folder, cache_dir).render("ok.tmpl", STORE).text == "port=5432\n"
    with pytest.raises(TemplateError):
        renderer(folder, cache_dir).render("a.tmpl", STORE)
    assert sorted(p.suffix for p in (cache_dir / "templates").iterdir()).count(".gtc") == 2
    parsed: list[str] = []
    original = go_template.parse
    monkeypatch.setattr(go_template, "parse", lambda *a, **k: parsed.append(a[1]) or original(
        *a, **k))
    again = renderer(folder, cache_dir)
    assert again.render("ok.tmpl", STORE).text == "port=5432\n"
    assert parsed == []  # loaded, not parsed
    with pytest.raises(TemplateError) as info:  # an error rebuilds what its message needs
        again.render("a.tmpl", STORE)
    assert f'{folder / "a.tmpl"}:2:10: executing "a.tmpl" at <getv "/app/missing">' \
        in str(info.value)
    assert parsed == ["a.tmpl"]


@pytest.mark.parametrize("cache_dir", [None, "cache"])
def test_a_go_template_found_under_auto_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: str | None
) -> None:
    from confd.template.golang import parser

    parsed: list[str] = []
    original = parser._Parser.parse

    def counting(self: parser._Parser) -> dict:
        parsed.append(self.name)
        return original(self)

    monkeypatch.setattr(parser._Parser, "parse", counting)
    folder = templates(tmp_path, {"go.tmpl": '{{getv "/app/port"}}\n'})
    r = Renderer(folder, cache=CompiledTemplates(tmp_path / cache_dir) if cache_dir else None)
    assert r.render("go.tmpl", STORE).text == "5432\n"
    assert r.render("go.tmpl", STORE).text == "5432\n"
    assert parsed == ["go.tmpl"]  # deciding the syntax parsed it; loading it parsed nothing


def _many(folder: Path, count: int, start: int = 0) -> dict[str, str]:
    """`count` templates, each its own shape (the number is outside any string literal)."""
    files = {f"p{i}.tmpl": f'{{{{ {i} }}}} {{{{ getv("/app/host") }}}}\n'
             for i in range(start, start + count)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def _pass(r: Renderer, files: dict[str, str]) -> None:
    with r.batch((name, None) for name in sorted(files)):
        for name in sorted(files):
            number = name[1:].split(".")[0]
            assert r.render(name, STORE).text == f"{number} db.local\n"


def test_a_batch_keeps_what_it_compiled_in_one_pack(tmp_path: Path, compiles,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "PARALLEL_COMPILE_MIN", 10_000)  # compiled here
    files = _many(tmp_path / "templates", 20)
    _pass(renderer(tmp_path / "templates", tmp_path / "cache"), files)
    assert len(compiles) == 20
    stored = tmp_path / "cache" / "templates"
    assert [p.suffix for p in stored.iterdir()] == [".jbp"]  # one file, not 20
    compiles.clear()
    restarted = renderer(tmp_path / "templates", tmp_path / "cache")
    _pass(restarted, files)  # a restart
    assert compiles == []
    assert restarted.cache._packed == {}  # each entry handed out once: no bytes held after
    # an edit: that template alone is compiled again, the rest still come from the pack
    (tmp_path / "templates" / "p3.tmpl").write_text('{{ 3 }} {{ getv("/app/host") }} \n')
    again = renderer(tmp_path / "templates", tmp_path / "cache")
    with again.batch((name, None) for name in sorted(files)):
        assert again.render("p3.tmpl", STORE).text == "3 db.local \n"
        assert again.render("p4.tmpl", STORE).text == "4 db.local\n"
    assert compiles == ["p3.tmpl"]
    assert len(list(stored.glob("*.jbc"))) == 1  # a batch's few compiles: a file each


def test_a_damaged_pack_is_compiled_again(tmp_path: Path, compiles,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "PARALLEL_COMPILE_MIN", 10_000)
    files = _many(tmp_path / "templates", 20)
    _pass(renderer(tmp_path / "templates", tmp_path / "cache"), files)
    [pack] = (tmp_path / "cache" / "templates").glob("*.jbp")
    pack.write_bytes(pack.read_bytes()[:-100])  # cut short, as by a full disk
    compiles.clear()
    _pass(renderer(tmp_path / "templates", tmp_path / "cache"), files)
    assert len(compiles) == 20


def test_packs_past_the_limit_are_removed_least_recently_used_first(
    tmp_path: Path, compiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "PARALLEL_COMPILE_MIN", 10_000)
    monkeypatch.setattr(cache_module, "MAX_PACKS", 2)
    stored = tmp_path / "cache" / "templates"
    first = _many(tmp_path / "one" / "templates", 20)
    _pass(renderer(tmp_path / "one" / "templates", tmp_path / "cache"), first)
    [kept] = stored.glob("*.jbp")
    os.utime(kept, (1, 1))  # old: it would go first, unless a run uses it
    for n in (1, 2):
        files = _many(tmp_path / f"other{n}" / "templates", 20, start=100 * n)
        _pass(renderer(tmp_path / f"other{n}" / "templates", tmp_path / "cache"), files)
        if n == 1:  # the first confdir runs again between the two: its pack is used now
            _pass(renderer(tmp_path / "one" / "templates", tmp_path / "cache"), first)
    packs = sorted(stored.glob("*.jbp"))
    assert len(packs) == 2 and kept in packs
    compiles.clear()
    _pass(renderer(tmp_path / "one" / "templates", tmp_path / "cache"), first)
    assert compiles == []
