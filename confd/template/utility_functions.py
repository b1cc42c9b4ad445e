"""The maintained fork's utility template functions (abtreece/confd `utility_funcs.go`).

Defaults and conditionals, JSON, formatting, regular expressions, strings, collections and
hashing, with the fork's names, argument order and results: the value a Go pipeline passes
comes last (`default "x" VALUE`, `indent 4 TEXT`), "empty" is Go's zero value (None, false, 0,
"", an empty list or map). Plain functions of plain values, so Jinja and Go templates call the
same code; `confd.template.functions` puts them in the function map, wrapped so errors name
the function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["UTILITY_FUNCTIONS", "GO_SIGNATURES", "is_empty", "load_json"]

MAX_REPEAT = 10_000_000  # characters `repeat` may produce (Go would try to allocate any size)


def _str(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


def _int(what: str, value: Any) -> int:
    if type(value) is not int:
        raise TypeError(
            f"{what} must be an integer, got {type(value).__name__} (convert with atoi)"
        )
    return value


def _map(what: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a map, got {type(value).__name__}")
    return value


# -- defaults and conditionals ---------------------------------------------------------------


def _undefined(value: Any) -> bool:
    """A Jinja undefined value (a missing variable or map key), like Go's missing map key."""
    runtime = sys.modules.get("jinja2.runtime")
    return runtime is not None and isinstance(value, runtime.Undefined)


def is_empty(value: Any) -> bool:
    """Go's zero value: None, false, 0, 0.0, "", an empty list or map, a struct (KV pair)
    whose fields are all empty; a Jinja undefined value counts as None."""
    if value is None or _undefined(value):
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # KVPair, SRV: Go structs
        return all(is_empty(field) for field in value)
    if isinstance(value, str | bytes | list | tuple | Mapping | set | frozenset):
        return len(value) == 0
    return False


def default(default_value: Any, value: Any) -> Any:
    """`value` unless it is empty, else `default_value`: `default "localhost" (getv "/h")`."""
    return default_value if is_empty(value) else value


def ternary(true_value: Any, false_value: Any, condition: Any) -> Any:
    """`true_value` when `condition` (a boolean, last for pipelines) is true, else `false_value`."""
    if not isinstance(condition, bool):
        raise TypeError(f"condition must be a boolean, got {type(condition).__name__} "
                        "(convert with parseBool)")
    return true_value if condition else false_value


def coalesce(*values: Any) -> Any:
    """The first value that is not empty; None when all are."""
    for value in values:
        if not is_empty(value):
            return value
    return None


# -- JSON -------------------------------------------------------------------------------------


# The JSON and regexp modules load when a template first uses them (start-up stays light).


def to_json(value: Any) -> str:
    """`value` as compact JSON, byte for byte as Go's `json.Marshal`."""
    from confd.template.gojson import marshal

    return marshal(value)


def to_pretty_json(value: Any) -> str:
    """`value` as JSON indented by two spaces, as Go's `json.MarshalIndent`."""
    from confd.template.gojson import marshal

    return marshal(value, "  ")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def load_json(text: str, **options: Any) -> Any:
    """`json.loads(text, **options)`; its error names a position, never the content."""
    try:
        return json.loads(text, **options)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None


def from_json(text: str) -> Any:
    """A JSON text parsed into maps, lists, strings, numbers, booleans and None."""
    return load_json(_str("argument", text), parse_constant=_refuse_constant)


# -- formatting ------------------------------------------------------------------------------


def indent(spaces: int, text: str) -> str:
    """Every line of `text` prefixed with `spaces` spaces ("" stays ""; negative means 0)."""
    spaces, text = _int("spaces", spaces), _str("text", text)
    if text == "":
        return ""
    pad = " " * max(spaces, 0)
    return pad + text.replace("\n", "\n" + pad)


def nindent(spaces: int, text: str) -> str:
    """A newline, then `indent spaces text`: for YAML blocks that start on the next line."""
    return "\n" + indent(spaces, text)


def quote(text: str) -> str:
    """`text` in double quotes, escaped as Go's `%q`: `hello` -> `"hello"`."""
    from confd.template.golang.strconv import quote as go_quote

    return go_quote(_str("argument", text))


def squote(text: str) -> str:
    """`text` in single quotes, a single quote inside doubled: `it's` -> `'it''s'`."""
    return "'" + _str("argument", text).replace("'", "''") + "'"


# -- regular expressions (Go's RE2: see confd.template.goregexp) ----------------------------


def regex_match(pattern: str, text: str) -> bool:
    """Whether `text` contains a match of `pattern`."""
    from confd.template.goregexp import match

    return match(pattern, text)


def regex_find(pattern: str, text: str) -> str:
    """The leftmost match of `pattern` in `text`, or ""."""
    from confd.template.goregexp import find

    return find(pattern, text)


def regex_replace_all(pattern: str, text: str, replacement: str) -> str:
    """`text` with every match of `pattern` replaced; `$1`, `${name}`, `$$` expanded."""
    from confd.template.goregexp import replace_all

    return replace_all(pattern, text, replacement)


# -- strings ---------------------------------------------------------------------------------


def repeat(count: int, text: str) -> str:
    """`text` repeated `count` times ("" for a count of 0 or less)."""
    count, text = _int("count", count), _str("text", text)
    if count <= 0:
        return ""
    if len(text) * count > MAX_REPEAT:
        raise ValueError(f"result longer than {MAX_REPEAT} characters")
    return text * count


def _go_space(char: str) -> bool:
    """Go's `unicode.IsSpace` (Python's `isspace` also counts U+001C..U+001F)."""
    return char.isspace() and not "\x1c" <= char <= "\x1f"


def nospace(text: str) -> str:
    """`text` without any whitespace."""
    return "".join(char for char in _str("argument", text) if not _go_space(char))


def _split_words(text: str) -> list[str]:
    """Words at `_`, `-`, space and case changes, as the fork splits them: `HTTPServer` ->
    `HTTP`, `Server`; `settingName` -> `setting`, `Name`."""
    words: list[str] = []
    current: list[str] = []
    for i, char in enumerate(text):
        if char in "_- ":
            if current:
                words.append("".join(current))
                current = []
            continue
        if char.isupper() and current:
            next_lower = i + 1 < len(text) and text[i + 1].islower()
            if next_lower or not text[i - 1].isupper():
                words.append("".join(current))
                current = []
        current.append(char)
    if current:
        words.append("".join(current))
    return words


def _lower(word: str) -> str:
    """Lower case rune by rune, as Go's `strings.ToLower` (one rune stays one rune)."""
    return "".join(char.lower()[0] for char in word)


def _upper_rune(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 else char


def snakecase(text: str) -> str:
    """`settingName` -> `setting_name`."""
    return "_".join(_lower(word) for word in _split_words(_str("argument", text)))


def kebabcase(text: str) -> str:
    """`ServiceName` -> `service-name`."""
    return "-".join(_lower(word) for word in _split_words(_str("argument", text)))


def camelcase(text: str) -> str:
    """`setting_name` -> `settingName`."""
    words = [_lower(word) for word in _split_words(_str("argument", text))]
    return "".join(
        word if index == 0 else _upper_rune(word[0]) + word[1:]
        for index, word in enumerate(words)
    )


# -- collections -----------------------------------------------------------------------------


def make_list(*values: Any) -> list[Any]:
    """A list of the arguments: `list "web" "api"`."""
    return list(values)


def has_key(mapping: Any, key: Any) -> bool:
    """Whether the map has `key`."""
    return _str("key", key) in _map("first argument", mapping)


def keys(mapping: Any) -> list[str]:
    """The keys of a map, sorted."""
    return sorted(_map("argument", mapping))


def values(mapping: Any) -> list[Any]:
    """The values of a map, in the order of its sorted keys."""
    found = _map("argument", mapping)
    return [found[key] for key in sorted(found)]


def append(items: Any, value: Any) -> list[Any]:
    """A new list: `items` and then `value` (`items` is not changed)."""
    if not isinstance(items, list | tuple):
        raise TypeError(f"first argument must be a list, got {type(items).__name__}")
    return [*items, value]


def pluck(key: Any, *maps: Any) -> list[Any]:
    """The value of `key` in each map that has it, in order."""
    key = _str("key", key)
    found: list[Any] = []
    for index, mapping in enumerate(maps, 2):
        mapping = _map(f"argument {index}", mapping)
        if key in mapping:
            found.append(mapping[key])
    return found


# -- hashing ---------------------------------------------------------------------------------


def sha256sum(text: str) -> str:
    """The SHA-256 of `text` (UTF-8), in lower-case hex."""
    import hashlib

    return hashlib.sha256(_str("argument", text).encode()).hexdigest()


# The map `confd.template.functions` merges under confd's own functions (which win on a name
# both have, as in the fork). `dict` is confd's `map` there.
UTILITY_FUNCTIONS: dict[str, Any] = {
    "default": default,
    "ternary": ternary,
    "coalesce": coalesce,
    "empty": is_empty,
    "toJson": to_json,
    "fromJson": from_json,
    "toPrettyJson": to_pretty_json,
    "indent": indent,
    "nindent": nindent,
    "quote": quote,
    "squote": squote,
    "regexMatch": regex_match,
    "regexFind": regex_find,
    "regexReplaceAll": regex_replace_all,
    "repeat": repeat,
    "nospace": nospace,
    "snakecase": snakecase,
    "camelcase": camelcase,
    "kebabcase": kebabcase,
    "list": make_list,
    "hasKey": has_key,
    "keys": keys,
    "values": values,
    "append": append,
    "pluck": pluck,
    "sha256sum": sha256sum,
}

# The Go type of each function the fork adds, for the Go template front end's call checks:
# (parameter types, variadic element type or None, result type, returns an error too).
_S, _I, _A, _M = "string", "int", "interface {}", "map[string]interface {}"
GO_SIGNATURES: dict[str, tuple[tuple[str, ...], str | None, str, bool]] = {
    "default": ((_A, _A), None, _A, False),
    "ternary": ((_A, _A, "bool"), None, _A, False),
    "coalesce": ((), _A, _A, False),
    "empty": ((_A,), None, "bool", False),
    "toJson": ((_A,), None, _S, True),
    "fromJson": ((_S,), None, _A, True),
    "toPrettyJson": ((_A,), None, _S, True),
    "indent": ((_I, _S), None, _S, False),
    "nindent": ((_I, _S), None, _S, False),
    "quote": ((_S,), None, _S, False),
    "squote": ((_S,), None, _S, False),
    "regexMatch": ((_S, _S), None, "bool", True),
    "regexFind": ((_S, _S), None, _S, True),
    "regexReplaceAll": ((_S, _S, _S), None, _S, True),
    "repeat": ((_I, _S), None, _S, False),
    "nospace": ((_S,), None, _S, False),
    "snakecase": ((_S,), None, _S, False),
    "camelcase": ((_S,), None, _S, False),
    "kebabcase": ((_S,), None, _S, False),
    "dict": ((), _A, _M, True),
    "list": ((), _A, "[]interface {}", False),
    "hasKey": ((_M, _S), None, "bool", False),
    "keys": ((_M,), None, "[]string", False),
    "values": ((_M,), None, "[]interface {}", False),
    "append": (("[]interface {}", _A), None, "[]interface {}", False),
    "pluck": ((_S,), _M, "[]interface {}", False),
    "sha256sum": ((_S,), None, _S, False),
    "hostname": ((), None, _S, True),
    "lookupIfaceIPV4": ((_S,), None, _S, False),
    "lookupIfaceIPV6": ((_S,), None, _S, False),
    "include": ((_S,), _A, _S, True),
}
