"""`convert`: Go templates become the Jinja a person would write, rendering the same bytes.

Each conversion is checked twice: the Jinja text itself (it must read as hand-written Jinja), and
that confd's Jinja renderer prints exactly what the Go front end prints for the same store.
What cannot be converted exactly is refused with its line and construct, and no text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from confd.template.golang.convert import JINJA_HELPERS, convert
from confd.template.golang.errors import GoSyntaxError
from confd.template.golang.functions import SIGNATURES, go_functions
from confd.template.golang.template import GoTemplate
from confd.template.renderer import Renderer
from confd.template.store import KVStore

STORE = {
    "/app/name": "billing",
    "/app/port": "8080",
    "/app/hosts/a": "10.0.0.1",
    "/app/hosts/b": "10.0.0.2",
    "/app/json": '{"name": "api", "port": 8080, "tags": ["x", "y"], "on": true, "ratio": 0.5}',
    "/dirs/one/x": "1",
    "/dirs/two/y": "2",
}


def jinja(source: str) -> str:
    result = convert(source, "t.tmpl", SIGNATURES)
    assert result.problems == [], result.problems
    assert result.text is not None
    return result.text


def render_both(source: str, tmp_path: Path, store: dict[str, str] | None = None) -> str:
    """Render `source` natively and converted; assert they agree; return the text."""
    kv = KVStore(STORE if store is None else store)
    native = GoTemplate.parse(source, "t.tmpl", SIGNATURES).execute(go_functions(kv.view()))
    (tmp_path / "t.j2").write_bytes(jinja(source).encode())
    converted = Renderer(tmp_path).render("t.j2", kv, JINJA_HELPERS).text
    assert converted == native
    return native


IDIOMS = [
    ('{{getv "/app/name"}}', '{{ getv("/app/name") }}'),
    ('{{ getv "/app/missing" "default" }}', '{{ getv("/app/missing", "default") }}'),
    ('{{range gets "/app/hosts/*"}}{{.Value}} {{end}}',
     '{% for kv in gets("/app/hosts/*") %}{{ kv.value }} {% endfor %}'),
    ('{{range $h := getvs "/app/hosts/*"}}{{$h}},{{end}}',
     '{% for h in getvs("/app/hosts/*") %}{{ h }},{% endfor %}'),
    ('{{if exists "/app/name"}}yes{{else}}no{{end}}',
     '{% if exists("/app/name") %}yes{% else %}no{% endif %}'),
    ('{{if eq (getv "/app/port") "80"}}a{{else if ne (getv "/app/port") "8080"}}b{{else}}c{{end}}',
     '{% if getv("/app/port") == "80" %}a{% elif getv("/app/port") != "8080" %}b'
     '{% else %}c{% endif %}'),
    ('{{$n := getv "/app/name"}}{{$n}}', '{% set n = getv("/app/name") %}{{ n }}'),
    ('{{ range $d := lsdir "/dirs" }}{{ printf "/dirs/%s/x" $d }};{{ end }}',
     '{% for d in lsdir("/dirs") %}{{ "/dirs/" ~ d ~ "/x" }};{% endfor %}'),
    ('{{ printf "%5s|%d" (getv "/app/name") 3 }}', '{{ printf("%5s|%d", getv("/app/name"), 3) }}'),
    ('{{- range ls "/dirs" }}\n  {{ . }}\n{{- end }}',
     '{%- for name in ls("/dirs") %}\n  {{ name }}\n{%- endfor %}'),
    ('{{ $d := json (getv "/app/json") }}{{ $d.name }}:{{ $d.port }}',
     '{% set d = json(getv("/app/json")) %}{{ d.name }}:{{ d.port }}'),
    ('{{ $d := json (getv "/app/json") }}{{ if $d.on }}on{{ end }}{{ if $d.off }}off{{ end }}',
     '{% set d = json(getv("/app/json")) %}{% if d.get("on") %}on{% endif %}'
     '{% if d.get("off") %}off{% endif %}'),
    ('{{ $d := json (getv "/app/json") }}{{ range $k, $v := $d }}{{ $k }}={{ $v }} {{ end }}',
     '{% set d = json(getv("/app/json")) %}{% for k, v in d | dictsort(true) %}{{ k }}={{ v }} '
     '{% endfor %}'),
    ('{{ $l := split "a,b,c" "," }}{{ index $l 1 }}{{ len $l }}{{ slice $l 1 }}',
     '{% set l = split("a,b,c", ",") %}{{ l[1] }}{{ l | length }}{{ l[1:] }}'),
    ('{{ len (getv "/app/name") }}', '{{ getv("/app/name").encode() | length }}'),
    ('{{ if and (exists "/a") (not (exists "/b")) }}x{{ end }}{{ or (getv "/x" "") "dflt" }}',
     '{% if exists("/a") and not exists("/b") %}x{% endif %}{{ getv("/x", "") or "dflt" }}'),
    ('{{ eq (getv "/app/port") "1" "2" "8080" }}', '{{ getv("/app/port") in ["1", "2", "8080"] }}'),
    ('{{ with get "/app/name" }}{{ .Value }}{{ else }}none{{ end }}',
     '{% set kv = get("/app/name") %}{% if kv %}{{ kv.value }}{% else %}none{% endif %}'),
    ('{{ range $i, $h := ls "/app/hosts" }}{{ if $i }},{{ end }}{{ $h }}{{ end }}',
     '{% for h in ls("/app/hosts") %}{% if loop.index0 %},{% endif %}{{ h }}{% endfor %}'),
    ('{{ range gets "/app/hosts/*" }}{{ else }}none{{ end }}',
     '{% for kv in gets("/app/hosts/*") %}{% else %}none{% endfor %}'),
    ("{{/* note */}}a{{- /* trimmed */ -}} b", "{# note #}a{#- trimmed -#} b"),
    ('{{ getv "/app/name" | toUpper | printf "%s!" }}', '{{ toUpper(getv("/app/name")) ~ "!" }}'),
    ('{{ (datetime).Format "2006-01-02" | len }}',
     '{{ datetime().strftime("%Y-%m-%d").encode() | length }}'),
    ('{{ $x := 1 }}{{ $x = add $x 1 }}{{ $x }}', '{% set x = 1 %}{% set x = add(x, 1) %}{{ x }}'),
]


@pytest.mark.parametrize(("go", "expected"), IDIOMS)
def test_conversion_reads_like_hand_written_jinja(go: str, expected: str, tmp_path: Path) -> None:
    assert jinja(go) == expected
    render_both(go, tmp_path)


def test_accumulating_in_a_loop_uses_a_namespace(tmp_path: Path) -> None:
    go = '{{ $n := 0 }}{{ range ls "/app/hosts" }}{{ $n = add $n 1 }}{{ end }}{{ $n }} hosts'
    assert jinja(go) == (
        '{% set n = namespace(value=0) %}{% for name in ls("/app/hosts") %}'
        "{% set n.value = add(n.value, 1) %}{% endfor %}{{ n.value }} hosts"
    )
    assert render_both(go, tmp_path) == "2 hosts"


def test_shadowing_declaration_gets_its_own_name(tmp_path: Path) -> None:
    go = '{{ $x := "outer" }}{{ if true }}{{ $x := "inner" }}{{ $x }}{{ end }} {{ $x }}'
    assert jinja(go) == (
        '{% set x = "outer" %}{% if true %}{% set x2 = "inner" %}{{ x2 }}{% endif %} {{ x }}'
    )
    assert render_both(go, tmp_path) == "inner outer"


def test_nested_loops_name_their_variables_apart(tmp_path: Path) -> None:
    go = ('{{ range $i, $d := lsdir "/dirs" }}{{ range ls (printf "/dirs/%s" $d) }}'
          "{{ $i }}{{ $d }}/{{ . }} {{ end }}{{ end }}")  # fmt: skip
    text = jinja(go)
    assert "{% set i = loop.index0 %}" in text  # the outer index, inside an inner loop
    assert render_both(go, tmp_path) == "0one/x 1two/y "


def test_text_that_means_something_to_jinja_is_escaped(tmp_path: Path) -> None:
    go = "{% raw %} {# not a comment #} {{ \"{{\" }} a{{ \"x\" }}{ }} %}\n"
    text = jinja(go)
    assert "{% raw" not in text and "{# not" not in text
    assert render_both(go, tmp_path) == "{% raw %} {# not a comment #} {{ ax{ }} %}\n"


def test_carriage_returns_survive(tmp_path: Path) -> None:
    go = 'a\r\nb {{ getv "/app/name" }}\r\n'
    assert render_both(go, tmp_path) == "a\r\nb billing\r\n"


@pytest.mark.parametrize(
    "go",
    [
        "x  \n  {{- 1 -}}  \n  y",
        "x\u00a0 {{- 1 -}} \u00a0y",  # Go trims only " \t\r\n"; Jinja's "-" would take more
        "x\u2003\n{{- 1 }}\n\u2003y",
        "  {{- 1 -}}  ",
        "a {{- /* c */ -}} \u00a0 b",
    ],
)
def test_trim_markers_trim_exactly_what_go_trims(go: str, tmp_path: Path) -> None:
    render_both(go, tmp_path)


REFUSALS = [
    ('a\n{{ range ls "/" }}{{ break }}{{ end }}', 2, "{{break}}", "loopcontrols"),
    ('{{ define "x" }}{{ end }}', 1, '{{ define "x" }}', "defined templates"),
    ('\n\n{{ index (getv "/app/name") 0 }}', 3, "index", "byte"),
    ('{{ slice (getv "/app/name") 1 2 }}', 1, "slice", "bytes"),
    ("{{ datetime }}", 1, "datetime", "monotonic"),
    ("{{ . }}", 1, ".", "nil"),
    ('{{ urlquery "a b" }}', 1, "urlquery", "no exact Jinja equivalent"),
    ('{{ (datetime).Format "Z07:00" }}', 1, "Format", "strftime"),
    ('{{ getv "/a" "b" "c" }}', 1, "getv", "ignores"),
    ("{{ 1i }}", 1, "1i", "complex"),
]


@pytest.mark.parametrize(("go", "line", "construct", "reason"), REFUSALS)
def test_refuses_what_it_cannot_convert_naming_line_and_construct(
    go: str, line: int, construct: str, reason: str
) -> None:
    result = convert(go, "t.tmpl", SIGNATURES)
    assert result.text is None
    assert len(result.problems) == 1, result.problems
    problem = result.problems[0]
    assert problem.line == line
    assert construct in problem.construct
    assert reason in problem.reason
    assert str(problem).startswith(f"line {line}: ")


def test_every_refused_construct_is_reported() -> None:
    go = (
        '{{ range ls "/" }}{{ continue }}\n{{ index "ab" 0 }}{{ end }}\n'
        '{{ js "x" }}{{ getv "/ok" }}'
    )
    result = convert(go, "t.tmpl", SIGNATURES)
    assert result.text is None
    assert [p.line for p in result.problems] == [1, 2, 3]


def test_a_template_that_does_not_parse_is_a_syntax_error() -> None:
    with pytest.raises(GoSyntaxError, match=r't.tmpl:1:3: function "nope" not defined'):
        convert("{{ nope }}", "t.tmpl", SIGNATURES)
