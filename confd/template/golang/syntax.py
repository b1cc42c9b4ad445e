"""Which syntax a template file is written in: Go's text/template or Jinja, decided per file.

The rule, in order:
1. `{%` or `{#` in the file: Jinja (Go templates have neither, except as literal text).
2. Otherwise parse it both ways (Go with confd's function names, Jinja by compiling it). The
   one that accepts it wins; if neither does, both errors are reported.
3. Both accept it: every action is then a literal, a bare function name or a trim marker
   (`{{ "x" }}`, `{{ 8080 }}`, `{{ datetime }}`, `{{- " " -}}`), which print the same in both
   syntaxes except `{{ 'a' }}` (Go: a character, 97; Jinja: the string "a") and a bare function
   (Go calls it; Jinja refuses to print a function): read as Go, as Go confd would.

Go's `{{ getv "/x" }}`, `{{ .Key }}`, `{{ $x }}`, `{{/* c */}}` and pipelines into confd
functions fail to parse as Jinja; Jinja's `{{ getv("/x") }}` and filters fail as Go.
"""

from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Detection", "detect_syntax", "evident_syntax"]


class Detection(NamedTuple):
    """The syntax a file was read as ("go" or "jinja", None if neither), and why."""

    syntax: str | None
    reason: str


def evident_syntax(source: str) -> Detection | None:
    """The syntax `source` shows at a glance (rule 1), or None when deciding means parsing."""
    if "{%" in source or "{#" in source:
        return Detection("jinja", "it uses {% or {#")
    return None


def detect_syntax(
    source: str,
    go_error: Callable[[str], str | None],
    jinja_error: Callable[[str], str | None],
) -> Detection:
    """Decide the syntax of `source`; `go_error` parses it as a Go template and `jinja_error`
    compiles it as Jinja, each returning the error message (or None when it is accepted)."""
    evident = evident_syntax(source)
    if evident is not None:
        return evident
    go = go_error(source)
    jinja = jinja_error(source)
    if go is None and jinja is None:
        return Detection("go", "it parses as both; read as Go, as Go confd reads it")
    if go is None:
        return Detection("go", f"it parses as Go, not as Jinja ({jinja})")
    if jinja is None:
        return Detection("jinja", f"it parses as Jinja, not as Go ({go})")
    return Detection(None, f"it parses neither as Go ({go}) nor as Jinja ({jinja})")
