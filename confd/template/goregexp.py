"""Go's `regexp` for templates: RE2 syntax and matching, and `ReplaceAllString`'s `$1` expansion.

The fork's `regexMatch`, `regexFind` and `regexReplaceAll` take Go (RE2) patterns. Python's `re`
reads many of them differently (`$` also matches before a final newline, `\\d` and `\\s` are
Unicode-wide, no `[[:alpha:]]` or `\\pL`, lookarounds accepted where Go refuses them), so
patterns are compiled by RE2 itself (google-re2, imported on first use). Replacements follow
Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`; an empty match right after a
previous match is not replaced, as in Go.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["match", "find", "replace_all"]


@lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    """The compiled RE2 pattern; a `ValueError` in Go's words when it does not parse."""
    import re2  # only templates that use regular expressions pay for it

    options = re2.Options()
    options.log_errors = False  # RE2 would print every bad pattern on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"error parsing regexp: {reason}") from None


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    return value


def match(pattern: str, text: str) -> bool:
    """Whether `text` contains a match of `pattern` (Go's `regexp.MatchString`)."""
    return _compile(_text("pattern", pattern)).search(_text("string", text)) is not None


def find(pattern: str, text: str) -> str:
    """The leftmost match of `pattern` in `text`, or "" (Go's `FindString`)."""
    found = _compile(_text("pattern", pattern)).search(_text("string", text))
    return "" if found is None else found.group(0)


def replace_all(pattern: str, text: str, replacement: str) -> str:
    """`text` with every match of `pattern` replaced, `$` references expanded (Go's
    `ReplaceAllString`)."""
    regex = _compile(_text("pattern", pattern))
    text = _text("string", text)
    template = _parse_template(_text("replacement", replacement))
    names = regex.groupindex
    out: list[str] = []
    last_end = 0
    for found in regex.finditer(text):
        start, end = found.span()
        out.append(text[last_end:start])
        # Go skips an empty match that abuts the previous match (it would replace twice).
        if end > last_end or start == 0:
            out.append(_expand(template, found, names))
        last_end = end
    out.append(text[last_end:])
    return "".join(out)


# A parsed replacement: literal text, or a group by number (int) or by name (str in a tuple).
_Piece = str | int | tuple[str]


@lru_cache(maxsize=256)
def _parse_template(template: str) -> tuple[_Piece, ...]:
    """Split a Go replacement template into literals and group references, as `Expand` reads
    it: a name is the longest run of letters, digits and `_`; `$1x` names group "1x"; a
    malformed `$` stays literal."""
    pieces: list[_Piece] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char != "$":
            literal.append(char)
            i += 1
            continue
        if i + 1 < n and template[i + 1] == "$":
            literal.append("$")
            i += 2
            continue
        reference = _reference(template, i + 1)
        if reference is None:
            literal.append("$")
            i += 1
            continue
        name, i = reference
        if literal:
            pieces.append("".join(literal))
            literal = []
        number = _group_number(name)
        pieces.append(number if number is not None else (name,))
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def _reference(template: str, i: int) -> tuple[str, int] | None:
    """The group name at `i` (after `$`) and the index after it, or None when malformed."""
    brace = i < len(template) and template[i] == "{"
    start = i + 1 if brace else i
    end = start
    while end < len(template) and _name_char(template[end]):
        end += 1
    if end == start:
        return None
    if brace:
        if end >= len(template) or template[end] != "}":
            return None
        return template[start:end], end + 1
    return template[start:end], end


def _name_char(char: str) -> bool:
    """Go's rule for a name character: a letter, a decimal digit or `_`."""
    return char.isalpha() or char.isdecimal() or char == "_"


def _group_number(name: str) -> int | None:
    """`name` as a group number when it is all ASCII digits without a leading zero."""
    if not name.isascii() or not name.isdigit() or len(name) > 8:
        return None
    if name[0] == "0" and len(name) > 1:
        return None
    return int(name)


def _expand(template: tuple[_Piece, ...], found: Any, names: dict[str, int]) -> str:
    out: list[str] = []
    for piece in template:
        if isinstance(piece, str):
            out.append(piece)
            continue
        index = piece if isinstance(piece, int) else names.get(piece[0])
        if index is None or index > found.re.groups:
            continue
        group = found.group(index)
        if group is not None:
            out.append(group)
    return "".join(out)
