"""What `{{ value }}` prints in Jinja templates (confd.template.printing.finalize): Go's way.

Through confd's real renderer: booleans are `true`/`false`, floats, lists, maps and KV pairs
print as Go prints them, and printing None, an undefined name or a function is an error
naming the file, the line and what was printed, so nothing like `None` or
`<function datetime at 0x...>` ever reaches a config file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from confd.errors import TemplateError
from confd.template.renderer import Renderer
from confd.template.store import KVStore

STORE = KVStore({"/flag": "true", "/app/port": "8080", "/json": '{"a": 1.5, "b": [1, "x"]}'})


def render(tmp_path: Path, source: str) -> str:
    (tmp_path / "t.tmpl").write_text(source)
    return Renderer(tmp_path, syntax="jinja").render("t.tmpl", STORE).text


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('{{ exists("/flag") }} {{ exists("/nope") }}', "true false"),
        ('enabled = {{ parseBool(getv("/flag")) }}', "enabled = true"),
        ("{{ 4 / 2 }} {{ 7 / 2 }} {{ 1e6 }} {{ 0.1 + 0.2 }}", "2 3.5 1e+06 0.30000000000000004"),
        ("{{ seq(1, 3) }} {{ split('a,b', ',') }} {{ [] }}", "[1 2 3] [a b] []"),
        ('{{ json(getv("/json")) }}', "map[a:1.5 b:[1 x]]"),
        ('{{ get("/app/port") }} {{ gets("/app/*") }}', "{/app/port 8080} [{/app/port 8080}]"),
        ('{{ getv("/app/port") }} {{ atoi(getv("/app/port")) + 1 }}', "8080 8081"),
        ("{{ 'a<b' | e }} {{ true and 'x' }}", "a&lt;b x"),
    ],
)
def test_values_print_as_go_prints_them(tmp_path: Path, source: str, text: str) -> None:
    assert render(tmp_path, source) == text


def test_printing_none_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, 'line one\n{{ json(\'{"a": null}\').a }}\n')
    message = str(caught.value)
    assert "t.tmpl:2" in message
    assert "printed None" in message


def test_printing_an_undefined_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"t.tmpl:1: 'nosuchvar' is undefined"):
        render(tmp_path, "{{ nosuchvar }}")


def test_printing_a_function_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "generated at {{ datetime }}")
    message = str(caught.value)
    assert "'datetime' is a function" in message
    assert "datetime(...)" in message
    assert "<function" not in message


def test_calling_the_function_prints_its_result(tmp_path: Path) -> None:
    assert render(tmp_path, "{{ datetime().year > 2000 }}") == "true"
