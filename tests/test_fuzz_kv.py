"""Property-based fuzzing of the KV functions as templates call them, over hostile keys and
values: any unicode, control characters, `..`, template and shell syntax. tests/test_kvstore.py
fuzzes the store's pattern semantics on a small alphabet; here the point is that a render gives
the values verbatim or a `TemplateError`, never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confd.config.resource import TemplateResource, join_key, store_key
from confd.errors import TemplateError
from confd.template.renderer import Renderer
from confd.template.store import KVStore, clean_key

_chars = st.characters(exclude_categories=("Cs",))
_segments = st.one_of(
    st.text(_chars, min_size=1, max_size=6),
    st.sampled_from(["..", ".", "", "*", "[", "\\", "{{", "$(x)", "é", "🎉", "\x00", "\n"]),
)
_keys = st.lists(_segments, min_size=1, max_size=4).map(lambda parts: "/".join(parts))
_values = st.one_of(
    st.text(_chars, max_size=40),
    st.sampled_from(["{{ 7*7 }}", "{% raw %}", "$(touch /tmp/x)", "`id`", "\x00\xff", ""]),
)
_stores = st.dictionaries(_keys, _values, max_size=8)

TEMPLATE = """\
{%- for k in names %}
{%- if exists(k) %}[{{ getv(k) }}]{% else %}[-{{ getv(k, "DEF") }}]{% endif %}
{%- endfor %}
{%- for kv in gets(probe) %}<{{ kv.key }}={{ kv.value }}>{% endfor %}
{{- getvs(probe) | length }}|{{ ls(probe) | length }}|{{ lsdir(probe) | length }}
"""


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    templates = tmp_path_factory.mktemp("templates")
    (templates / "kv.tmpl").write_text(TEMPLATE)
    return Renderer(templates, syntax="jinja")


FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(values=_stores, probe=_keys)
def test_fuzz_render_gives_values_verbatim_or_a_template_error(
    renderer: Renderer, values: dict[str, str], probe: str
) -> None:
    store = KVStore(values)
    keys = list(store.snapshot())
    try:
        text = renderer.render("kv.tmpl", store, {"names": keys, "probe": probe}).text
    except TemplateError as exc:
        assert "kv.tmpl" in str(exc)
        return
    expected = "".join(f"[{store.view().get(k).value}]" for k in keys)
    assert text.startswith(expected)


@FUZZ
@given(values=_stores)
def test_fuzz_getv_returns_the_stored_value_exactly(
    renderer: Renderer, values: dict[str, str]
) -> None:
    store = KVStore(values)
    for key, value in store.snapshot().items():
        rendered = renderer.render("kv.tmpl", store, {"names": [key], "probe": "/"}).text
        assert rendered.startswith(f"[{value}]")


@settings(max_examples=300, deadline=None)
@given(key=_keys, prefix=_keys)
def test_fuzz_keys_with_dotdot_stay_under_the_root(key: str, prefix: str) -> None:
    """`..` in keys and prefixes is cleaned like Go's path.Join: never above `/`."""
    joined = join_key(prefix, key)
    assert joined.startswith("/")
    assert ".." not in joined.split("/")
    assert clean_key(joined) == joined
    seen = store_key(joined, join_key(prefix))
    assert seen.startswith("/") and ".." not in seen.split("/")


@settings(max_examples=500, deadline=None)
@given(key=_keys, prefix=st.one_of(_keys, st.sampled_from(["", "/", "/a", "/a/b", "/x."])))
def test_fuzz_store_key_is_path_join_of_the_key_without_its_prefix(key: str,
                                                                    prefix: str) -> None:
    """store_key's shortcut for keys already clean gives what Go's path.Join would."""
    assert store_key(key, prefix) == join_key(key.removeprefix(prefix))


@settings(max_examples=500, deadline=None)
@given(keys=st.lists(st.one_of(_keys, st.sampled_from(["", "/", "/a", "a/b", "/.x", "/x."])),
                     max_size=4),
       prefix=st.one_of(_keys, st.sampled_from(["", "/", "/a", "/a/", "a", "/x.", "//a"])))
def test_fuzz_backend_keys_are_path_join_of_prefix_and_key(keys: list[str], prefix: str) -> None:
    """backend_keys' shortcut for clean keys under a clean prefix gives what Go's path.Join
    would, for any prefix a resource can be built with (load_resource cleans it; code may not)."""
    resource = TemplateResource(
        path=Path("r.toml"), src="kv.tmpl", src_path=Path("kv.tmpl"), dest=Path("/tmp/x"),
        keys=tuple(keys), prefix=prefix,
    )
    assert resource.backend_keys() == [join_key(prefix, key) for key in keys]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(_keys, max_size=4), prefix=_keys, values=_stores)
def test_fuzz_resource_rerooting_never_raises(
    keys: list[str], prefix: str, values: dict[str, str]
) -> None:
    resource = TemplateResource(
        path=Path("r.toml"), src="kv.tmpl", src_path=Path("kv.tmpl"), dest=Path("/tmp/x"),
        keys=tuple(keys), prefix=join_key(prefix),
    )
    for key in resource.backend_keys():  # `..` may climb out of the prefix, as in Go confd
        assert key.startswith("/") and ".." not in key.split("/")
    rerooted = resource.to_store(values)
    assert all(k.startswith("/") for k in rerooted)
    assert set(rerooted.values()) <= set(values.values())
