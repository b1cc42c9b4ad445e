"""confd's template function set (`getv`, `gets`, `ls`, `lookupSRV`, `atoi`, ...), Go semantics.

The functions mirror kelseyhightower/confd's `template_funcs.go` and memkv: same names, sort
orders, defaults and errors; the maintained fork's additions (`hostname`, `lookupIfaceIPV4`,
`include` and its utility set from `confd.template.utility_functions`) join them with the fork's
semantics. Every function is wrapped so a failure surfaces as a `FunctionError` naming the
function; messages never contain store values. Jinja and Go templates call the same map.
"""

import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from types import FunctionType
from typing import Any, NamedTuple

from confd.template.store import KeyNotFound, KVPair, KVView, clean_key
from confd.template.utility_functions import UTILITY_FUNCTIONS, load_json

__all__ = ["FUNCTION_NAMES", "SRV", "FunctionError", "template_functions", "srv_resolver"]

MAX_SEQ = 100_000  # as Jinja's sandbox bounds range(): a template cannot allocate without limit


class FunctionError(Exception):
    """A template function failed; `function` is its template name, `cause` the error."""

    def __init__(self, function: str, cause: BaseException) -> None:
        super().__init__(f"{function}: {cause}")
        self.function = function
        self.cause = cause

    @property
    def reason(self) -> str:
        """The cause as a message for the person who wrote the template."""
        if isinstance(self.cause, KeyNotFound):
            return str(self.cause)
        if isinstance(self.cause, ZeroDivisionError):
            return "integer divide by zero"
        return str(self.cause) or type(self.cause).__name__


class ArgumentError(TypeError):
    """A template called a function with the wrong arguments; the message is its signature."""


def signature_of(name: str, fn: Callable[..., Any]) -> str:
    """`getv(key, default)` as a template writer reads it (types and defaults left out)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin such as str.upper
        return f"{name}(s)"
    shown = []
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            shown.append(f"{param.name}...")
        elif param.kind is not param.VAR_KEYWORD:
            label = "s" if param.name == "self" else param.name
            shown.append(label if param.default is param.empty else f"[{label}]")
    return f"{name}({', '.join(shown)})"


def _arity_error(name: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> bool:
    """Whether calling `fn` with these arguments fails on their number or names alone."""
    import inspect

    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return True
    except ValueError:  # no signature to check against
        return False
    return False


def _wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` under its template name, its exceptions raised as `FunctionError`; a call with the
    wrong number of arguments names the function's signature."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FunctionError:
            raise
        except TypeError as exc:
            if _arity_error(name, fn, args, kwargs):
                given = len(args) + len(kwargs)
                raise FunctionError(name, ArgumentError(
                    f"wrong number of arguments: {given} given, expected "
                    f"{signature_of(name, fn)}")) from None
            raise FunctionError(name, exc) from exc
        except Exception as exc:
            raise FunctionError(name, exc) from exc

    call.__name__ = call.__qualname__ = name
    call.__doc__ = fn.__doc__
    return call


_WRAPPED = _wrap("", len).__code__  # the code every `_wrap` closure shares


def is_template_function(obj: Any) -> bool:
    """Whether `obj` is one of confd's template functions (made by `_wrap`): safe to call from
    a sandboxed template, and taking no Jinja context."""
    return type(obj) is FunctionType and obj.__code__ is _WRAPPED


# -- paths and strings ---------------------------------------------------------------------


def base(path: str) -> str:
    """The last element of `path`, as Go's `path.Base` (`""` -> `.`, `/` -> `/`)."""
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path[path.rfind("/") + 1 :]


def dirname(path: str) -> str:
    """All but the last element of `path`, cleaned, as Go's `path.Dir`."""
    return clean_key(path[: path.rfind("/") + 1])


def split(s: str, sep: str) -> list[str]:
    """`s` cut at every `sep`, as Go's `strings.Split` (an empty `sep` splits characters)."""
    return list(s) if sep == "" else s.split(sep)


def join(items: Iterable[str], sep: str) -> str:
    """`items` joined with `sep`, as Go's `strings.Join` (items must be strings)."""
    if isinstance(items, str):
        raise TypeError("first argument must be a list of strings, not a string")
    items = list(items)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"list items must be strings, got {type(item).__name__}")
    return sep.join(items)


def replace(s: str, old: str, new: str, n: int = -1) -> str:
    """`s` with the first `n` `old` replaced by `new` (`n` < 0: all), as `strings.Replace`."""
    if n == 0:
        return s
    return s.replace(old, new, -1 if n < 0 else n)


def contains(s: str, substr: str) -> bool:
    """Whether `substr` is within `s`."""
    return substr in s


def trim_suffix(s: str, suffix: str) -> str:
    """`s` without a trailing `suffix`."""
    return s.removesuffix(suffix)


def trim_prefix(s: str, prefix: str) -> str:
    """`s` without a leading `prefix`."""
    return s.removeprefix(prefix)


# -- conversions -----------------------------------------------------------------------------

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = (-(2**63), 2**63 - 1)


def parse_bool(s: str) -> bool:
    """`s` as a boolean by Go's `strconv.ParseBool` rules (1/t/T/TRUE/true/True and 0/f/...)."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(
        "invalid syntax: expected 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False"
    )


def atoi(s: str) -> int:
    """`s` as a base-10 64-bit integer, as Go's `strconv.Atoi` (no spaces, no `_`)."""
    if not isinstance(s, str) or not _INT.match(s):
        raise ValueError("invalid syntax: not a base-10 integer")
    value = int(s)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError("value out of range")
    return value


def json_object(data: str) -> dict[str, Any]:
    """A JSON object parsed into a dict (`null` gives an empty dict, as Go's nil map)."""
    value = load_json(data)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"JSON value is {_json_kind(value)}, not an object")
    return value


def json_array(data: str) -> list[Any]:
    """A JSON array parsed into a list (`null` gives an empty list)."""
    value = load_json(data)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"JSON value is {_json_kind(value)}, not an array")
    return value


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return kinds.get(type(value), "a number")


def create_map(*values: Any) -> dict[str, Any]:
    """A dict from alternating keys and values: `map("a", 1, "b", 2)`."""
    if len(values) % 2:
        raise ValueError("invalid map call: expected key, value pairs")
    result: dict[str, Any] = {}
    for i in range(0, len(values), 2):
        if not isinstance(values[i], str):
            raise TypeError("map keys must be strings")
        result[values[i]] = values[i + 1]
    return result


def create_dict(*values: Any, **named: Any) -> dict[str, Any]:
    """The fork's `dict`: `map`'s alternating keys and values; Jinja's `dict(a=1)` also works."""
    result = create_map(*values)
    result.update(named)
    return result


def base64_encode(data: str) -> str:
    """`data` (UTF-8) in standard, padded base64."""
    import base64  # loaded by the templates that use it, not at every start

    return base64.b64encode(data.encode()).decode("ascii")


def base64_decode(data: str) -> str:
    """Standard, padded base64 decoded to text; line breaks are ignored, as in Go."""
    import base64

    try:
        raw = base64.b64decode(data.replace("\r", "").replace("\n", ""), validate=True)
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError("illegal base64 data") from None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ValueError("decoded data is not UTF-8 text") from None


# -- environment and files ------------------------------------------------------------------


def getenv(key: str, default: str = "") -> str:
    """The environment variable `key`, or `default` when unset or empty."""
    return os.environ.get(key) or default


def now() -> datetime:
    """The current local time (timezone aware)."""
    return datetime.now().astimezone()


def file_exists(path: str) -> bool:
    """Whether `path` exists (file or directory), as confd's `fileExists`."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # it exists, we just may not look at it (Go: only IsNotExist is false)
    except ValueError:
        return False  # embedded NUL
    return True


def hostname() -> str:
    """The host name the kernel reports (Go's `os.Hostname`)."""
    import socket

    return socket.gethostname()


# -- lists and numbers ----------------------------------------------------------------------


def _ints(*args: Any) -> None:
    for arg in args:
        if type(arg) is not int:
            raise TypeError(
                f"arguments must be integers, got {type(arg).__name__} (convert with atoi)"
            )


def add(a: int, b: int) -> int:
    _ints(a, b)
    return a + b


def sub(a: int, b: int) -> int:
    _ints(a, b)
    return a - b


def mul(a: int, b: int) -> int:
    _ints(a, b)
    return a * b


def div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` on ints."""
    _ints(a, b)
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def mod(a: int, b: int) -> int:
    """Remainder with the sign of `a`, as Go's `%` on ints."""
    return a - b * div(a, b)


def seq(first: int, last: int) -> list[int]:
    """The integers from `first` to `last` inclusive (empty if `first` > `last`)."""
    _ints(first, last)
    if last - first + 1 > MAX_SEQ:
        raise ValueError(f"sequence longer than {MAX_SEQ} items")
    return list(range(first, last + 1))


def reverse(values: Any) -> Any:
    """A list (of strings or KV pairs) in reverse order; anything else unchanged, as confd."""
    if isinstance(values, list | tuple):
        return list(values)[::-1]
    return values


def sort_by_length(values: Iterable[str]) -> list[str]:
    """Strings ordered by length (UTF-8 bytes, as Go), ties kept in order."""
    return sorted(values, key=lambda s: len(s.encode()))


def sort_kv_by_length(values: Iterable[KVPair]) -> list[KVPair]:
    """KV pairs ordered by key length (UTF-8 bytes, as Go), ties kept in order."""
    return sorted(values, key=lambda kv: len(kv.key.encode()))


# -- DNS ----------------------------------------------------------------------------------


def lookup_ip(name: str) -> list[str]:
    """Sorted unique addresses of host `name`; empty when it does not resolve."""
    import socket  # only templates that resolve names pay for it

    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return []
    return sorted({str(info[4][0]).partition("%")[0] for info in infos})


def lookup_ipv4(name: str) -> list[str]:
    """The IPv4 addresses of `lookupIP`."""
    return [ip for ip in lookup_ip(name) if "." in ip]


def lookup_ipv6(name: str) -> list[str]:
    """The IPv6 addresses of `lookupIP`."""
    return [ip for ip in lookup_ip(name) if ":" in ip]


def _interface_addresses(name: str) -> list[tuple[int, str]]:
    """(family, address) of network interface `name`, in the kernel's order; empty when there
    is no such interface."""
    import psutil  # only templates that ask for an interface address load it

    try:
        found = psutil.net_if_addrs().get(name, [])
    except OSError:
        return []
    return [(int(address.family), str(address.address)) for address in found]


def lookup_iface_ipv4(name: str) -> str:
    """The first IPv4 address of interface `name` ("" when it has none or does not exist)."""
    import ipaddress
    import socket

    for family, address in _interface_addresses(name):
        if family == socket.AF_INET:
            return address
        if family == socket.AF_INET6:  # an IPv4-mapped IPv6 address is IPv4 to Go
            mapped = ipaddress.IPv6Address(address.partition("%")[0]).ipv4_mapped
            if mapped is not None:
                return str(mapped)
    return ""


def lookup_iface_ipv6(name: str) -> str:
    """The first IPv6 address of interface `name`, without its zone ("" when none)."""
    import ipaddress
    import socket

    for family, address in _interface_addresses(name):
        if family != socket.AF_INET6:
            continue
        ip = ipaddress.IPv6Address(address.partition("%")[0])
        if ip.ipv4_mapped is None:
            return ip.compressed
    return ""


class SRV(NamedTuple):
    """One SRV record, as Go's `net.SRV` (target keeps its trailing dot)."""

    target: str
    port: int
    priority: int
    weight: int

    @property
    def Target(self) -> str:  # noqa: N802 - Go template spelling
        return self.target

    @property
    def Port(self) -> int:  # noqa: N802
        return self.port

    @property
    def Priority(self) -> int:  # noqa: N802
        return self.priority

    @property
    def Weight(self) -> int:  # noqa: N802
        return self.weight


def srv_resolver() -> Any:
    """A dnspython resolver from the system configuration (imported only when needed)."""
    import dns.resolver

    return dns.resolver.Resolver()


def lookup_srv(service: str, proto: str, name: str) -> list[SRV]:
    """SRV records of `_service._proto.name` (just `name` when both are empty), sorted as
    confd does (by target, port, priority, weight joined as text); empty on failure."""
    import dns.exception

    qname = name if not service and not proto else f"_{service}._{proto}.{name}"
    try:
        answer = srv_resolver().resolve(qname, "SRV", lifetime=5.0)
    except (dns.exception.DNSException, OSError, UnicodeError, ValueError):
        return []
    records = [
        SRV(r.target.to_text(), int(r.port), int(r.priority), int(r.weight)) for r in answer
    ]
    records.sort(key=lambda r: f"{r.target}{r.port}{r.priority}{r.weight}")
    return records


# -- the function map -----------------------------------------------------------------------

# The fork's utility functions first: confd's own win a name both have, as in the fork.
_PLAIN: dict[str, Callable[..., Any]] = {
    **UTILITY_FUNCTIONS,
    "dict": create_dict,
    "hostname": hostname,
    "lookupIfaceIPV4": lookup_iface_ipv4,
    "lookupIfaceIPV6": lookup_iface_ipv6,
    "base": base,
    "dir": dirname,
    "split": split,
    "join": join,
    "json": json_object,
    "jsonArray": json_array,
    "map": create_map,
    "getenv": getenv,
    "datetime": now,
    "toUpper": str.upper,
    "toLower": str.lower,
    "contains": contains,
    "replace": replace,
    "trimSuffix": trim_suffix,
    "trimPrefix": trim_prefix,
    "lookupIP": lookup_ip,
    "lookupIPV4": lookup_ipv4,
    "lookupIPV6": lookup_ipv6,
    "lookupSRV": lookup_srv,
    "fileExists": file_exists,
    "base64Encode": base64_encode,
    "base64Decode": base64_decode,
    "parseBool": parse_bool,
    "atoi": atoi,
    "seq": seq,
    "reverse": reverse,
    "sortByLength": sort_by_length,
    "sortKVByLength": sort_kv_by_length,
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "mod": mod,
}
_STATIC: dict[str, Callable[..., Any]] = {name: _wrap(name, fn) for name, fn in _PLAIN.items()}
_KV_NAMES = ("get", "gets", "getv", "getvs", "exists", "ls", "lsdir")
# Every function a template may call (`include` is bound per render by the renderer).
FUNCTION_NAMES: frozenset[str] = frozenset(_STATIC) | frozenset(_KV_NAMES) | {"include"}


def template_functions(
    view: KVView, include: Callable[..., str] | None = None
) -> dict[str, Callable[..., Any]]:
    """The globals for one render: confd's function set, KV functions bound to `view`, and
    `include` when the renderer gives one (it renders through the same view)."""
    functions = dict(_STATIC)
    for name in _KV_NAMES:
        functions[name] = _wrap(name, getattr(view, name))
    if include is not None:
        functions["include"] = _wrap("include", include)
    return functions


def function(name: str) -> Callable[..., Any]:
    """The wrapped function `name` of the static set (for filters built on it)."""
    return _STATIC[name]
