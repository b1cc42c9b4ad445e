"""`output_format` in a resource: the rendered text must parse as JSON, YAML, TOML or XML.

The fork (abtreece/confd) parses the staged file before it replaces the destination; output
that does not parse is refused, so the destination stays as it was and neither check_cmd nor
reload_cmd runs. The error gives the parser's line and column, never the content. Parsers load
only for resources that ask for them (PyYAML, tomllib, expat).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from confd.errors import OutputFormatError

__all__ = ["FORMATS", "validate_output"]


def _json(text: str) -> None:
    def refuse(name: str) -> None:  # Go's decoder knows no NaN or Infinity
        raise json.JSONDecodeError(f"invalid value {name}", text, 0)

    try:
        json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        line, column = exc.lineno, exc.colno
        if exc.msg.startswith("invalid value"):
            line = column = 0
        raise _error("JSON", exc.msg, line, column) from None


def _yaml(text: str) -> None:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(loader_class):  # type: ignore[misc, valid-type]
        """Refuses a key a mapping already has, as Go's yaml.v3 does."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> object:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            if key in seen:
                mark = key_node.start_mark
                raise _error("YAML", f"mapping key already defined at line {seen[key]}",
                             mark.line + 1, mark.column + 1)
            seen[key] = key_node.start_mark.line + 1
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        for _ in yaml.load_all(text, Loader=Loader):  # noqa: S506 - a safe loader
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "parse error"
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise _error("YAML", problem, line, column) from None
    except yaml.YAMLError as exc:
        raise _error("YAML", type(exc).__name__, 0, 0) from None


def _toml(text: str) -> None:
    import tomllib

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        reason = message[: where.start()].strip() if where else message
        if where:
            raise _error("TOML", reason, int(where.group(1)), int(where.group(2))) from None
        raise _error("TOML", reason, 0, 0) from None


def _xml(text: str) -> None:
    from xml.parsers import expat

    parser = expat.ParserCreate()
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) if exc.code is not None else "parse error"
        raise _error("XML", reason, exc.lineno, exc.offset + 1) from None


_QUOTED = re.compile(r"\('(?:[^'\\]|\\.)*'(?:, '(?:[^'\\]|\\.)*')*,?\)|'(?:[^'\\]|\\.)*'")


def _error(kind: str, reason: str, line: int, column: int) -> OutputFormatError:
    """The error for the user: what and where, with quoted text (a key, a character: maybe
    from the store) left out."""
    where = f" at line {line}, column {column}" if line else ""
    reason = _QUOTED.sub("<hidden>", reason)
    return OutputFormatError(f"output is not valid {kind}{where}: {reason}")


FORMATS: dict[str, Callable[[str], None]] = {
    "json": _json, "yaml": _yaml, "yml": _yaml, "toml": _toml, "xml": _xml,
}


def validate_output(text: str, output_format: str) -> None:
    """Raise `OutputFormatError` (line and column, no content) unless `text` parses as
    `output_format`; "" means no check."""
    if output_format:
        FORMATS[output_format](text)
