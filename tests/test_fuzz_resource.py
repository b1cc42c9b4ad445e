"""Property-based fuzzing of the template resource parser: any input is a resource or a
`ConfigError` naming the file, never another exception (which would reach the user as a
traceback)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confd.config.resource import TemplateResource, load_resource, load_resources
from confd.errors import ConfigError

FIELDS = [
    "src", "dest", "keys", "prefix", "mode", "uid", "gid", "owner", "group", "check_cmd",
    "reload_cmd", "check_cmd_timeout", "reload_cmd_timeout", "wait", "min_reload_interval",
]  # fmt: skip
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_paths = st.sampled_from(
    ["app.tmpl", "../app.tmpl", "/etc/passwd", "sub/../app.tmpl", "", ".", "nope", "app.tmpl\0"]
)
_scalars = st.one_of(
    _text,
    _paths,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["644", "0644", "0o7777", "999", "2s", "1s:3s", "-1s", "root", "10m"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=3)
    ),
    max_leaves=6,
)
_tables = st.dictionaries(st.one_of(st.sampled_from(FIELDS), _text), _values, max_size=10)


def toml_key(key: str) -> str:
    return json.dumps(key)


def toml_value(value: Any) -> str:
    """A TOML inline rendering of a fuzzed value (enough TOML for these shapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON strings are valid TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def document(template: dict[str, Any], backend: dict[str, Any] | None) -> str:
    lines = ["[template]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in template.items()]
    if backend is not None:
        lines += ["[backend]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in backend.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "conf.d").mkdir()
    (root / "templates" / "sub").mkdir(parents=True)
    (root / "templates" / "app.tmpl").write_text("x\n")
    (root / "templates" / "loop.tmpl").symlink_to("loop.tmpl")
    return root


def parse(confdir: Path, data: bytes) -> TemplateResource | None:
    """Load `data` as a resource file; None for a ConfigError, which must name the file."""
    path = confdir / "conf.d" / "fuzz.toml"
    path.write_bytes(data)
    try:
        return load_resource(path, confdir / "templates", prefix="/global")
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), f"error does not name the file: {exc}"
        return None


def check_resource(resource: TemplateResource | None, confdir: Path) -> None:
    if resource is None:
        return
    templates = (confdir / "templates").resolve()
    assert resource.src_path.is_relative_to(templates)
    assert resource.src_path.is_file()
    assert resource.dest.is_absolute()
    assert resource.prefix.startswith("/global")
    assert resource.mode is None or 0 <= resource.mode <= 0o7777
    assert resource.check_cmd_timeout >= 0 and resource.reload_cmd_timeout >= 0
    for key in resource.backend_keys():
        assert key.startswith("/") and "/../" not in key + "/"


SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    template=_tables,
    backend=st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "nodes", "x"]), _values)),
)
def test_fuzz_tables_give_a_resource_or_a_config_error(
    confdir: Path, template: dict[str, Any], backend: dict[str, Any] | None
) -> None:
    check_resource(parse(confdir, document(template, backend).encode()), confdir)


@SETTINGS
@given(
    template=st.fixed_dictionaries(
        {"src": st.just("app.tmpl"), "dest": st.just("out.conf")},
        optional={field: _values for field in FIELDS[2:]},
    )
)
def test_fuzz_valid_skeleton_with_fuzzed_fields(confdir: Path, template: dict[str, Any]) -> None:
    """src and dest are fine, so every other field's validation is what gets exercised."""
    check_resource(parse(confdir, document(template, None).encode()), confdir)


_hostile_paths = st.one_of(
    _paths,
    st.sampled_from(["loop.tmpl", "sub", "sub/", "app.tmpl/..", "~/x", "\\..\\x", "a\0b"]),
    st.lists(st.sampled_from(["..", ".", "app.tmpl", "sub", "", "\0", "é", "loop.tmpl"]),
             max_size=4).map("/".join),
    _text,
)


@SETTINGS
@given(src=_hostile_paths, dest=_hostile_paths)
def test_fuzz_src_and_dest_paths(confdir: Path, src: str, dest: str) -> None:
    """Only src and dest set, so the path checks themselves are what gets exercised."""
    text = f"[template]\nsrc = {json.dumps(src)}\ndest = {json.dumps(dest)}\n"
    check_resource(parse(confdir, text.encode()), confdir)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_fuzz_raw_bytes(confdir: Path, data: bytes) -> None:
    check_resource(parse(confdir, data), confdir)


_line = st.one_of(
    st.sampled_from([
        "[template]", "[backend]", "[template.x]", "[[template]]", 'src = "app.tmpl"',
        'dest = "out.conf"', 'keys = ["/a", "/../b"]', 'mode = "0644"', "mode = 644", "uid = 0",
        'prefix = "/../.."', 'wait = "1s:2s"', 'name = "env"', "src = 'app.tmpl", "= 1", "\x00",
        'owner = "root"', "check_cmd_timeout = 1e309", "keys = [[]]", "\ufeff[template]",
    ]),  # fmt: skip
    _text,
)


@SETTINGS
@given(lines=st.lists(_line, max_size=12))
def test_fuzz_line_soup(confdir: Path, lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    check_resource(parse(confdir, data), confdir)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.binary(max_size=80), max_size=5))
def test_fuzz_load_resources_collects_every_bad_file(tmp_path: Path, files: list[bytes]) -> None:
    confdir = tmp_path / "c"
    for old in (confdir / "conf.d").glob("*.toml") if confdir.exists() else []:
        old.unlink()
    (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (confdir / "templates").mkdir(exist_ok=True)
    for index, data in enumerate(files):
        (confdir / "conf.d" / f"{index}.toml").write_bytes(data)
    resources, errors = load_resources(confdir)
    assert len(resources) + len(errors) == len(files)
