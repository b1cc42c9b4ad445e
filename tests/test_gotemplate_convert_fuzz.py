"""Property: a Go template that converts renders, as Jinja, exactly what the Go front end renders.

Templates are built from text that means something to Jinja or sits next to trim markers
(`{%`, `{#`, `{`, `\\r\\n`, Unicode spaces Go does not trim), actions with and without trim
markers, comments, variables, and nested range/if/else if/with blocks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confd.template.golang.convert import JINJA_HELPERS, convert
from confd.template.golang.errors import GoSyntaxError
from confd.template.golang.functions import SIGNATURES, go_functions
from confd.template.golang.template import GoTemplate
from confd.template.renderer import Renderer
from confd.template.store import KVStore

STORE = KVStore({"/a": "x", "/b/c": "1", "/b/d": "2", "/j": '{"n": 5, "s": "t", "l": [1, 2]}'})

TEXT = st.lists(
    st.sampled_from([" ", "\n", "\t", "\r\n", "\u00a0", "\u2003", "\v", "{", "}", "%", "#", "a",
                     "{%", "{#", "#}", "%}", "b c", "-"]),  # fmt: skip
    min_size=1, max_size=4,
).map("".join)
ACTION = st.sampled_from([
    '{{ getv "/a" }}', '{{- getv "/a" }}', '{{ getv "/a" -}}', "{{- 1 -}}", "{{/* c */}}",
    "{{- /* c */ -}}", '{{ "{%" }}', "{{ `x` }}", '{{ $v := getv "/a" }}', "{{- true }}",
    '{{ printf "%s-%d" (getv "/a") 3 }}', '{{ printf "%5.1f|%q" 2.25 "q" }}',
    '{{ (json (getv "/j")).n }}', '{{ $d := json (getv "/j") }}{{ $d.l }} {{ $d.s }}',
    '{{ len (ls "/b") }}', '{{ index (split "a,b" ",") 1 }}',
])  # fmt: skip
BLOCKS = [
    ('{{ range gets "/b/*" }}{{ .Key }}', "{{ end }}"),
    ('{{- if exists "/a" -}}', "{{- else if exists \"/b/c\" }}", "{{ else -}}", "{{- end }}"),
    ('{{ with getv "/a" }}{{ . }}', "{{ else }}", "{{ end -}}"),
    ('{{ range $i, $e := ls "/b" }}{{ $i }}{{ $e }}', "{{- end -}}"),
    ('{{ $n := 0 }}{{ range ls "/b" }}{{ $n = add $n 1 }}', "{{ end }}{{ $n }}"),
    ('{{ range $k, $v := json (getv "/j") }}{{ $k }}', "{{ end }}"),
]


@st.composite
def templates(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 9))
        if kind < 4:
            parts.append(draw(TEXT))
        elif kind < 8 or depth >= 2:
            parts.append(draw(ACTION))
        else:
            block = draw(st.sampled_from(BLOCKS))
            parts.append(block[0])
            for marker in block[1:]:
                parts.append(draw(templates(depth + 1)))
                parts.append(marker)
    return "".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(templates())
def test_converted_template_renders_like_the_go_one(source: str) -> None:
    try:
        native = GoTemplate.parse(source, "t", SIGNATURES).execute(go_functions(STORE.view()))
    except GoSyntaxError:
        return  # the generator can write a template Go refuses (e.g. a variable out of scope)
    converted = convert(source, "t", SIGNATURES)
    if converted.text is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "t.j2").write_bytes(converted.text.encode())
        rendered = Renderer(Path(tmp)).render("t.j2", STORE, JINJA_HELPERS).text
    assert rendered == native, converted.text
