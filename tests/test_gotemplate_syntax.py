"""Deciding per file whether a template is Go or Jinja (confd.template.golang.syntax)."""

from __future__ import annotations

import pytest
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import TemplateAssertionError
from jinja2.sandbox import SandboxedEnvironment

from confd.template.golang.errors import GoSyntaxError
from confd.template.golang.functions import SIGNATURES
from confd.template.golang.parser import parse
from confd.template.golang.syntax import detect_syntax

ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


def go_error(source: str) -> str | None:
    try:
        parse(source, "app.tmpl", SIGNATURES)
    except GoSyntaxError as exc:
        return exc.short
    return None


def jinja_error(source: str) -> str | None:
    try:
        ENV.from_string(source)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        return f"{exc.lineno}: {exc.message}"
    return None


@pytest.mark.parametrize(
    ("source", "syntax"),
    [
        ('{{getv "/myapp/database/url"}}', "go"),  # Go confd's quick start
        ('{{ range gets "/a/*" }}{{ .Value }}{{ end }}', "go"),
        ("{{ $x := 1 }}{{ $x }}", "go"),
        ("{{/* comment */}}text", "go"),
        ('{{ getv "/x" | toUpper }}', "go"),
        ('{{ "a" | toUpper }}', "go"),  # a confd function, not a Jinja filter
        ("{{ datetime }}", "go"),  # parses as both: Go calls it, as Go confd does
        ("{{ 'a' }}", "go"),
        ("plain text, no actions", "go"),
        ('{{ getv("/x") }}', "jinja"),
        ("{% for kv in gets('/a/*') %}{{ kv.value }}{% endfor %}", "jinja"),
        ("{# note #}{{ x }}", "jinja"),
        ('{{ "a" | upper }}', "jinja"),
        ("{{ x.y }}", "jinja"),
    ],
)
def test_syntax_is_decided_per_file(source: str, syntax: str) -> None:
    assert detect_syntax(source, go_error, jinja_error).syntax == syntax


def test_neither_names_both_errors() -> None:
    detection = detect_syntax("line\n{{ getv \"/x\") }}", go_error, jinja_error)
    assert detection.syntax is None
    assert "2:12: unexpected \")\" in command" in detection.reason  # Go's parser
    assert "nor as Jinja (2: " in detection.reason
