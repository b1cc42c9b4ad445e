"""Go text/template front end: parse a Go confd template once, render it byte-identically.

    template = GoTemplate.parse(source, "nginx.conf.tmpl", go_function_names)
    text = template.execute(go_functions(store.view(reads)))

`parse` raises `GoSyntaxError` (`nginx.conf.tmpl:3:14: function "foo" not defined`), as Go's
parser refuses the template; `execute` raises `GoExecError`
(`nginx.conf.tmpl:5:9: executing "nginx.conf.tmpl" at <getv "/x">: error calling getv: ...`).
The tree is compiled to Python source once (see `compiler`); rendering runs that code.
"""

from __future__ import annotations

import itertools
import marshal
import re
from collections.abc import Callable, Container, Mapping
from types import CodeType, TracebackType
from typing import Any, NamedTuple

from confd.template.functions import FunctionError
from confd.template.golang import nodes as n
from confd.template.golang.compiler import Compiled, compile_trees, helper_namespace
from confd.template.golang.errors import GoExecError, GoSyntaxError, position
from confd.template.golang.functions import SIGNATURES, Signature
from confd.template.golang.parser import Tree, parse
from confd.template.golang.runtime import ExecFailure

__all__ = ["GoExecError", "GoSyntaxError", "GoTemplate"]

_MAX_DEPTH = 100_000  # Go's maxExecDepth, named in the message for runaway recursion
_ids = itertools.count()
_UNBOUND = re.compile(r"local variable '(\w+)'")


class _Debug(NamedTuple):
    """What only error messages need: the trees and the compiled line -> node maps."""

    trees: dict[str, Tree]
    compiled: Compiled


class GoTemplate:
    """A parsed and compiled Go template (with the templates it defines)."""

    def __init__(
        self, source: str, name: str, where: str, signatures: Mapping[str, Signature],
        function_names: Container[str], code: CodeType, runtime: tuple[str, list, dict],
        debug: _Debug | None = None,
    ) -> None:  # fmt: skip
        self.source = source
        self.name = name
        self.where = where
        self._signatures = signatures
        self._function_names = function_names
        self._code = code
        main, starts, variables = runtime
        self._starts: list[tuple[int, str]] = [tuple(s) for s in starts]  # type: ignore[misc]
        self._variables: dict[str, str] = variables
        self._debug_info = debug
        namespace = helper_namespace()
        exec(code, namespace)  # noqa: S102 - code compiled from this template
        self._namespace = namespace
        self._main_name = main
        self._main: Callable[..., None] = namespace[main]

    @classmethod
    def parse(
        cls, source: str, name: str, function_names: Container[str], *, where: str | None = None,
        signatures: Mapping[str, Signature] = SIGNATURES,
    ) -> GoTemplate:  # fmt: skip
        """Parse and compile `source` as the template `name`.

        `function_names`: the functions it may call besides Go's builtins (an unknown one is a
        `GoSyntaxError`, as in Go); `where`: the file named in messages (default `name`);
        `signatures`: Go types of those functions (default confd's), for Go's argument checks.
        """
        where = where or name
        trees = parse(source, name, function_names, where)
        compiled = compile_trees(trees, signatures)
        code = compile(compiled.source, f"<go template {where} #{next(_ids)}>", "exec")
        runtime = (compiled.functions[name], compiled.starts, compiled.variables)
        return cls(source, name, where, signatures, function_names, code, runtime,
                   _Debug(trees, compiled))

    def dumps(self) -> bytes:
        """The compiled template as bytes (`marshal`) for `loads` in a later run: its code and
        what running it needs; what error messages need is rebuilt from the source then."""
        return marshal.dumps((self._code, (self._main_name, self._starts, self._variables)))

    @classmethod
    def loads(
        cls, payload: bytes, source: str, name: str, function_names: Container[str], *,
        where: str | None = None, signatures: Mapping[str, Signature] = SIGNATURES,
    ) -> GoTemplate | None:  # fmt: skip
        """A template `dumps` wrote for this same source (None when the bytes do not load)."""
        try:
            code, (main, starts, variables) = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(code, CodeType):
            return None
        return cls(source, name, where or name, signatures, function_names, code,
                   (main, starts, variables))

    def _debug(self) -> _Debug:
        """The parse trees and the generated line -> node maps (rebuilt from the source for a
        template loaded from the cache: compiling is deterministic, so the lines agree)."""
        if self._debug_info is None:
            trees = parse(self.source, self.name, self._function_names, self.where)
            self._debug_info = _Debug(trees, compile_trees(trees, self._signatures))
        return self._debug_info

    @property
    def trees(self) -> dict[str, Tree]:
        return self._debug().trees

    @property
    def python_source(self) -> str:
        return self._debug().compiled.source

    @property
    def defined(self) -> list[str]:
        """Names of the templates the source defines (its own name first)."""
        return [self.name] + sorted(k for k in self.trees if k != self.name)

    def execute(self, functions: Mapping[str, Callable[..., Any]], data: Any = None) -> str:
        """Render with `functions` (e.g. `go_functions(view)`); `data` is dot (confd: nil)."""
        out: list[str] = []
        try:
            self._main(data, functions, out.append)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a located GoExecError
            raise self._exec_error(exc) from exc
        return "".join(out)

    # -- errors --------------------------------------------------------------------------------

    def _exec_error(self, exc: BaseException) -> GoExecError:
        node, template = self._failing_node(exc)
        function = None
        if isinstance(exc, ExecFailure):
            message = exc.message
        elif isinstance(exc, FunctionError):
            function = exc.function
            message = f"error calling {exc.function}: {exc.reason}"
        elif isinstance(exc, RecursionError):
            message = f"exceeded maximum template depth ({_MAX_DEPTH})"
        elif isinstance(exc, UnboundLocalError):
            match = _UNBOUND.search(str(exc))
            name = self._variables.get(match.group(1), "$") if match else "$"
            message = f"undefined variable: {name}"
        else:
            function = _function_of(node)
            detail = str(exc) or type(exc).__name__
            message = f"error calling {function}: {detail}" if function else detail
        if isinstance(node, n.CommandNode | n.IdentifierNode) and function is None:
            function = _function_of(node) if message.startswith("error calling") else None
        if node is None:
            return GoExecError(self.where, 1, 0, template, "", message, function)
        line, column = position(self.source, node.pos)
        return GoExecError(self.where, line, column, template, str(node), message, function)

    def _failing_node(self, exc: BaseException) -> tuple[n.Node | None, str]:
        """The Go node that failed, and the name of the template executing it."""
        if isinstance(exc, ExecFailure) and exc.node is not None:
            compiled = self._debug().compiled
            return compiled.failures[exc.node], compiled.failure_templates[exc.node]
        line = _innermost_line(exc.__traceback__, self._namespace)
        if line is None:
            return None, self.name
        template = self.name
        for start, name in self._starts:
            if start <= line:
                template = name
        while line > 0:
            node = self._debug().compiled.line_nodes.get(line)
            if node is not None:
                return node, template
            line -= 1
        return None, template


def _innermost_line(tb: TracebackType | None, namespace: dict) -> int | None:
    """The generated-code line of the innermost frame of this template in `tb`."""
    found = None
    while tb is not None:
        if tb.tb_frame.f_globals is namespace:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def _function_of(node: n.Node | None) -> str | None:
    if isinstance(node, n.CommandNode) and isinstance(node.args[0], n.IdentifierNode):
        return node.args[0].ident
    if isinstance(node, n.IdentifierNode):
        return node.ident
    return None
