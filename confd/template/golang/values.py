"""How Python values stand for Go values in Go templates, and what a template may reach in them.

Go value        Python value
string          str (bytes that are not UTF-8 as surrogate escapes)
int, float64    int, float (never bool: Go's bool is not a number)
uint8           `Uint8` (what `index` and `slice` give for a string's bytes)
bool, nil       bool, None (a missing map key is None too: Go prints both as `<no value>`)
slice, map      list, dict (map keys sorted whenever Go sorts them)
structs         registered types: `KVPair` (`.Key`, `.Value`), `SRV` (`*net.SRV`), `GoTime`...

Only registered types' Go fields and methods are reachable (`.Key`, `.Format`), and the keys of
dicts: no Python attribute, dunder or arbitrary object is, the same sandbox spirit as Jinja's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confd.template.functions import SRV
from confd.template.golang import gotime
from confd.template.store import KVPair

__all__ = ["GoStruct", "STRUCTS", "Uint8", "go_type_name", "register_struct"]


class Uint8(int):
    """A Go byte (`uint8`), as `index "abc" 0` returns: unsigned in comparisons and printing."""

    __slots__ = ()


class GoStruct:
    """What a template may reach in one Python type standing for a Go struct (or pointer)."""

    __slots__ = ("name", "fields", "methods", "pointer")

    def __init__(
        self,
        name: str,
        fields: dict[str, Callable[[Any], Any]],
        methods: dict[str, tuple[str, tuple[str, ...]]],
        pointer: bool = False,
    ) -> None:
        self.name = name  # the Go type name used in messages, e.g. "memkv.KVPair"
        self.fields = fields  # Go field name -> getter, in declaration order (for printing)
        self.methods = methods  # Go method name -> (Python method name, Go parameter types)
        self.pointer = pointer  # printed as &{...} at top level, as Go prints a *T


STRUCTS: dict[type, GoStruct] = {}


def register_struct(cls: type, struct: GoStruct) -> None:
    """Make `cls` values reachable from Go templates as the Go type `struct` describes."""
    STRUCTS[cls] = struct


register_struct(
    KVPair,
    GoStruct("memkv.KVPair", {"Key": lambda kv: kv.key, "Value": lambda kv: kv.value}, {}),
)
register_struct(
    SRV,
    GoStruct(
        "*net.SRV",
        {
            "Target": lambda r: r.target,
            "Port": lambda r: r.port,
            "Priority": lambda r: r.priority,
            "Weight": lambda r: r.weight,
        },
        {},
        pointer=True,
    ),
)
for _cls, _name in (
    (gotime.GoTime, "time.Time"),
    (gotime.Duration, "time.Duration"),
    (gotime.GoLocation, "*time.Location"),
    (gotime.Month, "time.Month"),
    (gotime.Weekday, "time.Weekday"),
):
    _methods = getattr(_cls, "GO_METHODS", {"String": ("go_string", ())})
    register_struct(_cls, GoStruct(_name, {}, _methods))


_SCALAR_NAMES = {str: "string", int: "int", float: "float64", bool: "bool", complex: "complex128",
                 Uint8: "uint8"}  # fmt: skip


def go_type_name(value: Any) -> str:
    """The Go type `value` stands for, as Go writes it in messages (`%!d(string=x)`)."""
    cls = type(value)
    name = _SCALAR_NAMES.get(cls)
    if name is not None:
        return name
    struct = STRUCTS.get(cls)
    if struct is not None:
        return struct.name
    if value is None:
        return "<nil>"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        if value and all(type(v) is str for v in value):
            return "[]string"
        if value and all(type(v) is KVPair for v in value):
            return "[]memkv.KVPair"
        if value and all(type(v) is int for v in value):
            return "[]int"
        if not value:
            return "[]string"
        return "[]interface {}"
    if callable(value):
        return "func"
    return cls.__name__
