"""Templates that differ only in their text and string literals share one compile
(`confd.template.shapes`), and render exactly what compiling each alone renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment
from jinja2.sandbox import SandboxedEnvironment

from confd.errors import TemplateError
from confd.template.renderer import Renderer
from confd.template.store import KVPair, KVStore

# S marks a string literal, T text between tags; each is filled with its own value
SKELETONS = [
    "T{{ getv(S) }}T{{ getv(S, S) }}T",
    "{% for kv in gets(S) %}T{{ kv.key }}T{{ kv.value }}\n{% endfor %}",
    "{{ S|upper }}T",  # folded by the compiler: compiled alone
    "{% if S %}T{% else %}T{% endif %}",  # a constant test
    "{{ S ~ S }}T",
    "{{ (S ~ S)|lower }}T",  # folded, and the marks would survive it: must not be shared
    "{{ (getv(S) ~ S)|lower }}",
    "{{ getv(S) ~ S }}",
    "{{ getv(S)|replace(S, S) }}",
    "{% set x = S %}{{ x }}T{{ x|length }}",
    "{{ S in getv(S) }}{{ getv(S) == S }}",
    "{{ (S, S)|join(S) }}",
    "{% macro m(a=S) %}T{{ a }}{% endmacro %}{{ m() }}{{ m(S) }}",
    "{{ S if getv(S) else S }}",
    "{{ {S: S}[S]|default(S) }}",
    '{{ "%s:%s"|format(getv(S), S) }}{{ S|format(S) }}',
    "{{ getv(S)[0:2] }}T{{ getv(S)[S]|default(S) }}",
    "{%- if getv(S) -%}  T  {%- endif %}T",
    "{% raw %}T{% endraw %}{{ getv(S) }}",
    "T\nT\n{{ getv(S) }}\nT",
    "{{ S }}{{ getv(S) }}",  # a printed constant goes through finalize
    "{{ getv(S S) }}T{{ getv(S, S S S) }}",  # adjacent strings: one literal of several tokens
]
TEXT = st.text(alphabet="abc XYZ019 _-.:,;!?()[]'\"\\\n\t/", max_size=12)
STRING = st.text(alphabet="abc XYZ019 _-.:,;%s!?()[]{}/", max_size=8)


def _getv(key: str, default: str | None = None) -> str:
    return f"v:{key}" if key.startswith("a") else (default if default is not None else "")


def _gets(pattern: str) -> list[KVPair]:
    return [KVPair(f"{pattern}/1", "one"), KVPair(f"{pattern}/2", "two")]


CONTEXT = {"getv": _getv, "gets": _gets}


def fill(skeleton: str, texts: list[str], strings: list[str]) -> str:
    """`skeleton` with each T and S replaced, in order, by the next text or string literal."""
    t, s = iter(texts), iter(strings)
    return "".join(next(t) if c == "T" else repr(next(s)) if c == "S" else c for c in skeleton)


def outcome(environment: Environment, code: Any) -> str:
    template = environment.template_class.from_code(environment, code,
                                                    environment.make_globals(None))
    try:
        return "ok " + template.render(CONTEXT)
    except Exception as exc:  # noqa: BLE001 - the same error either way is what counts
        return f"{type(exc).__name__} {exc}"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    """confd's environment, kept across examples so later ones reuse shapes."""
    return Renderer(tmp_path_factory.mktemp("templates"), "jinja")._env


@pytest.mark.parametrize("skeleton", SKELETONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_shared_compile_renders_what_compiling_alone_renders(
    environment: Environment, skeleton: str, data: st.DataObject
) -> None:
    for n in range(3):  # several templates of the shape: the second and third reuse it
        texts = data.draw(st.lists(TEXT, min_size=skeleton.count("T"),
                                   max_size=skeleton.count("T")))
        strings = data.draw(st.lists(STRING, min_size=skeleton.count("S"),
                                     max_size=skeleton.count("S")))
        source = fill(skeleton, texts, strings)
        name = f"t{n}.tmpl"
        alone = SandboxedEnvironment.compile(environment, source, name, f"/x/{name}")
        shared = environment.compile(source, name, f"/x/{name}")
        assert outcome(environment, shared) == outcome(environment, alone), source
        assert shared.co_filename == f"/x/{name}"


STORE = KVStore({f"/svc/{i}/{k}": f"{k}-{i}" for i in range(30) for k in ("host", "port")})


def generated(folder: Path, count: int) -> None:
    """`count` templates as a generator writes them: one shape, a name and keys apart."""
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"svc{i}.tmpl").write_text(
            f"# service {i}\nserver {{{{ getv(\"/svc/{i}/host\") }}}}:"
            f"{{{{ getv(\"/svc/{i}/port\") }}}}\n"
            f"{{% for kv in gets(\"/svc/{i}/*\") %}}{{{{ kv.key }}}}={{{{ kv.value }}}}\n"
            "{% endfor %}")


def test_templates_of_one_shape_compile_once(tmp_path: Path, compiles) -> None:
    generated(tmp_path / "templates", 30)
    renderer = Renderer(tmp_path / "templates", "auto")
    for i in range(30):
        text = renderer.render(f"svc{i}.tmpl", STORE).text
        assert text == (f"# service {i}\nserver host-{i}:port-{i}\n"
                        f"/svc/{i}/host=host-{i}\n/svc/{i}/port=port-{i}\n")
    assert len(compiles) == 1  # the shape, compiled for the first template


def jinja_renderer(tmp_path: Path, files: dict[str, str]) -> Renderer:
    """A Jinja renderer over a templates folder holding `files`."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return Renderer(folder, "jinja")


def test_an_error_names_the_file_and_line_of_its_own_template(
    tmp_path: Path, compiles
) -> None:
    renderer = jinja_renderer(tmp_path, {"a.tmpl": 'one\ntwo {{ getv("/svc/1/host") }}\n',
                                         "b.tmpl": 'uno\ndos {{ getv("/missing") }}\n'})
    assert renderer.render("a.tmpl", STORE).text == "one\ntwo host-1\n"
    with pytest.raises(TemplateError, match=r"b\.tmpl:2: .*/missing") as failed:
        renderer.render("b.tmpl", STORE)
    assert "a.tmpl" not in str(failed.value)
    assert len(compiles) == 1


def test_what_the_compiler_computes_is_never_shared(tmp_path: Path, compiles) -> None:
    renderer = jinja_renderer(tmp_path, {
        "a.tmpl": '{{ "abc"|upper }} {% if "" %}yes{% else %}no{% endif %}\n',
        "b.tmpl": '{{ "xyz"|upper }} {% if "x" %}yes{% else %}no{% endif %}\n'})
    assert renderer.render("a.tmpl", STORE).text == "ABC no\n"
    assert renderer.render("b.tmpl", STORE).text == "XYZ yes\n"
    assert compiles == ["a.tmpl", "b.tmpl"]


def test_a_syntax_error_is_reported_as_jinja_reports_it(tmp_path: Path) -> None:
    renderer = jinja_renderer(tmp_path, {"bad.tmpl": 'fine\n{{ getv("/x") }\n'})
    with pytest.raises(TemplateError, match=r"bad\.tmpl:2: "):
        renderer.render("bad.tmpl", STORE)
