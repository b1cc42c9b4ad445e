"""What compiled Go templates call at render time: Go's builtins, field access, type checks.

The builtins (`len index slice eq ne lt le gt ge not html js urlquery print printf println
call`) follow Go 1.19's rules and messages: `len`, `index` and `slice` work on a string's UTF-8
bytes, `eq` takes several operands, comparisons of incompatible kinds are errors. `and`/`or`
compile to Python's own short-circuit operators, whose truth is Go's for these values.
Field access reaches dict keys and the registered Go fields and methods of `values.STRUCTS`,
nothing else. Failures raise `ExecFailure` with Go's message; the executor adds where.
"""

from __future__ import annotations

from typing import Any

from confd.template.golang import fmt
from confd.template.golang.strconv import from_bytes, is_print, quote, to_bytes
from confd.template.golang.values import STRUCTS, Uint8, go_type_name
from confd.template.store import KVPair

__all__ = ["ExecFailure"]


class ExecFailure(Exception):
    """A template operation failed with Go's message; `node` overrides the failing node."""

    def __init__(self, message: str, node: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def fail(node: int, message: str, *evaluated: Any) -> Any:
    """Raise a failure known at compile time, after the operands Go evaluates first."""
    raise ExecFailure(message, node)


def undefined_function(name: str) -> Any:
    """Stands for a function the render's function map lacks (Go's check at call time)."""

    def missing(*args: Any) -> Any:
        raise ExecFailure(f"{quote(name)} is not a defined function")

    return missing


# -- values and printing -----------------------------------------------------------------------

to_text = fmt.to_text


def range_values(value: Any) -> Any:
    """The elements `{{range}}` visits: a list's items, a map's values in key order."""
    cls = type(value)
    if cls is list or cls is tuple:
        return value
    if cls is dict:
        return [v for _, v in fmt.sorted_items(value)]
    if value is None:
        return ()
    raise ExecFailure(f"range can't iterate over value of type {go_type_name(value)}")


def range_pairs(value: Any) -> Any:
    """(index or key, element) pairs for `{{range $i, $v := ...}}`."""
    cls = type(value)
    if cls is list or cls is tuple:
        return list(enumerate(value))
    if cls is dict:
        return fmt.sorted_items(value)
    if value is None:
        return ()
    raise ExecFailure(f"range can't iterate over value of type {go_type_name(value)}")


# -- fields and methods ------------------------------------------------------------------------


def _nil_pointer(name: str) -> ExecFailure:
    return ExecFailure(f"nil pointer evaluating interface {{}}.{name}")


def _call_method(obj: Any, name: str, pyname: str, params: tuple[str, ...], args: tuple) -> Any:
    if len(args) != len(params):
        raise ExecFailure(f"wrong number of args for {name}: want {len(params)} got {len(args)}")
    checked = tuple(want(arg, param) for arg, param in zip(args, params, strict=True))
    return getattr(obj, pyname)(*checked)


def get_field(obj: Any, name: str, strict: bool = False) -> Any:
    """`obj.Name` without arguments: a map key, a struct field, or a method call.

    A missing map key and a nil receiver give None (Go's invalid value); with `strict` the
    receiver is a nil interface (a range element or a map value), which is Go's error.
    """
    cls = type(obj)
    if cls is dict:
        return obj.get(name)
    struct = STRUCTS.get(cls)
    if struct is not None:
        getter = struct.fields.get(name)
        if getter is not None:
            return getter(obj)
        method = struct.methods.get(name)
        if method is not None:
            return _call_method(obj, name, method[0], method[1], ())
    elif obj is None:
        if strict:
            raise _nil_pointer(name)
        return None
    raise ExecFailure(f"can't evaluate field {name} in type {go_type_name(obj)}")


def call_field(obj: Any, name: str, args: tuple, strict: bool = False) -> Any:
    """`obj.Name arg...` (arguments, or a pipeline's value, given): only a method takes them."""
    cls = type(obj)
    struct = STRUCTS.get(cls)
    if struct is not None:
        method = struct.methods.get(name)
        if method is not None:
            return _call_method(obj, name, method[0], method[1], args)
        if name in struct.fields:
            raise ExecFailure(f"{name} has arguments but cannot be invoked as function")
    elif cls is dict:
        raise ExecFailure(f"{name} is not a method but has arguments")
    elif obj is None:
        if strict:
            raise _nil_pointer(name)
        return None
    raise ExecFailure(f"can't evaluate field {name} in type {go_type_name(obj)}")


def get_fields(obj: Any, names: tuple[str, ...], strict: bool = False) -> Any:
    """`obj.A.B.C`: a missing key ends the chain quietly, a nil map value is a nil pointer."""
    for name in names:
        if type(obj) is dict:
            if name not in obj:
                return None  # Go's invalid value: every further field is invalid too
            obj = obj[name]
            strict = True
        else:
            obj = get_field(obj, name, strict)
            strict = False
    return obj


def call_fields(obj: Any, names: tuple[str, ...], args: tuple, strict: bool = False) -> Any:
    """`obj.A.B.Method arg...`."""
    for name in names[:-1]:
        if type(obj) is dict:
            if name not in obj:
                return None
            obj = obj[name]
            strict = True
        else:
            obj = get_field(obj, name, strict)
            strict = False
    return call_field(obj, names[-1], args, strict)


# -- argument types ----------------------------------------------------------------------------

_SLICE_ITEMS = {"[]string": str, "[]memkv.KVPair": KVPair, "[]int": int}


def want(value: Any, go_type: str) -> Any:  # noqa: C901 - one case per Go type
    """`value` as an argument of Go type `go_type`, or Go's error (validateType)."""
    cls = type(value)
    if go_type == "string":
        if cls is str:
            return value
    elif go_type == "int":
        if cls is int:
            return value
    elif go_type in ("interface {}", "reflect.Value"):
        return value
    elif go_type == "bool":
        if cls is bool:
            return value
    elif go_type == "float64":
        if cls is float:
            return value
    elif go_type == "[]interface {}":
        # Python lists carry no element type: a list the fork's `list` made is a []interface {}
        # in Go; one `split` made is a []string, which Go would refuse here (we do not).
        if value is None:
            return []
        if cls is list or cls is tuple:
            return value
    elif go_type in _SLICE_ITEMS:
        if value is None:
            return []
        item = _SLICE_ITEMS[go_type]
        if (cls is list or cls is tuple) and all(type(v) is item for v in value):
            return value
    elif go_type.startswith("map["):
        if value is None:
            return {}
        if cls is dict:
            return value
    elif go_type == "time.Duration":
        if isinstance(value, int) and cls is not bool:
            return value
    elif go_type == "time.Time" and go_type_name(value) == go_type:
        return value
    if value is None:
        raise ExecFailure(f"invalid value; expected {go_type}")
    raise ExecFailure(f"wrong type for value; expected {go_type}; got {go_type_name(value)}")


def want_str(value: Any) -> Any:
    """`want(value, "string")`, inlined for the most common parameter type."""
    if type(value) is str:
        return value
    return want(value, "string")


def want_int(value: Any) -> Any:
    if type(value) is int:
        return value
    return want(value, "int")


# -- builtins ----------------------------------------------------------------------------------


def _error_calling(name: str, message: str) -> ExecFailure:
    return ExecFailure(f"error calling {name}: {message}")


def go_len(item: Any) -> int:
    cls = type(item)
    if cls is str:
        if item.isascii():
            return len(item)
        return len(to_bytes(item))
    if cls is list or cls is dict or cls is tuple:
        return len(item)
    if item is None:
        raise _error_calling("len", "reflect: call of reflect.Value.Type on zero Value")
    raise _error_calling("len", f"len of type {go_type_name(item)}")


def _index_arg(index: Any, cap: int, name: str) -> int:
    if isinstance(index, int) and not isinstance(index, bool):
        if index < 0 or index > cap:
            raise _error_calling(name, f"index out of range: {index}")
        return int(index)
    if index is None:
        raise _error_calling(name, "cannot index slice/array with nil")
    raise _error_calling(name, f"cannot index slice/array with type {go_type_name(index)}")


def go_index(item: Any, *indexes: Any) -> Any:
    """`index x 1 2` is x[1][2]: a list or string (its bytes) by int, a map by key."""
    if item is None:
        raise _error_calling("index", "index of untyped nil")
    for index in indexes:
        cls = type(item)
        if cls is str:
            data = to_bytes(item)
            x = _index_arg(index, len(data), "index")
            if x == len(data):
                raise _error_calling("index", "reflect: string index out of range")
            item = Uint8(data[x])
        elif cls is list or cls is tuple:
            x = _index_arg(index, len(item), "index")
            if x == len(item):
                raise _error_calling("index", "reflect: slice index out of range")
            item = item[x]
        elif cls is dict:
            if index is None:
                item = None
            elif type(index) is not str:
                raise _error_calling(
                    "index", f"value has type {go_type_name(index)}; should be string"
                )
            else:
                item = item.get(index)
        elif item is None:
            raise _error_calling("index", "index of nil pointer")
        else:
            raise _error_calling("index", f"can't index item of type {go_type_name(item)}")
    return item


def go_slice(item: Any, *indexes: Any) -> Any:
    """`slice x 1 2` is x[1:2]; a string is sliced by bytes."""
    if item is None:
        raise _error_calling("slice", "slice of untyped nil")
    if len(indexes) > 3:
        raise _error_calling("slice", f"too many slice indexes: {len(indexes)}")
    cls = type(item)
    if cls is str:
        if len(indexes) == 3:
            raise _error_calling("slice", "cannot 3-index slice a string")
        data: Any = to_bytes(item)
    elif cls is list or cls is tuple:
        data = item
    else:
        raise _error_calling("slice", f"can't slice item of type {go_type_name(item)}")
    cap = len(data)
    idx = [0, len(data), 0]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, cap, "slice")
    if idx[0] > idx[1]:
        raise _error_calling("slice", f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _error_calling("slice", f"invalid slice index: {idx[1]} > {idx[2]}")
    result = data[idx[0] : idx[1]]
    if cls is str:
        return from_bytes(result)
    return list(result)


_BOOL, _COMPLEX, _INT, _FLOAT, _STRING, _UINT = range(1, 7)


def _basic_kind(value: Any) -> int:
    cls = type(value)
    if cls is str:
        return _STRING
    if cls is int:
        return _INT
    if cls is bool:
        return _BOOL
    if cls is float:
        return _FLOAT
    if cls is Uint8:
        return _UINT
    if cls is complex:
        return _COMPLEX
    if isinstance(value, int) and cls not in (bool,):  # Month, Weekday, Duration: int kinds
        return _INT
    return 0


def _go_kind(value: Any) -> str:
    """The reflect.Kind of a non-basic value: slice, map, struct or ptr."""
    if isinstance(value, dict):
        return "map"
    struct = STRUCTS.get(type(value))
    if struct is not None:
        return "ptr" if struct.pointer else "struct"
    return "slice" if isinstance(value, list | tuple) else "func"


def go_eq(arg1: Any, *args: Any) -> bool:
    """`eq a b c...` is a == b || a == c || ...; kinds must match (ints of either sign do)."""
    if not args:
        raise _error_calling("eq", "missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 != k2:
            if {k1, k2} == {_INT, _UINT}:
                truth = int(arg1) == int(arg)
            elif arg1 is not None and arg is not None:
                raise _error_calling("eq", "incompatible types for comparison")
            else:
                truth = False
        elif k1:
            truth = arg1 == arg
        else:
            if arg1 is None or arg is None:
                truth = arg1 is None and arg is None
            elif _go_kind(arg1) != _go_kind(arg):
                raise _error_calling(
                    "eq", f"non-comparable types {go_type_name(arg1)}, {go_type_name(arg)}"
                )
            elif _go_kind(arg) in ("slice", "map", "func"):
                raise _error_calling("eq", f"non-comparable type {go_type_name(arg)}")
            else:
                truth = type(arg1) is type(arg) and arg1 == arg
        if truth:
            return True
    return False


def go_eq2(a: Any, b: Any) -> bool:
    """`eq a b`, with a fast path for two values of the same basic kind."""
    cls = type(a)
    if cls is type(b) and (cls is str or cls is int or cls is float):
        return a == b
    return go_eq(a, b)


def go_ne(a: Any, b: Any) -> bool:
    return not _eq_named(a, b, "ne")


def _lt(a: Any, b: Any, name: str) -> bool:
    k1 = _basic_kind(a)
    if not k1:
        raise _error_calling(name, "invalid type for comparison")
    k2 = _basic_kind(b)
    if not k2:
        raise _error_calling(name, "invalid type for comparison")
    if k1 != k2:
        if {k1, k2} == {_INT, _UINT}:
            return int(a) < int(b)
        raise _error_calling(name, "incompatible types for comparison")
    if k1 in (_BOOL, _COMPLEX):
        raise _error_calling(name, "invalid type for comparison")
    if k1 == _STRING:
        return to_bytes(a) < to_bytes(b) if not (a.isascii() and b.isascii()) else a < b
    return a < b


def go_lt(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in (int, float):
        return a < b
    return _lt(a, b, "lt")


def go_le(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in (int, float):
        return a <= b
    return _lt(a, b, "le") or _eq_named(a, b, "le")


def go_gt(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in (int, float):
        return a > b
    return not (_lt(a, b, "gt") or _eq_named(a, b, "gt"))


def go_ge(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in (int, float):
        return a >= b
    return not _lt(a, b, "ge")


def _eq_named(a: Any, b: Any, name: str) -> bool:
    """`eq a b` for the builtin `name`, whose name its errors carry."""
    try:
        return go_eq2(a, b)
    except ExecFailure as exc:
        message = exc.message.replace("error calling eq", f"error calling {name}")
        raise ExecFailure(message) from None


def go_call(fn: Any, *args: Any) -> Any:
    """`call`: Go templates can reach no function values here, so it always refuses."""
    if fn is None:
        raise _error_calling("call", "call of nil")
    raise _error_calling("call", f"non-function of type {go_type_name(fn)}")


def _eval_args(args: tuple) -> str:
    """Arguments as one string, as html/js/urlquery see them (nil prints `<no value>`)."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return fmt.sprint(*("<no value>" if a is None else a for a in args))


_HTML = {"\x00": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def go_html(*args: Any) -> str:
    s = _eval_args(args)
    if not any(c in s for c in _HTML):
        return s
    return "".join(_HTML.get(c, c) for c in s)


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}  # fmt: skip


def go_js(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for c in s:
        if c in _JS:
            out.append(_JS[c])
        elif c < " ":
            out.append(f"\\u00{ord(c):02X}")
        elif c < "\x80" or "\udc80" <= c <= "\udcff":
            out.append(c)  # ASCII, or a byte that is not UTF-8 (Go writes U+FFFD's escape?)
        elif is_print(c):
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04X}")
    return "".join(out)


def go_urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus  # only templates that use urlquery pay for it

    return quote_plus(to_bytes(_eval_args(args)), safe="")


def go_print(*args: Any) -> str:
    return fmt.sprint(*args)


def go_println(*args: Any) -> str:
    return fmt.sprintln(*args)


def go_printf(format_: Any, *args: Any) -> str:
    return fmt.sprintf(format_, *args)
