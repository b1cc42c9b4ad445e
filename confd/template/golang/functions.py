"""confd's function set as Go templates see it: Go signatures, and Go-typed results.

The implementations are the shared ones (`confd.template.functions.template_functions`); this module
only adds what Go templates need on top: each function's Go signature (so a call is checked the
way Go's text/template checks it, with Go's messages) and the few results whose Go type differs
from the Python value: `datetime` gives a `GoTime`, `json`/`jsonArray` numbers are float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from confd.template.functions import template_functions
from confd.template.golang.gotime import GoTime
from confd.template.store import KVView
from confd.template.utility_functions import GO_SIGNATURES

__all__ = ["BUILTIN_SIGNATURES", "SIGNATURES", "Signature", "go_functions"]


class Signature(NamedTuple):
    """A Go function type: parameter types, the `...` element type, the result type."""

    params: tuple[str, ...]
    variadic: str | None = None
    result: str = "interface {}"
    error: bool = False  # returns (result, error)
    pass_args: int | None = None  # most arguments the Python callable takes (Go passes more)

    def describe(self) -> str:
        """As Go writes the type: `func(string, ...string) (string, error)`."""
        params = list(self.params)
        if self.variadic is not None:
            params.append("..." + self.variadic)
        result = f"({self.result}, error)" if self.error else self.result
        return f"func({', '.join(params)}) {result}"


_S = "string"
_I = "int"

# Go's own builtins (text/template funcs.go), as its evalCall checks them.
BUILTIN_SIGNATURES: dict[str, Signature] = {
    "and": Signature(("reflect.Value",), "reflect.Value", "reflect.Value"),
    "or": Signature(("reflect.Value",), "reflect.Value", "reflect.Value"),
    "not": Signature(("reflect.Value",), None, "bool"),
    "len": Signature(("reflect.Value",), None, "int", True),
    "index": Signature(("reflect.Value",), "reflect.Value", "reflect.Value", True),
    "slice": Signature(("reflect.Value",), "reflect.Value", "reflect.Value", True),
    "call": Signature(("reflect.Value",), "reflect.Value", "reflect.Value", True),
    "eq": Signature(("reflect.Value",), "reflect.Value", "bool", True),
    "ne": Signature(("reflect.Value", "reflect.Value"), None, "bool", True),
    "lt": Signature(("reflect.Value", "reflect.Value"), None, "bool", True),
    "le": Signature(("reflect.Value", "reflect.Value"), None, "bool", True),
    "gt": Signature(("reflect.Value", "reflect.Value"), None, "bool", True),
    "ge": Signature(("reflect.Value", "reflect.Value"), None, "bool", True),
    "print": Signature((), "interface {}", _S),
    "println": Signature((), "interface {}", _S),
    "printf": Signature((_S,), "interface {}", _S),
    "html": Signature((), "interface {}", _S),
    "js": Signature((), "interface {}", _S),
    "urlquery": Signature((), "interface {}", _S),
}

# confd's functions: Go confd's template_funcs.go and memkv's store.go.
SIGNATURES: dict[str, Signature] = {
    "base": Signature((_S,), None, _S),
    "dir": Signature((_S,), None, _S),
    "split": Signature((_S, _S), None, "[]string"),
    "join": Signature(("[]string", _S), None, _S),
    "json": Signature((_S,), None, "map[string]interface {}", True),
    "jsonArray": Signature((_S,), None, "[]interface {}", True),
    "map": Signature((), "interface {}", "map[string]interface {}", True),
    "getenv": Signature((_S,), _S, _S, pass_args=2),
    "datetime": Signature((), None, "time.Time"),
    "toUpper": Signature((_S,), None, _S),
    "toLower": Signature((_S,), None, _S),
    "contains": Signature((_S, _S), None, "bool"),
    "replace": Signature((_S, _S, _S, _I), None, _S),
    "trimSuffix": Signature((_S, _S), None, _S),
    "trimPrefix": Signature((_S, _S), None, _S),
    "lookupIP": Signature((_S,), None, "[]string"),
    "lookupIPV4": Signature((_S,), None, "[]string"),
    "lookupIPV6": Signature((_S,), None, "[]string"),
    "lookupSRV": Signature((_S, _S, _S), None, "[]*net.SRV"),
    "fileExists": Signature((_S,), None, "bool"),
    "base64Encode": Signature((_S,), None, _S),
    "base64Decode": Signature((_S,), None, _S, True),
    "parseBool": Signature((_S,), None, "bool", True),
    "atoi": Signature((_S,), None, _I, True),
    "seq": Signature((_I, _I), None, "[]int"),
    "reverse": Signature(("interface {}",), None, "interface {}"),
    "sortByLength": Signature(("[]string",), None, "[]string"),
    "sortKVByLength": Signature(("[]memkv.KVPair",), None, "[]memkv.KVPair"),
    "add": Signature((_I, _I), None, _I),
    "sub": Signature((_I, _I), None, _I),
    "mul": Signature((_I, _I), None, _I),
    "div": Signature((_I, _I), None, _I),
    "mod": Signature((_I, _I), None, _I),
    "exists": Signature((_S,), None, "bool"),
    "ls": Signature((_S,), None, "[]string"),
    "lsdir": Signature((_S,), None, "[]string"),
    "get": Signature((_S,), None, "memkv.KVPair", True),
    "gets": Signature((_S,), None, "[]memkv.KVPair", True),
    "getv": Signature((_S,), _S, _S, True, pass_args=2),
    "getvs": Signature((_S,), None, "[]string", True),
}


# The fork's utility set (one implementation, `confd.template.utility_functions`), with the Go
# types its functions have there.
SIGNATURES.update(
    (name, Signature(params, variadic, result, error))
    for name, (params, variadic, result, error) in GO_SIGNATURES.items()
)


def _float_numbers(value: Any) -> Any:
    """JSON as Go decodes it into interface{}: every number is a float64."""
    cls = type(value)
    if cls is int:
        return float(value)
    if cls is dict:
        return {k: _float_numbers(v) for k, v in value.items()}
    if cls is list:
        return [_float_numbers(v) for v in value]
    return value


def _go_result(name: str, fn: Callable[..., Any], convert: Callable[[Any], Any]) -> Callable:
    def call(*args: Any) -> Any:
        return convert(fn(*args))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = fn.__doc__
    return call


_RESULTS: dict[str, Callable[[Any], Any]] = {
    "datetime": GoTime.now_from,
    "json": _float_numbers,
    "jsonArray": _float_numbers,
    "fromJson": _float_numbers,
}


def go_functions(
    view: KVView, include: Callable[..., str] | None = None
) -> dict[str, Callable[..., Any]]:
    """The function map for one Go template render: confd's functions bound to `view` (and
    `include`, rendering other templates through the same view, when given)."""
    functions = template_functions(view, include)
    for name, convert in _RESULTS.items():
        functions[name] = _go_result(name, functions[name], convert)
    return functions
