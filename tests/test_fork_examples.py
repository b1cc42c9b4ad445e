"""The fork's template function examples (tests/fork_examples.yaml) render as the fork renders
them, in Go template syntax as the fork's docs write them and in Jinja: with confd's function,
and with Jinja's own filter where one has the same meaning (`default`, `indent`, `tojson`) or
the function works as a filter."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from confd.errors import TemplateError
from confd.template.renderer import Renderer
from confd.template.store import KVStore

EXAMPLES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "fork_examples.yaml").read_text()
)
FORMS = ("go", "jinja", "jinja_builtin", "jinja_filter")


def _lo_ipv6() -> str:
    """The loopback's IPv6 address as /proc lists it ("" when IPv6 is off), read apart from
    the code under test."""
    import ipaddress

    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if fields and fields[-1] == "lo":
            return ipaddress.IPv6Address(int(fields[0], 16)).compressed
    return ""


def _expected(text: str) -> str:
    return text.replace("{hostname}", socket.gethostname()).replace("{lo_ipv6}", _lo_ipv6())


def _cases() -> list[Any]:
    cases = []
    for example in EXAMPLES:
        for form in FORMS:
            if form in example:
                cases.append(pytest.param(example, form, id=f"{example['name']}-{form}"))
    return cases


def test_every_example_has_both_syntaxes_and_a_result() -> None:
    for example in EXAMPLES:
        assert example.get("go") and example.get("jinja"), example["name"]
        assert ("expected" in example) != ("error" in example), example["name"]
        for name, forms in example.get("files", {}).items():
            assert set(forms) == {"go", "jinja"}, (example["name"], name)


@pytest.mark.parametrize(("example", "form"), _cases())
def test_fork_example_renders_as_the_fork(
    example: dict[str, Any], form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (example.get("env") or {}).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    templates = tmp_path / "templates"
    syntax = "go" if form == "go" else "jinja"
    for name, forms in {**example.get("files", {}), "main.tmpl": {syntax: example[form]}}.items():
        path = templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(forms[syntax])
    renderer = Renderer(templates, syntax=syntax)
    store = KVStore(example.get("store") or {})
    if "error" in example:
        with pytest.raises(TemplateError, match=example["error"]):
            renderer.render("main.tmpl", store)
        return
    assert renderer.render("main.tmpl", store).text == _expected(example["expected"])
