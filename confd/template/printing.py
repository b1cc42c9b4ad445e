"""How `{{ value }}` prints in Jinja templates: the way Go confd prints it.

Passed to the Jinja environment as `finalize`, so every printed expression goes through it:
booleans print `true`/`false` (what TOML, JSON, YAML and nginx files need, and what Go prints),
floats, lists, maps and KV pairs print as Go's `fmt` does (`1e+06`, `[a b]`, `map[k:v]`,
`{key value}`), so a template converted from Go renders the same bytes. Printing None, an
undefined name or a function is an error naming what was printed, never `None` or
`<function datetime at 0x...>` in a config file.
"""

from __future__ import annotations

from typing import Any

from jinja2.exceptions import UndefinedError
from jinja2.runtime import Undefined

from confd.template.functions import SRV
from confd.template.store import KVPair

__all__ = ["finalize"]


def _describe_callable(value: Any) -> str:
    name = getattr(value, "__name__", None) or type(value).__name__
    return f"{name!r} is a function: call it, as {name}(...), to print its result"


def finalize(value: Any) -> Any:
    """The text Jinja prints for `value` (Go-style), or an error for None/undefined/functions."""
    cls = type(value)
    if cls is str or cls is int:
        return value
    if cls is bool:
        return "true" if value else "false"
    if value is None:
        raise UndefinedError(
            "printed None (a missing value, or JSON null): test it with `is none`, or give a "
            "default"
        )
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if cls is float or cls is list or cls is tuple or cls is dict or cls is KVPair or cls is SRV:
        from confd.template.golang.fmt import to_text  # loaded by templates that print these

        return to_text(value)
    if callable(value) and not hasattr(value, "__html__"):
        raise UndefinedError(_describe_callable(value))
    return value

