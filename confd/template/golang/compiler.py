"""Go template parse trees compiled to Python source, once per template.

Each template (the file's own and every `define`/`block`) becomes one Python function
`t_N(dot, F, w)`: text is `w("...")`, `if`/`with`/`range` are Python `if`/`for`, `break` and
`continue` are Python's, Go variables are Python locals (scoping resolved here, as Go's parser
resolves it), functions come from the map `F` given at render time. Go's semantics live in
`runtime`; what can be decided here is (argument counts, constant types, undefined templates),
compiled into a failure that is raised only if that code runs, as Go does.

Error locations cost nothing at render time: every node whose evaluation can fail starts a new
line of the generated source, and `line_nodes` maps those lines back to the Go node, whose
position and text the error message gives (`t.tmpl:3:14: executing "t.tmpl" at <getv "/x">`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from confd.template.golang import nodes as n
from confd.template.golang.functions import BUILTIN_SIGNATURES, Signature
from confd.template.golang.parser import Tree
from confd.template.golang.strconv import quote

__all__ = ["Compiled", "compile_trees"]

_MARK, _MARK_END, _CLOSE = "\x01", "\x02", "\x03"
_PURE = (n.StringNode, n.NumberNode, n.BoolNode, n.NilNode, n.DotNode)
_CONSTANTS = (n.StringNode, n.NumberNode, n.BoolNode, n.NilNode)

# Python names of the runtime helpers in the generated module's namespace.
_HELPERS = {
    "_text": "to_text", "_fail": "fail", "_gf": "get_field", "_gfs": "get_fields",
    "_cf": "call_field", "_cfs": "call_fields", "_want": "want", "_ws": "want_str",
    "_wi": "want_int", "_rv": "range_values", "_rp": "range_pairs", "_len": "go_len",
    "_index": "go_index", "_slice": "go_slice", "_eq": "go_eq", "_eq2": "go_eq2",
    "_ne": "go_ne", "_lt": "go_lt", "_le": "go_le", "_gt": "go_gt", "_ge": "go_ge",
    "_call": "go_call", "_html": "go_html", "_js": "go_js", "_urlquery": "go_urlquery",
    "_print": "go_print", "_println": "go_println", "_printf": "go_printf",
}  # fmt: skip
_BUILTIN_CALLS = {
    "len": "_len", "index": "_index", "slice": "_slice", "ne": "_ne", "lt": "_lt",
    "le": "_le", "gt": "_gt", "ge": "_ge", "call": "_call", "html": "_html", "js": "_js",
    "urlquery": "_urlquery", "print": "_print", "println": "_println", "printf": "_printf",
}  # fmt: skip


class Compiled(NamedTuple):
    """Generated source, the Python name of each template's function, the line -> node map."""

    source: str
    functions: dict[str, str]  # template name -> Python function name
    line_nodes: dict[int, n.Node]  # generated line -> the Go node evaluated there
    failures: list[n.Node]  # node of each compiled-in failure, by the index `_fail` raises
    failure_templates: list[str]  # template name of each compiled-in failure
    starts: list[tuple[int, str]]  # (first generated line, template name), in order
    variables: dict[str, str]  # Python local -> Go variable name (for unbound-variable errors)


class _Context:
    """Where compilation is: the Python expression for dot, and the visible variables."""

    __slots__ = ("dot", "strict", "scope")

    def __init__(self, dot: str, strict: bool, scope: list[tuple[str, str]]) -> None:
        self.dot = dot  # Python expression holding dot
        self.strict = strict  # dot is a range element: a nil there is a nil interface
        self.scope = scope  # (Go name, Python local), innermost last

    def lookup(self, name: str) -> str | None:
        for go_name, local in reversed(self.scope):
            if go_name == name:
                return local
        return None


def _mark(node: n.Node, nodes: list[n.Node], code: str) -> str:
    """`code` starting its own generated line, attributed to `node`."""
    nodes.append(node)
    return f"{_MARK}{len(nodes) - 1}{_MARK_END}{code}{_CLOSE}"


def _is_hex_int(text: str) -> bool:
    return len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(
        c in text for c in "pP"
    )


class _Compiler:
    def __init__(self, trees: Mapping[str, Tree], signatures: Mapping[str, Signature]) -> None:
        self.trees = trees
        self.signatures = signatures
        self.lines: list[str] = []
        self.line_nodes: dict[int, n.Node] = {}
        self.marked: list[n.Node] = []
        self.indent = 0
        self.counter = 0
        self.functions = {name: f"t_{i}" for i, name in enumerate(trees)}
        self.variables: dict[str, str] = {}
        self.used_functions: dict[str, str] = {}
        self.strict_locals: set[str] = set()
        self.template_name = ""
        self.starts: list[tuple[int, str]] = []
        self.marked_templates: list[str] = []

    # -- emitting ------------------------------------------------------------------------------

    def temp(self, prefix: str = "t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, code: str, node: n.Node | None = None) -> None:
        """Append a statement; markers in it become line breaks recorded in `line_nodes`."""
        if node is not None:
            self.line_nodes[len(self.lines) + 1] = node
        current = ["    " * self.indent]
        i = 0
        while True:
            j = code.find(_MARK, i)
            k = code.find(_CLOSE, i)
            if j < 0 and k < 0:
                current.append(code[i:])
                break
            if k >= 0 and (j < 0 or k < j):
                current.append(code[i:k] + ")")
                i = k + 1
                continue
            end = code.index(_MARK_END, j)
            current.append(code[i:j] + "(")
            self.lines.append("".join(current))
            self.line_nodes[len(self.lines) + 1] = self.marked[int(code[j + 1 : end])]
            current = []
            i = end + 1
        self.lines.append("".join(current))

    def mark(self, node: n.Node, code: str) -> str:
        self.marked_templates.append(self.template_name)
        return _mark(node, self.marked, code)

    def fail(self, node: n.Node, message: str, *evaluated: str) -> str:
        """Code raising `message` at `node` when it runs (after evaluating `evaluated`)."""
        self.marked.append(node)
        self.marked_templates.append(self.template_name)
        args = "".join(", " + e for e in evaluated)
        return f"_fail({len(self.marked) - 1}, {message!r}{args})"

    # -- templates -----------------------------------------------------------------------------

    def compile(self) -> Compiled:
        for name, tree in self.trees.items():
            self.template_name = name
            self.starts.append((len(self.lines) + 1, name))
            self.compile_template(self.functions[name], tree)
        source = "\n".join(self.lines) + "\n"
        return Compiled(
            source, self.functions, self.line_nodes, self.marked, self.marked_templates,
            self.starts, self.variables,
        )  # fmt: skip

    def compile_template(self, fname: str, tree: Tree) -> None:
        self.used_functions = {}
        self.emit(f"def {fname}(dot, F, w):")
        self.indent += 1
        start = len(self.lines)
        ctx = _Context("dot", False, [("$", "dot")])
        self.compile_list(tree.root, ctx)
        body = self.lines[start:]
        body_nodes = {line: node for line, node in self.line_nodes.items() if line > start}
        del self.lines[start:]
        for line in body_nodes:
            del self.line_nodes[line]
        for go_name, local in self.used_functions.items():
            self.emit(f"{local} = F.get({go_name!r}) or _undefined({go_name!r})")
        shift = len(self.lines) - start
        self.lines.extend(body)
        for line, node in body_nodes.items():
            self.line_nodes[line + shift] = node
        if not body:
            self.emit("pass")
        self.indent -= 1

    def compile_list(self, body: n.ListNode, ctx: _Context) -> None:
        for node in body.nodes:
            self.compile_node(node, ctx)

    def block(self, body: n.ListNode | None, ctx: _Context) -> None:
        """An indented block (`pass` when it emits nothing)."""
        self.indent += 1
        before = len(self.lines)
        if body is not None:
            self.compile_list(body, ctx)
        if len(self.lines) == before:
            self.emit("pass")
        self.indent -= 1

    def compile_node(self, node: n.Node, ctx: _Context) -> None:
        if isinstance(node, n.TextNode):
            self.emit(f"w({node.text!r})")
        elif isinstance(node, n.ActionNode):
            self.compile_action(node, ctx)
        elif isinstance(node, n.IfNode):
            self.compile_if(node, ctx, "if")
        elif isinstance(node, n.RangeNode):
            self.compile_range(node, ctx)
        elif isinstance(node, n.WithNode):
            self.compile_with(node, ctx)
        elif isinstance(node, n.TemplateNode):
            self.compile_template_call(node, ctx)
        elif isinstance(node, n.BreakNode):
            self.emit("break", node)
        elif isinstance(node, n.ContinueNode):
            self.emit("continue", node)
        else:  # comments are not kept by the parser
            raise AssertionError(f"unknown node {node!r}")

    # -- statements ----------------------------------------------------------------------------

    def declare(self, pipe: n.PipeNode, value: str, ctx: _Context) -> str:
        """Assign a pipeline's value to the variables it declares or assigns; its local."""
        var = pipe.decl[0]
        name = var.ident[0]
        if pipe.is_assign:
            local = ctx.lookup(name)
            if local is None:  # visible to Go's parser, not on its runtime stack
                self.emit(self.fail(var, f"undefined variable: {name}", value), pipe)
                return "None"
        else:
            local = self.temp("v")
            self.variables[local] = name
            ctx.scope.append((name, local))
        self.emit(f"{local} = {value}", pipe)
        return local

    def compile_action(self, node: n.ActionNode, ctx: _Context) -> None:
        value, result = self.pipe(node.pipe, ctx)
        if node.pipe.decl:
            self.declare(node.pipe, value, ctx)
        elif result == "string":
            self.emit(f"w({value})", node)
        else:
            self.emit(f"w(_text({value}))", node)

    def condition(self, node: n.BranchNode, ctx: _Context) -> str:
        value, _ = self.pipe(node.pipe, ctx)
        if node.pipe.decl:
            return self.declare(node.pipe, value, ctx)
        return value

    def compile_if(self, node: n.IfNode, ctx: _Context, keyword: str) -> None:
        depth = len(ctx.scope)
        if keyword == "elif" and node.pipe.decl:
            value, _ = self.pipe(node.pipe, ctx)
            local = self.temp("v")
            self.variables[local] = node.pipe.decl[0].ident[0]
            if node.pipe.is_assign:
                found = ctx.lookup(node.pipe.decl[0].ident[0])
                local = found or local
            else:
                ctx.scope.append((node.pipe.decl[0].ident[0], local))
            self.emit(f"elif ({local} := {value}):", node)
        elif keyword == "elif":
            value, _ = self.pipe(node.pipe, ctx)
            self.emit(f"elif {value}:", node)
        else:
            self.emit(f"if {self.condition(node, ctx)}:", node)
        after_pipe = len(ctx.scope)
        self.block(node.list, ctx)
        del ctx.scope[after_pipe:]
        else_list = node.else_list
        if else_list is not None:
            if len(else_list.nodes) == 1 and isinstance(else_list.nodes[0], n.IfNode):
                self.compile_if(else_list.nodes[0], ctx, "elif")
            else:
                self.emit("else:")
                self.block(else_list, ctx)
        del ctx.scope[depth:]

    def compile_with(self, node: n.WithNode, ctx: _Context) -> None:
        depth = len(ctx.scope)
        value = self.condition(node, ctx)
        dot = self.temp("d")
        self.emit(f"{dot} = {value}", node)
        self.emit(f"if {dot}:")
        after_pipe = len(ctx.scope)
        self.block(node.list, _Context(dot, False, ctx.scope))
        del ctx.scope[after_pipe:]
        if node.else_list is not None:
            self.emit("else:")
            self.block(node.else_list, ctx)
        del ctx.scope[depth:]

    def compile_range(self, node: n.RangeNode, ctx: _Context) -> None:
        depth = len(ctx.scope)
        value, _ = self.pipe(node.pipe, ctx)
        decl = node.pipe.decl
        source = self.temp("r")
        self.emit(f"{source} = {value}", node.pipe)
        locals_ = []
        for var in decl:  # Go first gives every declared variable the pipeline's value
            local = self.temp("v")
            self.variables[local] = var.ident[0]
            ctx.scope.append((var.ident[0], local))
            locals_.append(local)
            self.emit(f"{local} = {source}")
        if decl:
            self.strict_locals.add(locals_[-1])
        dot = locals_[-1] if decl else self.temp("e")
        copy_dot = ""
        if decl and decl[-1].ident[0] in _assigned_names(node.list):
            # The body assigns the element variable: dot must keep the element.
            copy_dot, dot = dot, self.temp("e")
            self.strict_locals.add(dot)
        last = node.pipe.cmds[-1].args[-1]  # where Go's evaluation stood when range fails
        if len(decl) == 2:
            items = self.mark(last, f"_rp({source})")
            target = f"{locals_[0]}, {dot}"
        else:
            items = self.mark(last, f"_rv({source})")
            target = dot
        after_pipe = len(ctx.scope)
        body_ctx = _Context(dot, True, ctx.scope)
        if node.else_list is None:
            self.emit(f"for {target} in {items}:")
            self.range_body(node.list, body_ctx, copy_dot)
        else:
            seq = self.temp("s")
            self.emit(f"{seq} = {items}")
            self.emit(f"if {seq}:")
            self.indent += 1
            self.emit(f"for {target} in {seq}:")
            self.range_body(node.list, body_ctx, copy_dot)
            self.indent -= 1
            del ctx.scope[after_pipe:]
            self.emit("else:")
            self.block(node.else_list, ctx)
        del ctx.scope[depth:]

    def range_body(self, body: n.ListNode, ctx: _Context, copy_to: str) -> None:
        if copy_to:
            self.indent += 1
            self.emit(f"{copy_to} = {ctx.dot}")
            self.indent -= 1
        self.block(body, ctx)

    def compile_template_call(self, node: n.TemplateNode, ctx: _Context) -> None:
        fname = self.functions.get(node.name)
        if fname is None:
            self.emit(self.fail(node, f"template {quote(node.name)} not defined"), node)
            return
        value = "None"
        if node.pipe is not None:
            value, _ = self.pipe(node.pipe, ctx)
            if node.pipe.decl:
                value = self.declare(node.pipe, value, ctx)
        self.emit(f"{fname}({value}, F, w)", node)

    # -- expressions ---------------------------------------------------------------------------

    def pipe(self, pipe: n.PipeNode, ctx: _Context) -> tuple[str, str]:
        """Code for a pipeline's value, and its Go type when known ("" when not)."""
        value: str | None = None
        result = ""
        hoisted: list[str] = []
        for i, cmd in enumerate(pipe.cmds):
            if value is not None and not self.final_first(cmd):
                temp = self.temp()
                hoisted.append(f"({temp} := {value})")
                value = temp
            value, result = self.command(cmd, value, ctx)
            if i == 0 and isinstance(cmd.args[0], n.StringNode):
                result = "string"
        assert value is not None
        if hoisted:
            value = "(" + ", ".join([*hoisted, value]) + ")[-1]"
        return value, result

    @staticmethod
    def final_first(cmd: n.CommandNode) -> bool:
        """Whether a pipeline's previous value can be evaluated in place within `cmd`
        (nothing with effects or failures comes before it)."""
        first = cmd.args[0]
        if isinstance(first, n.IdentifierNode):
            if first.ident in ("and", "or"):
                return not cmd.args[1:]
            return all(isinstance(a, _PURE) for a in cmd.args[1:])
        return False

    def command(self, cmd: n.CommandNode, final: str | None, ctx: _Context) -> tuple[str, str]:
        first = cmd.args[0]
        rest = cmd.args[1:]
        if isinstance(first, n.IdentifierNode):
            return self.call(first, rest, final, cmd, ctx)
        if isinstance(first, n.VariableNode) and len(first.ident) == 1:
            return self.not_a_function(cmd, final, self.variable(first, ctx), ctx), ""
        if isinstance(first, n.FieldNode | n.ChainNode | n.VariableNode):
            return self.field_access(first, rest, final, ctx), ""
        if isinstance(first, n.NilNode):
            if rest or final is not None:
                return self.not_a_function(cmd, final, "None", ctx), ""
            return self.fail(first, "nil is not a command"), ""
        code, result = self.value(first, ctx), ""
        return self.not_a_function(cmd, final, code, ctx), result

    def is_range_variable(self, local: str) -> bool:
        """Whether `local` holds range elements (where a nil is a nil interface, as in Go)."""
        return local in self.strict_locals

    def not_a_function(self, cmd: n.CommandNode, final: str | None, code: str,
                       ctx: _Context) -> str:  # fmt: skip
        if len(cmd.args) > 1 or final is not None:
            first = cmd.args[0]
            evaluated = [final] if final is not None else []
            return self.fail(first, f"can't give argument to non-function {first}", *evaluated)
        return code

    def variable(self, node: n.VariableNode, ctx: _Context) -> str:
        name = node.ident[0]
        local = ctx.lookup(name)
        if local is None:
            return self.fail(node, f"undefined variable: {name}")
        return local

    def value(self, node: n.Node, ctx: _Context) -> str:  # noqa: C901 - one case per node
        """Code for `node` as an untyped argument (Go's evalEmptyInterface)."""
        if isinstance(node, n.DotNode):
            return ctx.dot
        if isinstance(node, n.StringNode):
            return repr(node.text)
        if isinstance(node, n.BoolNode):
            return repr(node.value)
        if isinstance(node, n.NilNode):
            return "None"
        if isinstance(node, n.NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, n.VariableNode) and len(node.ident) == 1:
            return self.variable(node, ctx)
        if isinstance(node, n.FieldNode | n.ChainNode | n.VariableNode):
            return self.field_access(node, [], None, ctx)
        if isinstance(node, n.PipeNode):
            return self.pipe(node, ctx)[0]
        if isinstance(node, n.IdentifierNode):
            return self.call(node, [], None, node, ctx)[0]
        raise AssertionError(f"unexpected operand {node!r}")

    def field_access(
        self, node: n.FieldNode | n.ChainNode | n.VariableNode, args: list[n.Node],
        final: str | None, ctx: _Context,
    ) -> str:  # fmt: skip
        """`.A.B`, `(x).A.B` or `$v.A.B` (a variable with fields), called as a method when
        given arguments or a pipeline's `final` value."""
        if isinstance(node, n.FieldNode):
            return self.fields(ctx.dot, node.ident, args, final, node, ctx.strict, ctx)
        if isinstance(node, n.ChainNode):
            if isinstance(node.node, n.NilNode):
                return self.fail(node, f"indirection through explicit nil in {node}")
            receiver = self.value(node.node, ctx)
            return self.fields(receiver, node.fields, args, final, node, False, ctx)
        local = self.variable(node, ctx)
        strict = self.is_range_variable(local)
        return self.fields(local, node.ident[1:], args, final, node, strict, ctx)

    def ideal_constant(self, node: n.NumberNode) -> str:
        text = node.text
        if node.complex128 is not None:
            return repr(node.complex128)
        if (
            node.float64 is not None
            and not _is_hex_int(text)
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return repr(node.float64)
        if node.int64 is not None:
            return repr(node.int64)
        if node.uint64 is not None:
            return self.fail(node, f"{text} overflows int")
        return "None"

    def fields(
        self, receiver: str, names: list[str], args: list[n.Node], final: str | None,
        node: n.Node, strict: bool, ctx: _Context,
    ) -> str:  # fmt: skip
        """`receiver.A.B` (a method call when there are arguments or a pipeline value)."""
        flag = ", True" if strict else ""
        if args or final is not None:
            values = [self.value(a, ctx) for a in args]
            if final is not None:
                values.append(final)
            packed = "(" + "".join(v + ", " for v in values) + ")"
            if len(names) == 1:
                return self.mark(node, f"_cf({receiver}, {names[0]!r}, {packed}{flag})")
            return self.mark(node, f"_cfs({receiver}, {tuple(names)!r}, {packed}{flag})")
        if len(names) == 1:
            return self.mark(node, f"_gf({receiver}, {names[0]!r}{flag})")
        return self.mark(node, f"_gfs({receiver}, {tuple(names)!r}{flag})")

    def arg(self, node: n.Node, go_type: str, ctx: _Context) -> str:  # noqa: C901
        """Code for `node` as an argument of Go type `go_type` (Go's evalArg)."""
        if go_type in ("interface {}", "reflect.Value"):
            return self.value(node, ctx)
        if isinstance(node, _CONSTANTS):
            return self.constant_arg(node, go_type)
        return self.typed(self.value(node, ctx), go_type, node)

    def typed(self, code: str, go_type: str, node: n.Node) -> str:
        """`code` checked at run time to be a value of Go type `go_type` (failing at `node`)."""
        if go_type in ("interface {}", "reflect.Value"):
            return code
        if go_type == "string":
            return self.mark(node, f"_ws({code})")
        if go_type == "int":
            return self.mark(node, f"_wi({code})")
        return self.mark(node, f"_want({code}, {go_type!r})")

    def constant_arg(self, node: n.Node, go_type: str) -> str:  # noqa: C901
        if isinstance(node, n.NilNode):
            if go_type.startswith("[]"):
                return "[]"
            if go_type.startswith("map["):
                return "{}"
            if go_type.startswith("*"):
                return "None"
            return self.fail(node, f"cannot assign nil to {go_type}")
        if go_type == "string":
            if isinstance(node, n.StringNode):
                return repr(node.text)
            return self.fail(node, f"expected string; found {node}")
        if go_type in ("int", "time.Duration"):
            if isinstance(node, n.NumberNode) and node.int64 is not None:
                return repr(node.int64)
            return self.fail(node, f"expected integer; found {node}")
        if go_type == "bool":
            if isinstance(node, n.BoolNode):
                return repr(node.value)
            return self.fail(node, f"expected bool; found {node}")
        if go_type == "float64":
            if isinstance(node, n.NumberNode) and node.float64 is not None:
                return repr(node.float64)
            return self.fail(node, f"expected float; found {node}")
        return self.fail(node, f"can't handle {node} for arg of type {go_type}")

    def call(
        self, ident: n.IdentifierNode, args: list[n.Node], final: str | None, cmd: n.Node,
        ctx: _Context,
    ) -> tuple[str, str]:  # fmt: skip
        """Code for calling the function `ident` with `args` (and a pipeline's `final`)."""
        name = ident.ident
        builtin = name in BUILTIN_SIGNATURES
        sig = BUILTIN_SIGNATURES[name] if builtin else self.signatures.get(name)
        evaluated = [final] if final is not None else []
        num_in = len(args) + len(evaluated)
        if sig is not None:
            fixed = len(sig.params)
            if sig.variadic is not None:
                if num_in < fixed:
                    message = (f"wrong number of args for {name}: want at least {fixed} "
                               f"got {len(args)}")  # fmt: skip
                    return self.fail(ident, self.with_signature(message, name, sig),
                                     *evaluated), ""  # fmt: skip
            elif num_in != fixed:
                message = f"wrong number of args for {name}: want {fixed} got {num_in}"
                return self.fail(ident, self.with_signature(message, name, sig), *evaluated), ""
        if builtin:
            return self.builtin_call(name, args, final, cmd, ctx), sig.result
        local = self.used_functions.get(name)
        if local is None:
            local = self.used_functions[name] = f"f{len(self.used_functions)}"
        if sig is None:  # a function we know no signature for: Go values in, as they are
            values = [self.value(a, ctx) for a in args] + evaluated
            return self.mark(cmd, f"{local}({', '.join(values)})"), ""
        values = []
        for i, a in enumerate(args):
            go_type = sig.params[i] if i < len(sig.params) else sig.variadic
            assert go_type is not None
            values.append(self.arg(a, go_type, ctx))
        if final is not None:
            position = num_in - 1
            go_type = sig.params[position] if position < len(sig.params) else sig.variadic
            assert go_type is not None
            values.append(self.typed(final, go_type, cmd))
        if sig.pass_args is not None and len(values) > sig.pass_args:
            kept = ", ".join(values[: sig.pass_args])
            dropped = ", ".join(values[sig.pass_args :])
            return self.mark(cmd, f"({dropped}, {local}({kept}))[-1]"), sig.result
        return self.mark(cmd, f"{local}({', '.join(values)})"), sig.result

    @staticmethod
    def with_signature(message: str, name: str, sig: Signature) -> str:
        return f"{message} ({name} is {sig.describe()})"

    def builtin_call(
        self, name: str, args: list[n.Node], final: str | None, cmd: n.Node, ctx: _Context
    ) -> str:
        values = []
        for i, a in enumerate(args):
            go_type = "string" if name == "printf" and i == 0 else "reflect.Value"
            values.append(self.arg(a, go_type, ctx))
        if final is not None:
            if name == "printf" and not args:
                final = self.typed(final, "string", cmd)
            values.append(final)
        if name in ("and", "or"):
            return "(" + f" {name} ".join(values) + ")"
        if name == "not":
            return f"(not {values[0]})"
        if name == "eq":
            helper = "_eq2" if len(values) == 2 else "_eq"
            return self.mark(cmd, f"{helper}({', '.join(values)})")
        return self.mark(cmd, f"{_BUILTIN_CALLS[name]}({', '.join(values)})")


def _assigned_names(node: n.Node | None) -> set[str]:
    """Go variables that `{{$x = ...}}` assigns anywhere under `node`."""
    names: set[str] = set()
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, n.ListNode):
            stack.extend(item.nodes)
        elif isinstance(item, n.ActionNode | n.TemplateNode):
            stack.append(item.pipe)
        elif isinstance(item, n.BranchNode):
            stack.extend((item.pipe, item.list, item.else_list))
        elif isinstance(item, n.PipeNode):
            if item.is_assign:
                names.update(v.ident[0] for v in item.decl)
            for cmd in item.cmds:
                stack.extend(a for a in cmd.args if isinstance(a, n.PipeNode | n.ChainNode))
        elif isinstance(item, n.ChainNode):
            stack.append(item.node)
    return names


def compile_trees(trees: Mapping[str, Tree], signatures: Mapping[str, Signature]) -> Compiled:
    """Python source for every tree; `signatures` type the calls of non-builtin functions."""
    return _Compiler(trees, signatures).compile()


def helper_namespace() -> dict[str, Any]:
    """The runtime names generated code refers to."""
    from confd.template.golang import runtime

    namespace: dict[str, Any] = {alias: getattr(runtime, name) for alias, name in _HELPERS.items()}
    namespace["_undefined"] = runtime.undefined_function
    return namespace
