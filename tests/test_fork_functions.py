"""The fork's functions beyond its docs' examples: Go's JSON and quoting, RE2 regexps, casing,
emptiness, argument errors, and `include` (depth, cycles, escapes, reads, errors)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from confd.errors import TemplateError
from confd.template.functions import FunctionError, template_functions
from confd.template.renderer import Renderer
from confd.template.store import KVPair, KVStore, Reads


@pytest.fixture
def funcs() -> dict[str, Any]:
    return template_functions(KVStore({"/a": "1"}).view(Reads()))


CASES: list[tuple[str, tuple[Any, ...], Any]] = [
    # toJson is Go's json.Marshal: compact, sorted keys, HTML-safe, Go's float format
    ("toJson", ({"b": 1.0, "a": "<x>&'é\u2028"},),
     '{"a":"\\u003cx\\u003e\\u0026\'é\\u2028","b":1}'),
    ("toJson", ([1e21, 1.5e-7, 0.1, 100.0, 1e20, 1e-6, -0.0],),
     "[1e+21,1.5e-7,0.1,100,100000000000000000000,0.000001,-0]"),
    ("toJson", (None,), "null"),
    ("toJson", ([True, "a\nb\t\x01"],), '[true,"a\\nb\\t\\u0001"]'),
    ("toJson", (KVPair("/k", "v"),), '{"Key":"/k","Value":"v"}'),
    ("toJson", ({},), "{}"),
    ("toPrettyJson", ({"a": [1, {}], "b": []},), '{\n  "a": [\n    1,\n    {}\n  ],\n  "b": []\n}'),
    ("fromJson", ('{"a": [1, 2.5, null]}',), {"a": [1, 2.5, None]}),
    ("fromJson", ('"text"',), "text"),
    # Go's strconv.Quote
    ("quote", ('a"b\\c\n\x01\x7f é \u00a0 \u200b \U0001F600',),
     '"a\\"b\\\\c\\n\\x01\\x7f é \\u00a0 \\u200b \U0001F600"'),
    # a byte that is not UTF-8 (an environment value Python decoded with surrogateescape)
    ("quote", ("a\udcffb",), '"a\\xffb"'),
    ("squote", ("",), "''"),
    ("indent", (2, ""), ""),
    ("indent", (2, "a\n\nb\n"), "  a\n  \n  b\n  "),
    ("indent", (-3, "a\nb"), "a\nb"),
    ("nindent", (2, "a"), "\n  a"),
    ("repeat", (0, "x"), ""),
    ("repeat", (-1, "x"), ""),
    ("nospace", (" a\tb\nc\u00a0d\u2003e\x1cf ",), "abcde\x1cf"),
    ("snakecase", ("HTTPServer",), "http_server"),
    ("snakecase", ("already_snake-and kebab",), "already_snake_and_kebab"),
    ("snakecase", ("",), ""),
    ("camelcase", ("HTTP_server_id",), "httpServerId"),
    ("kebabcase", ("getHTTPResponseCode",), "get-http-response-code"),
    # RE2 semantics, not Python's
    ("regexMatch", ("^prod$", "prod\n"), False),
    ("regexMatch", (r"^\d+$", "١٢"), False),
    ("regexMatch", ("[[:alpha:]]+", "abc"), True),
    ("regexMatch", (r"\pL", "é"), True),
    ("regexFind", ("z+", "abc"), ""),
    ("regexReplaceAll", ("a*", "baaac", "X"), "XbXcX"),
    ("regexReplaceAll", (r"(\w+)@(\w+)", "bob@ex", "$2/${1}_$1x $$ $ ${"), "ex/bob_ $ $ ${"),
    ("regexReplaceAll", ("(?P<n>x)", "x", "[$n][$0][$9]"), "[x][x][]"),
    # defaults and emptiness are Go's zero values
    ("default", ("d", 0), "d"),
    ("default", ("d", 0.0), "d"),
    ("default", ("d", False), "d"),
    ("default", ("d", []), "d"),
    ("default", ("d", {}), "d"),
    ("default", ("d", None), "d"),
    ("default", ("d", "0"), "0"),
    ("default", ("d", [0]), [0]),
    ("empty", (KVPair("", ""),), True),
    ("empty", (KVPair("/k", ""),), False),
    ("coalesce", ("", 0, None), None),
    ("coalesce", ("", [], "x", "y"), "x"),
    ("ternary", ("a", "b", False), "b"),
    ("dict", ("a", 1, "b", [2]), {"a": 1, "b": [2]}),
    ("list", (), []),
    ("hasKey", ({"a": None}, "a"), True),
    ("hasKey", ({"a": 1}, "b"), False),
    ("keys", ({"b": 1, "a": 2, "C": 3},), ["C", "a", "b"]),
    ("values", ({"b": 1, "a": 2},), [2, 1]),
    ("append", (["a"], ["b"]), ["a", ["b"]]),
    ("pluck", ("p", {"p": 1}, {"q": 2}, {"p": 3}), [1, 3]),
    ("pluck", ("p",), []),
    ("sha256sum", ("",), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
]


@pytest.mark.parametrize(("name", "args", "want"), CASES, ids=[c[0] for c in CASES])
def test_fork_function(funcs: dict[str, Any], name: str, args: tuple[Any, ...], want: Any) -> None:
    assert funcs[name](*args) == want


def test_append_leaves_the_list_alone(funcs: dict[str, Any]) -> None:
    items = ["a"]
    assert funcs["append"](items, "b") == ["a", "b"]
    assert items == ["a"]


ERRORS: list[tuple[str, tuple[Any, ...], str]] = [
    ("toJson", (math.nan,), "unsupported value: NaN"),
    ("toJson", (object(),), "unsupported type object"),
    ("fromJson", ("{",), "invalid JSON: .* at line 1 column 2"),
    ("fromJson", ("NaN",), "invalid character 'N'"),
    ("regexMatch", ("a(?=b)", "ab"), "error parsing regexp: invalid perl operator"),
    ("regexMatch", ("a{1001}", "a"), "invalid repetition size"),
    ("regexFind", ("(", "a"), "error parsing regexp"),
    ("ternary", ("a", "b", "true"), "condition must be a boolean, got str"),
    ("indent", ("4", "x"), "spaces must be an integer, got str"),
    ("repeat", (10**8, "ab"), "result longer than"),
    ("hasKey", (["a"], "a"), "first argument must be a map, got list"),
    ("keys", ("abc",), "argument must be a map, got str"),
    ("pluck", ("p", {"p": 1}, "x"), "argument 3 must be a map, got str"),
    ("append", ("abc", "d"), "first argument must be a list, got str"),
    ("quote", (5,), "argument must be a string, got int"),
    ("dict", ("a",), "invalid map call"),
    ("dict", (1, 2), "map keys must be strings"),
]


@pytest.mark.parametrize(("name", "args", "match"), ERRORS, ids=[e[0] for e in ERRORS])
def test_fork_function_error_names_function(
    funcs: dict[str, Any], name: str, args: tuple[Any, ...], match: str
) -> None:
    with pytest.raises(FunctionError, match=match) as caught:
        funcs[name](*args)
    assert caught.value.function == name


def test_bad_regexp_does_not_write_to_stderr(funcs: dict[str, Any], capfd: Any) -> None:
    with pytest.raises(FunctionError):
        funcs["regexMatch"]("(", "x")
    assert capfd.readouterr().err == ""


# -- include ---------------------------------------------------------------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    path = tmp_path / "templates"
    path.mkdir()
    return path


def write(templates: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Renderer(templates)


def chain(length: int) -> dict[str, str]:
    """main.tmpl includes t1.tmpl, which includes t2.tmpl, ... down to t<length>.tmpl."""
    files = {"main.tmpl": '{{ include("t1.tmpl") }}'}
    for i in range(1, length + 1):
        files[f"t{i}.tmpl"] = f'{i}{{{{ include("t{i + 1}.tmpl") }}}}' if i < length else "end"
    return files


def test_include_nests_ten_deep(templates: Path) -> None:
    renderer = write(templates, chain(10))
    assert renderer.render("main.tmpl", KVStore()).text == "123456789end"


def test_include_eleven_deep_is_refused(templates: Path) -> None:
    renderer = write(templates, chain(11))
    with pytest.raises(TemplateError, match=r"maximum include depth \(10\) exceeded"):
        renderer.render("main.tmpl", KVStore())


@pytest.mark.parametrize(
    "files",
    [
        {"main.tmpl": '{{ include("a.tmpl") }}', "a.tmpl": '{{ include("a.tmpl") }}'},
        {"main.tmpl": '{{ include("a.tmpl") }}', "a.tmpl": '{{ include("sub/b.tmpl") }}',
         "sub/b.tmpl": '{{ include("a.tmpl") }}'},  # names are relative to templates/
    ],
    ids=["self", "through a subdirectory"],
)
def test_include_cycle_is_refused_naming_the_template(
    templates: Path, files: dict[str, str]
) -> None:
    renderer = write(templates, files)
    with pytest.raises(TemplateError, match="include cycle detected: .*a.tmpl is already being"):
        renderer.render("main.tmpl", KVStore())


@pytest.mark.parametrize("name", ["../secret", "sub/../../secret", "/etc/passwd"])
def test_include_outside_the_templates_directory_is_refused(templates: Path, name: str) -> None:
    (templates.parent / "secret").write_text("s3cret")
    renderer = write(templates, {"main.tmpl": f'{{{{ include("{name}") }}}}'})
    with pytest.raises(TemplateError, match="outside the templates directory") as caught:
        renderer.render("main.tmpl", KVStore())
    assert "s3cret" not in str(caught.value)


def test_include_reads_count_for_the_watch(templates: Path) -> None:
    renderer = write(templates, {
        "main.tmpl": '{{ getv("/top") }}{{ include("part.tmpl") }}',
        "part.tmpl": '{{ getv("/deep/key") }}{% for x in gets("/list/*") %}{% endfor %}',
    })
    rendered = renderer.render("main.tmpl", KVStore({"/top": "a", "/deep/key": "b"}))
    assert rendered.text == "ab"
    assert rendered.reads.keys == {"/top", "/deep/key"}
    assert rendered.reads.depends_on("/deep/key")
    assert rendered.reads.depends_on("/list/x")
    assert not rendered.reads.depends_on("/other")


def test_include_error_names_the_included_file_and_line(templates: Path) -> None:
    renderer = write(templates, {
        "main.tmpl": 'x\n{{ include("part.tmpl") }}',
        "part.tmpl": 'one\ntwo {{ getv("/missing") }}',
    })
    with pytest.raises(TemplateError, match=r'part\.tmpl:2: key "/missing" not found') as caught:
        renderer.render("main.tmpl", KVStore())
    assert "main.tmpl" not in str(caught.value)


def test_include_syntax_error_names_the_included_file(templates: Path) -> None:
    renderer = write(templates, {"main.tmpl": '{{ include("part.tmpl") }}',
                                 "part.tmpl": "ok\n{{ broken( }}"})
    with pytest.raises(TemplateError, match=r"part\.tmpl:2: "):
        renderer.render("main.tmpl", KVStore())


def test_include_of_a_missing_template_names_it(templates: Path) -> None:
    renderer = write(templates, {"main.tmpl": '{{ include("nope.tmpl") }}'})
    with pytest.raises(TemplateError, match=r"nope\.tmpl: template not found"):
        renderer.render("main.tmpl", KVStore())


def test_include_data_is_the_included_templates_context(templates: Path) -> None:
    renderer = write(templates, {
        "main.tmpl": '{{ include("m.tmpl", dict("port", 80)) }}|{{ include("s.tmpl", "x") }}'
                     '|{{ include("n.tmpl") }}',
        "m.tmpl": "{{ port }} {{ data.port }}",
        "s.tmpl": "{{ data }}",
        "n.tmpl": "{{ data is none }}",
    })
    assert renderer.render("main.tmpl", KVStore()).text == "80 80|x|true"


def test_included_template_does_not_see_the_includers_variables(templates: Path) -> None:
    renderer = write(templates, {"main.tmpl": '{% set secret = "s" %}{{ include("p.tmpl") }}',
                                 "p.tmpl": "{{ secret }}"})
    with pytest.raises(TemplateError, match="'secret' is undefined"):
        renderer.render("main.tmpl", KVStore())


def test_jinja_default_filter_keeps_jinjas_meaning(templates: Path) -> None:
    renderer = write(templates, {"main.tmpl": '[{{ "" | default("x") }}][{{ nope | default("y") }}]'
                                              '[{{ default("z", "") }}]'})
    assert renderer.render("main.tmpl", KVStore()).text == "[][y][z]"
