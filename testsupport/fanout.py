"""The fan-out workload of issue #13: many resources on few shared etcd prefixes, Jinja and Go.

Resource i reads prefix `/pPP` (PP = i % prefixes) with `keys = ["/"]`, so a render reads the
whole prefix, as Go confd users write it. Its template reads 9 keys of its own with `getv`
(`/rJJ/k0` .. `/rJJ/k8`, JJ = i // prefixes), the prefix's `/shared` key (read by every resource
of the prefix), and loops with `gets` over one of the prefix's two 25-key groups (`/gG/*`,
G = JJ % 2). With 1,000 resources and 20 prefixes: 50 resources and 501 keys per prefix
(450 own, 1 shared, 50 in groups), 10,020 keys in all.

The Jinja and Go templates render byte-identical files; `expected` says what each file holds for
given values, so the benchmark and the burst test check contents, not just renames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

OWN_KEYS = 9
GROUP_SIZE = 25
GROUPS = 2


class Resource(NamedTuple):
    """One resource of the workload: its number, prefix and what its template reads."""

    number: int
    prefix: str
    own: str  # the directory of its own keys, below the prefix: /rJJ
    group: str  # the group it loops over, below the prefix: /gG

    @property
    def name(self) -> str:
        return f"r{self.number:04d}"

    def own_key(self, k: int) -> str:
        """The database key of its k-th own key."""
        return f"{self.prefix}{self.own}/k{k}"

    @property
    def shared_key(self) -> str:
        return f"{self.prefix}/shared"


def layout(resources: int, prefixes: int, root: str = "") -> list[Resource]:
    """Resource i on prefix `root`/pPP (PP = i % prefixes), its own keys and group numbered
    within the prefix."""
    out = []
    for i in range(resources):
        j = i // prefixes
        out.append(Resource(i, f"{root}/p{i % prefixes:02d}", f"/r{j:02d}", f"/g{j % GROUPS}"))
    return out


def values(resources: list[Resource]) -> dict[str, str]:
    """Every key of the workload and its first value."""
    data: dict[str, str] = {}
    for r in resources:
        for k in range(OWN_KEYS):
            data[r.own_key(k)] = f"own-{r.number}-{k}"
        data[r.shared_key] = f"shared{r.prefix}"
        for g in range(GROUPS):
            for m in range(GROUP_SIZE):
                data[f"{r.prefix}/g{g}/m{m:02d}"] = f"group{r.prefix}-{g}-{m}"
    return data


def group_keys(resource: Resource) -> list[str]:
    """The database keys of the group `resource` loops over, in key order."""
    return [f"{resource.prefix}{resource.group}/m{m:02d}" for m in range(GROUP_SIZE)]


def expected(resource: Resource, data: Mapping[str, str]) -> str:
    """The file `resource` renders from `data` (both syntaxes)."""
    lines = [f"# resource {resource.number} on {resource.prefix}"]
    lines += [f"k{k} = {data[resource.own_key(k)]}" for k in range(OWN_KEYS)]
    lines.append(f"shared = {data[resource.shared_key]}")
    for key in group_keys(resource):
        if key in data:
            lines.append(f"{key.removeprefix(resource.prefix)} = {data[key]}")
    return "\n".join(lines) + "\n"


def jinja_template(resource: Resource) -> str:
    lines = [f"# resource {resource.number} on {resource.prefix}"]
    lines += [f'k{k} = {{{{ getv("{resource.own}/k{k}") }}}}' for k in range(OWN_KEYS)]
    lines.append('shared = {{ getv("/shared") }}')
    lines.append(f'{{% for kv in gets("{resource.group}/*") %}}{{{{ kv.key }}}} = '
                 '{{ kv.value }}\n{% endfor %}')
    return "\n".join(lines)


def go_template(resource: Resource) -> str:
    lines = [f"# resource {resource.number} on {resource.prefix}"]
    lines += [f'k{k} = {{{{getv "{resource.own}/k{k}"}}}}' for k in range(OWN_KEYS)]
    lines.append('shared = {{getv "/shared"}}')
    lines.append(f'{{{{range gets "{resource.group}/*"}}}}{{{{.Key}}}} = {{{{.Value}}}}\n'
                 '{{end}}')
    return "\n".join(lines)


def write_confdir(root: Path, out: Path, resources: list[Resource], *, go: bool = False) -> Path:
    """A confdir under `root` rendering every resource into `out/<name>.conf`."""
    confdir = root
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    for r in resources:
        text = go_template(r) if go else jinja_template(r)
        (confdir / "templates" / f"{r.name}.tmpl").write_text(text)
        (confdir / "conf.d" / f"{r.name}.toml").write_text(
            f'[template]\nsrc = "{r.name}.tmpl"\ndest = "{out}/{r.name}.conf"\n'
            f'prefix = "{r.prefix}"\nkeys = ["/"]\n'
        )
    return confdir
