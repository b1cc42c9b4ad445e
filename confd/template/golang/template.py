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
import re
from collections.abc import Callable, Container, Mapping
from types import TracebackType
from typing import Any

from confd.template.functions import FunctionError
from confd.template.golang import nodes as n
from confd.template.golang.compiler import compile_trees, helper_namespace
from confd.template.golang.errors import GoExecError, GoSyntaxError, position
from confd.template.golang.functions import SIGNATURES, Signature
from confd.template.golang.parser import Tree, parse
from confd.template.golang.runtime import ExecFailure

__all__ = ["GoExecError", "GoSyntaxError", "GoTemplate"]

_MAX_DEPTH = 100_000  # Go's maxExecDepth, named in the message for runaway recursion
_ids = itertools.count()
_UNBOUND = re.compile(r"local variable '(\w+)'")


class GoTemplate:
    """A parsed and compiled Go template (with the templates it defines)."""

    def __init__(
        self, source: str, name: str, trees: dict[str, Tree], where: str,
        signatures: Mapping[str, Signature],
    ) -> None:  # fmt: skip
        self.source = source
        self.name = name
        self.where = where
        self.trees = trees
        compiled = compile_trees(trees, signatures)
        self.python_source = compiled.source
        self._line_nodes = compiled.line_nodes
        self._failures = compiled.failures
        self._failure_templates = compiled.failure_templates
        self._starts = compiled.starts
        self._variables = compiled.variables
        self._filename = f"<go template {where} #{next(_ids)}>"
        namespace = helper_namespace()
        exec(compile(compiled.source, self._filename, "exec"), namespace)  # noqa: S102
        self._namespace = namespace
        self._main: Callable[..., None] = namespace[compiled.functions[name]]

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
        trees = parse(source, name, function_names, where)
        return cls(source, name, trees, where or name, signatures)

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
            return self._failures[exc.node], self._failure_templates[exc.node]
        line = _innermost_line(exc.__traceback__, self._namespace)
        if line is None:
            return None, self.name
        template = self.name
        for start, name in self._starts:
            if start <= line:
                template = name
        while line > 0:
            node = self._line_nodes.get(line)
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
