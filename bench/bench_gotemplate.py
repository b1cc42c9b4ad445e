# ruff: noqa: E501 - the benchmark templates are quoted whole
"""Go templates against their hand-written Jinja equivalents: render and load cost.

Each case is one realistic template written twice, as a Go confd user wrote it and as a person
would write it in Jinja; both render the same store to the same text (checked). Figures are
microseconds per render (median of `--runs` timings of `--loops` renders each, the function
map built per render as confd does) and milliseconds to parse and compile, and the ratio
Go / Jinja, whose target (issue #11) is <= 1.5 for rendering.

Also the cost of importing each front end in a fresh interpreter (the `--onetime` concern).

Run: .venv/bin/python bench/bench_gotemplate.py [--runs 15] [--loops 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from common import emit, machine, user_env

from confd.template.functions import template_functions
from confd.template.golang.functions import SIGNATURES, go_functions
from confd.template.golang.template import GoTemplate
from confd.template.store import KVStore

APPS = 20
SERVERS = 5


def store() -> KVStore:
    values = {}
    for a in range(APPS):
        app = f"/apps/app{a:02d}"
        values[f"{app}/port"] = str(8000 + a)
        values[f"{app}/host"] = f"app{a}.example.com"
        if a % 3 == 0:
            values[f"{app}/ssl"] = "on"
        for s in range(SERVERS):
            values[f"{app}/servers/s{s}"] = f"10.0.{a}.{s}:8080"
        values[f"/services/svc{a:02d}"] = (
            f'{{"name": "svc{a}", "port": {9000 + a}, "weight": {a % 4}, '
            f'"tags": ["a", "b"], "enabled": {"true" if a % 2 else "false"}}}'
        )
    for k in range(40):
        values[f"/config/key{k:02d}"] = f"value {k}"
    return KVStore(values)


CASES: dict[str, tuple[str, str]] = {
    "nginx": (
        """{{- range $app := lsdir "/apps" }}
upstream {{ $app }} {
{{- range gets (printf "/apps/%s/servers/*" $app) }}
    server {{ .Value }};
{{- end }}
}
server {
    listen {{ getv (printf "/apps/%s/port" $app) "80" }};
    server_name {{ getv (printf "/apps/%s/host" $app) }};
    {{- if exists (printf "/apps/%s/ssl" $app) }}
    ssl on;
    {{- end }}
}
{{ end -}}
""",
        """{%- for app in lsdir("/apps") %}
upstream {{ app }} {
{%- for kv in gets("/apps/" ~ app ~ "/servers/*") %}
    server {{ kv.value }};
{%- endfor %}
}
server {
    listen {{ getv("/apps/" ~ app ~ "/port", "80") }};
    server_name {{ getv("/apps/" ~ app ~ "/host") }};
    {%- if exists("/apps/" ~ app ~ "/ssl") %}
    ssl on;
    {%- endif %}
}
{% endfor -%}
""",
    ),
    "haproxy": (
        """{{- range $i, $kv := gets "/apps/*/servers/*" }}
{{- $parts := split $kv.Value ":" }}
    server web{{ $i }} {{ index $parts 0 }}:{{ index $parts 1 }} check{{ if eq (index $parts 1) "8080" }} backup{{ else }} weight 10{{ end }}
{{- end }}
""",
        """{%- for kv in gets("/apps/*/servers/*") %}
{%- set parts = split(kv.value, ":") %}
    server web{{ loop.index0 }} {{ parts[0] }}:{{ parts[1] }} check{% if parts[1] == "8080" %} backup{% else %} weight 10{% endif %}
{%- endfor %}
""",
    ),
    "json": (
        """{{- range getvs "/services/*" }}{{ $s := json . }}
service {{ $s.name }} port={{ $s.port }} weight={{ $s.weight }}{{ if $s.enabled }} enabled{{ end }} tags={{ join $s.tags "," }}
{{- end }}
""",
        """{%- for v in getvs("/services/*") %}{% set s = json(v) %}
service {{ s.name }} port={{ s.port }} weight={{ s.weight }}{% if s.enabled %} enabled{% endif %} tags={{ join(s.tags, ",") }}
{%- endfor %}
""",
    ),
    "keys": (
        "".join(f'key{k:02d} = {{{{ getv "/config/key{k:02d}" }}}}\n' for k in range(40)),
        "".join(f'key{k:02d} = {{{{ getv("/config/key{k:02d}") }}}}\n' for k in range(40)),
    ),
}


def jinja_env():  # noqa: ANN201 - the environment confd renders Jinja templates with
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    try:
        from confd.template.printing import finalize
    except ImportError:  # before Go-style printing exists
        finalize = None
    return SandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
        finalize=finalize,
    )  # fmt: skip


SHARED = "confd.template.store, confd.template.functions, json, datetime"  # loaded whichever front end


def import_ms(modules: str, runs: int) -> float:
    """Median time a fresh interpreter takes to import `modules` once SHARED is loaded."""
    code = (f"import time, {SHARED}; t = time.perf_counter(); import {modules}; "
            "print(time.perf_counter() - t)")  # fmt: skip
    env = user_env()
    samples = []
    for _ in range(runs):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True)  # fmt: skip
        samples.append(float(run.stdout) * 1000)
    return statistics.median(samples)


def per_call_us(fn: Callable[[], object], runs: int, loops: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - started) / loops * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--loops", type=int, default=200)
    args = parser.parse_args()
    kv = store()
    env = jinja_env()
    results: dict[str, object] = {}
    for name, (go_source, jinja_source) in CASES.items():
        go = GoTemplate.parse(go_source, name, SIGNATURES)
        jinja = env.from_string(jinja_source)

        def render_go(go: GoTemplate = go) -> str:
            return go.execute(go_functions(kv.view()))

        def render_jinja(jinja=jinja) -> str:  # noqa: ANN001
            return jinja.render(template_functions(kv.view()))

        if render_go() != render_jinja():
            raise SystemExit(f"{name}: the Go and Jinja templates render different text")
        go_us = per_call_us(render_go, args.runs, args.loops)
        jinja_us = per_call_us(render_jinja, args.runs, args.loops)
        go_load = per_call_us(lambda s=go_source: GoTemplate.parse(s, "t", SIGNATURES), 5, 10)
        jinja_load = per_call_us(lambda s=jinja_source: env.from_string(s), 5, 10)
        results[name] = {
            "render_us": {"go": round(go_us, 1), "jinja": round(jinja_us, 1)},
            "render_ratio": round(go_us / jinja_us, 2),
            "load_ms": {"go": round(go_load / 1000, 2), "jinja": round(jinja_load / 1000, 2)},
            "output_bytes": len(render_go()),
        }
    worst = max(r["render_ratio"] for r in results.values())  # type: ignore[index]
    imports = {
        # What a render needs loaded, beyond the store and confd's functions (both share those).
        "go_front_end": round(import_ms(
            "confd.template.golang.template, confd.template.golang.functions", 7), 1),
        "jinja_sandbox": round(import_ms("jinja2.sandbox", 7), 1),
    }
    emit("gotemplate", {"machine": machine(), "cases": results, "worst_render_ratio": worst,
                        "target_render_ratio": 1.5, "import_ms": imports})  # fmt: skip


if __name__ == "__main__":
    main()
