# ruff: noqa: E501 - the table quotes templates and messages whole
"""Parsing Go templates: what parses in Go confd parses here, and what does not fails the same way.

The messages and lines are Go 1.19's text/template parser's (checked against it when the table
was made); we add the column of the token at fault and the file: `file:line:column: message`.
An unknown function is refused when the template is loaded, as Go's parser does.
"""

from __future__ import annotations

import pytest

from confd.errors import TemplateError
from confd.template.golang.errors import GoSyntaxError
from confd.template.golang.functions import SIGNATURES
from confd.template.golang.parser import parse
from confd.template.golang.template import GoTemplate

FUNCS = {"json", "jsonArray", "split", "join", "atoi", "add", "getv"}

# (template, line, column, Go's message)
# fmt: off
SYNTAX_ERRORS = [
    ('{{ foo }}', 1, 3, 'function "foo" not defined'),
    ('{{ if }}', 1, 6, 'missing value for if'),
    ('{{ if . }}x', 1, 11, 'unexpected EOF'),
    ('{{ end }}', 1, 7, 'unexpected {{end}}'),
    ('{{ else }}', 1, 8, 'unexpected {{else}}'),
    ('{{ range $i, $v, $w := . }}{{ end }}', 1, 15, 'too many declarations in range'),
    ('{{ $x := 1 }}{{ $y }}', 1, 19, 'undefined variable "$y"'),
    ('{{ "unterminated }}', 1, 3, 'unterminated quoted string'),
    ("{{ 'ab' }}", 1, 3, "malformed character constant: 'ab'"),
    ('{{ 089 }}', 1, 3, 'integer overflow: "089"'),
    ('{{ 99999999999999999999 }}', 1, 3, 'integer overflow: "99999999999999999999"'),
    ('{{ 1.5.Foo }}', 1, 10, 'unexpected . after term "1.5"'),
    ('{{ break }}', 1, 9, '{{break}} outside {{range}}'),
    ('{{ define "x" }}a{{ end }}{{ define "x" }}b{{ end }}', 1, 50, 'template: multiple definition of template "x"'),
    ('{{/* unclosed', 1, 2, 'unclosed comment'),
    ('{{ . | 3 }}', 1, 9, 'non executable command in pipeline stage 2'),
    ('{{ (1 }}', 1, 6, 'unclosed left paren'),
    ('{{ 1) }}', 1, 4, 'unexpected ")" in command'),
    ('line1\nline2 {{ if .\n}}', 3, 2, 'unexpected EOF'),
    ('{{ .x@ }}', 1, 3, "bad character U+0040 '@'"),
    ('{{ x$ }}', 1, 3, "bad character U+0024 '$'"),
    ('{{ "\\q" }}', 1, 3, 'invalid syntax'),
    ('{{ €x }}', 1, 3, "unrecognized character in action: U+20AC '€'"),
    ('{{ template x }}', 1, 12, 'unexpected "x" in template clause'),
    ('{{range}}{{end}}', 1, 7, 'missing value for range'),
    ('{{ $x, $y := . }}', 1, 5, 'too many declarations in command'),
    ('{{ range $x := . }}{{ end }}{{ $x }}\n', 1, 34, 'undefined variable "$x"'),
    ("{{ range . }}\n{{ else }}\n{{ else }}{{ end }}", 3, 8, "expected end; found {{else}}"),
    ("{{ with . }}{{ else if . }}{{ end }}", 1, 20, "unexpected <if> in input"),
]
# fmt: on


@pytest.mark.parametrize(("source", "line", "column", "message"), SYNTAX_ERRORS)
def test_syntax_error_names_line_column_and_go_message(
    source: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(GoSyntaxError) as caught:
        parse(source, "t.tmpl", FUNCS)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column, message)
    assert str(caught.value) == f"t.tmpl:{line}:{column}: {message}"


def test_unknown_function_is_refused_at_load_naming_it_and_its_file_and_line() -> None:
    source = 'upstream {\n  server {{ getv "/a" }};\n  weight {{ wieght "/w" }};\n}\n'
    with pytest.raises(TemplateError) as caught:  # a confd TemplateError, as Jinja's are
        GoTemplate.parse(source, "nginx.tmpl", SIGNATURES, where="/etc/confd/templates/nginx.tmpl")
    assert str(caught.value) == '/etc/confd/templates/nginx.tmpl:3:12: function "wieght" not defined'


def test_unknown_function_in_a_branch_never_taken_is_still_refused() -> None:
    with pytest.raises(GoSyntaxError, match='function "nope" not defined'):
        parse("{{ if false }}{{ nope }}{{ end }}", "t", FUNCS)


def test_column_counts_utf8_bytes_as_go_does() -> None:
    with pytest.raises(GoSyntaxError) as caught:
        parse("é€ {{ foo }}", "t", FUNCS)
    assert (caught.value.line, caught.value.column) == (1, 9)


def test_error_token_keeps_the_line_where_its_action_started() -> None:
    with pytest.raises(GoSyntaxError) as caught:
        parse('{{ if\n  "unterminated\n}}', "t", FUNCS)
    assert caught.value.message == "unterminated quoted string in action started at t:1"


@pytest.mark.parametrize(
    "source",
    [
        "{{/* comment */}}{{- /* trimmed */ -}}",
        '{{ define "x" }}a{{ end }}{{ template "x" }}{{ block "y" . }}b{{ end }}',
        "{{ range $i, $v := . }}{{ break }}{{ continue }}{{ end }}",
        "{{ $x := 1 }}{{ $x = 2 }}{{ if $y := . }}{{ $y }}{{ else if $x }}{{ end }}",
        "{{ 3i }}{{ 1+2i }}{{ 'a' }}{{ 0x1p4 }}{{ 1_000 }}{{ 0o17 }}{{ `raw` }}{{ nil | print }}",
        "{{ (json `{}`).a.b | printf \"%v\" }}{{ .a.b }}{{ $.x }}",
        "{{ and }}{{ index 1 }}{{ template \"undefined\" }}",  # errors only when executed
    ],
)
def test_valid_go_templates_parse(source: str) -> None:
    parse(source, "t.tmpl", FUNCS)


def test_break_is_a_function_when_the_function_map_defines_one() -> None:
    parse("{{ break }}", "t", FUNCS | {"break"})  # Go's lexer then reads it as an identifier
