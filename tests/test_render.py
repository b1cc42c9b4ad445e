"""Rendering templates: output, errors naming file and line, sandboxing, and recorded reads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from confd.errors import TemplateError
from confd.template.renderer import Renderer
from confd.template.store import KVStore

VALUES = {
    "/app/port": "8080",
    "/app/upstream/a": "10.0.0.1",
    "/app/upstream/b": "10.0.0.2",
    "/hosts/web1/ip": "192.0.2.1",
    "/hosts/web2/ip": "192.0.2.2",
    "/hosts/README": "not a host",
    "/flags/tls": "true",
}


@pytest.fixture
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `templates` directory, with the working directory set to its parent."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "templates"
    path.mkdir()
    return path


@pytest.fixture
def store() -> KVStore:
    return KVStore(VALUES)


def write(templates: Path, name: str, text: str) -> str:
    path = templates / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return name


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('port={{ getv("/app/port") }}\n', "port=8080\n"),
        ('port={{ getv("/app/port") }}', "port=8080"),
        ("a\n\n", "a\n\n"),  # trailing newlines are kept
        (
            '{% for kv in gets("/app/upstream/*") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}',
            "/app/upstream/a=10.0.0.1\n/app/upstream/b=10.0.0.2\n",
        ),
        (  # templates migrated from Go keep .Key and .Value
            '{% for kv in gets("/app/upstream/*") %}{{ kv.Key }} {{ kv.Value }};{% endfor %}',
            "/app/upstream/a 10.0.0.1;/app/upstream/b 10.0.0.2;",
        ),
        (
            '{% for h in lsdir("/hosts") %}server {{ h }} {{ getv("/hosts/" ~ h ~ "/ip") }}\n'
            "{% endfor %}",
            "server web1 192.0.2.1\nserver web2 192.0.2.2\n",
        ),
        ('{{ ls("/hosts") | join(",") }}', "README,web1,web2"),
        ('{{ getv("/db/host", "localhost") }}', "localhost"),
        ('{% if exists("/flags/tls") and parseBool(getv("/flags/tls")) %}tls{% endif %}', "tls"),
        ('{{ add(atoi(getv("/app/port")), 1) }}', "8081"),
        ('{{ getvs("/app/upstream/*") | reverse | join(" ") }}', "10.0.0.2 10.0.0.1"),
        ('{% set j = json("{\\"a\\": [1, 2]}") %}{{ j.a[1] }}', "2"),
        ("{{ '<b>&' }}", "<b>&"),  # no autoescape: config files are not HTML
        ("{{ seq(1, 3) | join('-') }}", "1-2-3"),
        # confd's functions skip the sandbox's call checks: in a block and a macro too
        ('{% block b %}{{ getv("/app/port") }}{% endblock %}', "8080"),
        ('{% macro m(k) %}{{ getv(k) }}{% endmacro %}{{ m("/app/port") }}', "8080"),
    ],
)
def test_render_output(templates: Path, store: KVStore, text: str, want: str) -> None:
    src = write(templates, "t.tmpl", text)
    assert Renderer(templates).render(src, store).text == want


def test_store_values_are_data_not_template_code(templates: Path) -> None:
    src = write(templates, "t.tmpl", '{{ getv("/evil") }}\n')
    store = KVStore({"/evil": "{{ getenv('HOME') }}{% raw %}"})
    assert Renderer(templates).render(src, store).text == "{{ getenv('HOME') }}{% raw %}\n"


def test_missing_key_names_key_template_and_line(templates: Path, store: KVStore) -> None:
    text = "".join(f"line {n}\n" for n in range(1, 7)) + 'host={{ getv("/db/host") }}\n'
    src = write(templates, "app.conf.tmpl", text)
    with pytest.raises(TemplateError) as info:
        Renderer(Path("templates")).render(src, store)
    message = str(info.value)
    assert message.startswith('templates/app.conf.tmpl:7: key "/db/host" not found')
    assert "getv" in message


def test_missing_key_via_get_names_line(templates: Path, store: KVStore) -> None:
    src = write(templates, "t.tmpl", '\n\n{{ get("/nope").value }}\n')
    with pytest.raises(TemplateError, match=r't\.tmpl:3: key "/nope" not found \(in get\)'):
        Renderer(templates).render(src, store)


def test_undefined_variable_names_template_and_line(templates: Path, store: KVStore) -> None:
    src = write(templates, "t.tmpl", "a\nb\n{{ foo }}\n")
    with pytest.raises(TemplateError) as info:
        Renderer(Path("templates")).render(src, store)
    assert str(info.value) == "templates/t.tmpl:3: 'foo' is undefined"


def test_function_error_names_function_template_and_line(
    templates: Path, store: KVStore
) -> None:
    src = write(templates, "t.tmpl", 'x\n{{ atoi(getv("/hosts/README")) }}\n')
    with pytest.raises(TemplateError) as info:
        Renderer(Path("templates")).render(src, store)
    message = str(info.value)
    assert message.startswith("templates/t.tmpl:2: ")
    assert "(in atoi)" in message
    assert "not a host" not in message  # the value itself is never shown


def test_error_inside_include_names_the_included_file(templates: Path, store: KVStore) -> None:
    write(templates, "parts/upstream.tmpl", 'ok\n{{ getv("/missing") }}\n')
    src = write(templates, "main.tmpl", 'head\n{% include "parts/upstream.tmpl" %}\n')
    with pytest.raises(TemplateError, match=r'^templates/parts/upstream\.tmpl:2: key "/missing"'):
        Renderer(Path("templates")).render(src, store)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("ok\n{% if %}\n", 2, "Expected an expression"),
        ("a\n{% for x in y %}\nno end\n", 2, "Unexpected end of template"),  # unclosed block
        ("a\nb\nc\n{{ getv( }}\n", 4, "unexpected"),
        ("{% endif %}", 1, "Encountered unknown tag 'endif'"),
    ],
)
def test_syntax_error_names_template_and_line(
    templates: Path, text: str, line: int, message: str
) -> None:
    src = write(templates, "bad.tmpl", text)
    renderer = Renderer(Path("templates"))
    for action in (lambda: renderer.check(src), lambda: renderer.render(src, KVStore())):
        with pytest.raises(TemplateError) as info:
            action()
        assert str(info.value).startswith(f"templates/bad.tmpl:{line}: ")
        assert message in str(info.value)


def test_check_accepts_a_good_template(templates: Path) -> None:
    src = write(templates, "good.tmpl", '{{ getv("/a") }}\n')
    Renderer(templates).check(src)


@pytest.mark.parametrize("src", ["../outside.tmpl", "sub/../../outside.tmpl", "/etc/passwd", "."])
def test_template_outside_templates_dir_is_refused(templates: Path, src: str) -> None:
    (templates.parent / "outside.tmpl").write_text("secret\n")
    renderer = Renderer(templates)
    with pytest.raises(TemplateError, match="escapes the templates directory"):
        renderer.check(src)
    with pytest.raises(TemplateError, match="escapes the templates directory"):
        renderer.render(src, KVStore())


def test_missing_template_is_named(templates: Path) -> None:
    with pytest.raises(TemplateError, match=r"^templates/nope\.tmpl: template not found$"):
        Renderer(Path("templates")).check("nope.tmpl")


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "().__class__.__base__.__subclasses__()",
        "cycler.__init__.__globals__",
        "lipsum.__globals__",
        "getv.__globals__",
        "getv.__wrapped__",
        "get('/app/port').__class__",
        "namespace.__init__.__globals__",
        "'{0.__class__}'.format(1)",
        "joiner.__init__.__globals__['os']",
    ],
)
def test_sandbox_escape_is_refused(templates: Path, store: KVStore, expression: str) -> None:
    src = write(templates, "esc.tmpl", "ok\n{{ " + expression + " }}\n")
    with pytest.raises(TemplateError) as info:
        Renderer(Path("templates"), syntax="jinja").render(src, store)
    message = str(info.value)
    assert message.startswith("templates/esc.tmpl:2: ")
    assert any(
        reason in message for reason in ("refused by the template sandbox", "has no attribute")
    )


def test_edited_template_is_picked_up(templates: Path, store: KVStore) -> None:
    src = write(templates, "t.tmpl", "one\n")
    renderer = Renderer(templates)
    assert renderer.render(src, store).text == "one\n"
    path = templates / src
    path.write_text("two\n")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert renderer.render(src, store).text == "two\n"


def test_render_records_reads(templates: Path, store: KVStore) -> None:
    src = write(
        templates,
        "t.tmpl",
        '{{ getv("/app/port") }}{{ getv("/db/host", "x") }}{{ exists("/flags/tls") }}'
        '{{ gets("/app/upstream/*") | length }}{{ getvs("/svc/*/addr") | length }}'
        '{{ ls("/hosts") | length }}{{ lsdir("/hosts/") | length }}',
    )
    reads = Renderer(templates).render(src, store).reads
    assert reads.keys == {"/app/port", "/db/host", "/flags/tls"}
    assert reads.patterns == {"/app/upstream/*", "/svc/*/addr"}
    assert reads.dirs == {"/hosts"}


@pytest.mark.parametrize(
    ("changed", "want"),
    [
        ("/app/port", True),
        ("/db/host", True),  # read with a default: its appearance changes the output
        ("/flags/tls", True),
        ("/app/upstream/c", True),  # a new key matching gets()
        ("/svc/api/addr", True),
        ("/hosts/web3/ip", True),  # a new host dir changes lsdir()
        ("/app/name", False),
        ("/app/upstream/a/sub", False),
        ("/svc/api/port", False),
        ("/other", False),
    ],
)
def test_rendered_reads_depend_on(
    templates: Path, store: KVStore, changed: str, want: bool
) -> None:
    src = write(
        templates,
        "t.tmpl",
        '{{ getv("/app/port") }}{{ getv("/db/host", "x") }}{{ exists("/flags/tls") }}'
        '{{ gets("/app/upstream/*") | length }}{{ getvs("/svc/*/addr") | length }}'
        '{{ lsdir("/hosts") | length }}',
    )
    reads = Renderer(templates).render(src, store).reads
    assert reads.depends_on(changed) is want


def test_concurrent_renders_keep_their_own_reads(templates: Path) -> None:
    src = write(templates, "t.tmpl", '{{ getv(key) }}{% for i in seq(1, 200) %}.{% endfor %}')
    renderer = Renderer(templates)
    store = KVStore({f"/k{i}": str(i) for i in range(8)})
    results: dict[int, tuple[str, set[str]]] = {}

    def work(i: int) -> None:
        for _ in range(50):
            out = renderer.render(src, store, {"key": f"/k{i}"})
            results[i] = (out.text[: -200], out.reads.keys)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: (str(i), {f"/k{i}"}) for i in range(8)}


@pytest.mark.parametrize(("name", "text"), [
    ("page.tmpl", '{{ getv("/app/port") }} {{ include("part.tmpl") }}\n'),
    ("page.go.tmpl", '{{getv "/app/port"}} {{include "part.tmpl"}}\n'),
])
def test_a_render_leaves_nothing_for_the_cycle_collector(templates: Path, store: KVStore,
                                                         name: str, text: str) -> None:
    """A render's function map (with `include`, which renders through that very map) is freed
    when the render ends, not left as a cycle: a pass of 1,000 renders had left ~47,000
    objects for the collector, a daemon's whole memory for it to walk each time."""
    import gc

    write(templates, "part.tmpl", '{{ getv("/flags/tls") }}')
    write(templates, name, text)
    renderer = Renderer(templates, syntax="auto")
    assert renderer.render(name, store).text == "8080 true\n"  # loaded and compiled now
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            renderer.render(name, store)
        left = gc.collect()
    finally:
        gc.enable()
    assert left == 0
