"""Go confd templates rewritten as the Jinja a person would write, rendering the same bytes.

    result = convert(source, "nginx.conf.tmpl", function_names)
    if result.problems: ...  # each names a line and a construct; `text` is None
    else: write(result.text)

`{{getv "/x"}}` becomes `{{ getv("/x") }}`, `{{range gets "/a/*"}}{{.Value}}{{end}}` becomes
`{% for kv in gets("/a/*") %}{{ kv.value }}{% endfor %}`, `{{if exists "/k"}}` becomes
`{% if exists("/k") %}`, `$x := ...` becomes `{% set x = ... %}`, trim markers stay trim
markers, comments stay comments, and text that means something to Jinja (`{{`, `{%`, `{#`) is
escaped. Where Jinja has no exact equivalent the converted template calls a documented helper
(`printf`, Go's fmt.Sprintf, see `JINJA_HELPERS`) or the conversion is refused for that
construct. Exactness assumes Jinja prints Go-style (`confd.template.printing.finalize`).

Known limit: Go decodes every JSON number as float64, so a JSON integer of a million or more
prints as `1e+06` in Go; Jinja's `json()` gives a Python int, printed `1000000`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from typing import Any, NamedTuple

from confd.template.golang import nodes as n
from confd.template.golang.errors import position
from confd.template.golang.fmt import sprintf
from confd.template.golang.functions import SIGNATURES
from confd.template.golang.lexer import SPACES, Kind, has_left_trim, has_right_trim, tokenize
from confd.template.golang.parser import parse

__all__ = ["JINJA_HELPERS", "Converted", "Problem", "convert"]

# Functions converted templates may call that confd's function set does not have.
JINJA_HELPERS: dict[str, Callable[..., Any]] = {
    "printf": sprintf,  # Go's fmt.Sprintf: `printf("%-10s|%5.2f", name, ratio)`
}

_OR, _AND, _NOT, _COMPARE, _CONCAT, _ATOM = 1, 2, 3, 4, 6, 10
_JINJA_RESERVED = frozenset((
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
    "else", "elif", "for", "endfor", "endif", "set", "with", "loop", "namespace", "range",
    "dict", "lipsum", "cycler", "joiner", "self", "caller", "varargs", "kwargs", "super",
    "block", "macro", "import", "from", "include", "recursive", "ignore", "missing", "scoped",
))  # fmt: skip
_DICT_ATTRIBUTES = frozenset(dir(dict))
_JINJA_SYNTAX = re.compile(r"\{[{%#]|\{(?=\r)|\r")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRUCT_FIELDS = {
    "memkv.KVPair": {"Key": ("key", "string"), "Value": ("value", "string")},
    "*net.SRV": {"Target": ("target", "string"), "Port": ("port", "int"),
                 "Priority": ("priority", "int"), "Weight": ("weight", "int")},
}  # fmt: skip
_ELEMENT_NAMES = {"memkv.KVPair": "kv", "*net.SRV": "srv", "int": "n"}
_FUNCTION_ELEMENT_NAMES = {
    "ls": "name", "lsdir": "name", "getvs": "value", "split": "part", "lookupIP": "ip",
    "lookupIPV4": "ip", "lookupIPV6": "ip", "jsonArray": "item", "seq": "n",
}  # fmt: skip
_STRFTIME = {
    "2006": "%Y", "06": "%y", "01": "%m", "02": "%d", "15": "%H", "03": "%I", "04": "%M",
    "05": "%S", "Jan": "%b", "January": "%B", "Mon": "%a", "Monday": "%A", "MST": "%Z",
    "-0700": "%z", "002": "%j", "PM": "%p",
}  # fmt: skip


class Problem(NamedTuple):
    """A construct that cannot be converted exactly: its line, its Go text, and why."""

    line: int
    construct: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.construct}: {self.reason}"


class Converted(NamedTuple):
    """The Jinja text (None when any construct could not be converted) and the problems."""

    text: str | None
    problems: list[Problem]


class _Refused(Exception):
    """A construct cannot be converted exactly; the converter records it and goes on."""

    def __init__(self, node: n.Node, reason: str, construct: str | None = None) -> None:
        super().__init__(reason)
        self.node = node
        self.reason = reason
        self.construct = construct


class _Expr(NamedTuple):
    code: str
    prec: int
    type: str  # the Go type when known, "" when not

    def at(self, prec: int) -> str:
        """The code, parenthesised if it binds looser than `prec`."""
        return self.code if self.prec >= prec else f"({self.code})"


class _Tag:
    """One `{{ ... }}` of the source: its span, trim markers and leading keyword."""

    __slots__ = ("start", "end", "left_trim", "right_trim", "keyword", "comment")

    def __init__(self, start: int, end: int, left_trim: bool, right_trim: bool, keyword: str,
                 comment: str = "") -> None:  # fmt: skip
        self.start = start
        self.end = end
        self.left_trim = left_trim
        self.right_trim = right_trim
        self.keyword = keyword
        self.comment = comment


_KEYWORDS = {
    Kind.IF: "if", Kind.ELSE: "else", Kind.END: "end", Kind.RANGE: "range", Kind.WITH: "with",
    Kind.DEFINE: "define", Kind.TEMPLATE: "template", Kind.BLOCK: "block", Kind.BREAK: "break",
    Kind.CONTINUE: "continue",
}  # fmt: skip


def _tags(source: str) -> list[_Tag]:
    """Every action and comment of `source`, in order (the source is known to parse)."""
    tags: list[_Tag] = []
    tokens = tokenize(source, comments=True)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == Kind.COMMENT:
            c = token.pos
            left = source[c - 2 : c] != "{{"
            start = c - 4 if left else c - 2
            e = c + len(token.val)
            right = has_right_trim(source, e)
            end = e + 4 if right else e + 2
            tags.append(_Tag(start, end, left, right, "comment", token.val[2:-2]))
        elif token.kind == Kind.LEFT_DELIM:
            start = token.pos
            left = has_left_trim(source, start + 2)
            j = i + 1
            while tokens[j].kind == Kind.SPACE:
                j += 1
            keyword = _KEYWORDS.get(tokens[j].kind, "action")
            if keyword == "else":
                k = j + 1
                while tokens[k].kind == Kind.SPACE:
                    k += 1
                if tokens[k].kind == Kind.IF:
                    keyword = "elseif"
            while tokens[j].kind != Kind.RIGHT_DELIM:
                j += 1
            q = tokens[j].pos
            right = has_right_trim(source, q - 2)
            tags.append(_Tag(start, q + 2, left, right, keyword))
            i = j
        i += 1
    return tags


class _Binding:
    __slots__ = ("name", "type", "depth", "namespace")

    def __init__(self, name: str, go_type: str, depth: int, namespace: bool = False) -> None:
        self.name = name  # the Jinja name
        self.type = go_type
        self.depth = depth  # loop depth where it is declared
        self.namespace = namespace  # held as `name.value` in a namespace() (set inside loops)

    @property
    def ref(self) -> str:
        return f"{self.name}.value" if self.namespace else self.name


class _Converter:
    def __init__(self, source: str, trees: dict, name: str) -> None:
        self.source = source
        self.name = name
        self.trees = trees
        self.tags = _tags(source)
        self.cursor = 0
        self.position = 0  # end of the last tag written
        self.out: list[str] = []
        self.problems: list[Problem] = []
        self.scope: list[tuple[str, _Binding]] = []
        self.loop_depth = 0
        self.loop_index_names: list[tuple[str, str]] = []  # ($i, jinja name) per open loop
        self.namespaced: set[int] = set()
        self.pending_right_trim = False
        self.right_trim_index = -1  # the output piece holding the last "-%}"-style closing
        self.left_trim_ok = True  # whether the tag being written may keep Go's "{{-" as "-"

    # -- output --------------------------------------------------------------------------------

    def problem(self, node_or_pos: n.Node | int, construct: str, reason: str) -> None:
        pos = node_or_pos if isinstance(node_or_pos, int) else node_or_pos.pos
        line, _ = position(self.source, pos)
        self.problems.append(Problem(line, construct, reason))

    def text_until(self, tag: _Tag | None) -> None:
        """Write the source text between the last tag and `tag` (None: to the end)."""
        end = len(self.source) if tag is None else tag.start
        raw = self.source[self.position : end]
        lead = len(raw) - len(raw.lstrip(SPACES)) if self.pending_right_trim else 0
        trail = 0
        if tag is not None and tag.left_trim:
            trail = len(raw) - len(raw.rstrip(SPACES))
        if lead + trail >= len(raw):
            kept, head, tail = "", raw, ""
        else:
            head, kept, tail = raw[:lead], raw[lead : len(raw) - trail], raw[len(raw) - trail :]
        # Jinja's "-" strips every Unicode space, Go's only " \t\r\n": where they would differ,
        # write the text as Go trims it and leave the marker out.
        if self.pending_right_trim and kept[:1].isspace():
            closing = self.out[self.right_trim_index]
            self.out[self.right_trim_index] = closing[:-3] + closing[-2:]  # drop the "-"
            head = ""
        self.left_trim_ok = not (tag is not None and tag.left_trim and kept[-1:].isspace())
        if not self.left_trim_ok:
            tail = ""
        self.out.append(head + _escape_text(kept, tag is not None and not tail) + tail)
        self.pending_right_trim = False

    def open_tag(self, tag: _Tag) -> tuple[str, str]:
        """Write the text before `tag`; the trim markers (left, right) its Jinja tags take."""
        self.text_until(tag)
        left = "-" if tag.left_trim and self.left_trim_ok else ""
        return left, "-" if tag.right_trim else ""

    def close_tag(self, tag: _Tag) -> None:
        """After the Jinja tags for `tag` are written: the text after it starts there."""
        if tag.right_trim:
            self.right_trim_index = len(self.out) - 1
        self.pending_right_trim = tag.right_trim
        self.position = tag.end

    def write_tag(self, tag: _Tag, body: str, kind: str) -> None:
        """Write one Jinja tag (`kind` is "{%", "{{" or "{#") standing for the Go `tag`."""
        left, right = self.open_tag(tag)
        close = {"{%": "%}", "{{": "}}", "{#": "#}"}[kind]
        self.out.append(f"{kind}{left} {body} {right}{close}")
        self.close_tag(tag)

    def write_tags(self, tag: _Tag, bodies: list[str]) -> None:
        """Several Jinja block tags for one Go tag (its trim markers on the outer ones)."""
        left, right = self.open_tag(tag)
        for i, body in enumerate(bodies):
            first, last = i == 0, i == len(bodies) - 1
            self.out.append(f"{{%{left if first else ''} {body} {right if last else ''}%}}")
        self.close_tag(tag)

    def next_tag(self, keyword: str) -> _Tag:
        """The next tag, writing the comments before it."""
        while True:
            tag = self.tags[self.cursor]
            self.cursor += 1
            if tag.keyword == "comment":
                self.write_comment(tag)
                continue
            assert tag.keyword == keyword or keyword == "*", (tag.keyword, keyword)
            return tag

    def write_comment(self, tag: _Tag) -> None:
        if "#}" in tag.comment:
            self.problem(tag.start, "{{/*" + tag.comment + "*/}}", "the comment holds `#}`")
        left, right = self.open_tag(tag)
        self.out.append(f"{{#{left}{tag.comment}{right}#}}")
        self.close_tag(tag)

    # -- templates -------------------------------------------------------------------------------

    def convert(self) -> Converted:
        defines = [tag for tag in self.tags if tag.keyword in ("define", "block")]
        for tag in defines:
            construct = self.source[tag.start : tag.end]
            self.problem(tag.start, construct, "defined templates are not converted (Jinja "
                         "macros scope variables differently)")  # fmt: skip
        if defines:
            return Converted(None, self.problems)
        self.namespaced = _namespaced_declarations(self.trees[self.name].root)
        self.convert_list(self.trees[self.name].root, None)
        for tag in self.tags[self.cursor :]:  # comments after the last action
            self.write_comment(tag)
        self.cursor = len(self.tags)
        self.text_until(None)
        if self.problems:
            return Converted(None, self.problems)
        return Converted("".join(self.out), [])

    def convert_list(self, body: n.ListNode | None, dot: _Expr | None) -> None:
        if body is None:
            return
        for node in body.nodes:
            if isinstance(node, n.TextNode):
                continue  # text is written from the source, between tags
            consumed = self.consumed()
            scope, loop_depth = len(self.scope), self.loop_depth
            try:
                self.convert_node(node, dot)
            except _Refused as refused:
                construct = refused.construct or _construct(node)
                self.problem(refused.node, construct, refused.reason)
                self.skip(_tag_count(node) - (self.consumed() - consumed))
                del self.scope[scope:]
                self.loop_depth = loop_depth

    def consumed(self) -> int:
        """How many tags other than comments have been taken."""
        return sum(1 for tag in self.tags[: self.cursor] if tag.keyword != "comment")

    def skip(self, count: int) -> None:
        """Consume the remaining tags of a node that was refused (its problem is recorded)."""
        for _ in range(count):
            tag = self.next_tag("*")
            self.position = tag.end

    def convert_node(self, node: n.Node, dot: _Expr | None) -> None:
        if isinstance(node, n.ActionNode):
            self.convert_action(node, dot)
        elif isinstance(node, n.IfNode):
            self.convert_if(node, dot, "if")
        elif isinstance(node, n.RangeNode):
            self.convert_range(node, dot)
        elif isinstance(node, n.WithNode):
            self.convert_with(node, dot)
        elif isinstance(node, n.BreakNode | n.ContinueNode):
            raise _Refused(node, "Jinja has no break/continue without the loopcontrols extension")
        elif isinstance(node, n.TemplateNode):
            raise _Refused(node, "template calls are not converted")
        else:
            raise _Refused(node, "not converted")

    # -- variables -------------------------------------------------------------------------------

    def lookup(self, name: str) -> _Binding | None:
        for go_name, binding in reversed(self.scope):
            if go_name == name:
                return binding
        return None

    def fresh(self, wanted: str) -> str:
        """A Jinja name like `wanted` that nothing visible uses and that is no function."""
        base = wanted if _IDENTIFIER.match(wanted) and wanted not in _JINJA_RESERVED else "v"
        if base in SIGNATURES or base in JINJA_HELPERS:
            base += "_"
        taken = {b.name for _, b in self.scope}
        name, i = base, 2
        while name in taken:
            name, i = f"{base}{i}", i + 1
        return name

    def declare(self, var: n.VariableNode, go_type: str, *, loop_var: bool = False) -> _Binding:
        go_name = var.ident[0]
        binding = _Binding(self.fresh(go_name[1:]), go_type, self.loop_depth,
                           namespace=id(var) in self.namespaced and not loop_var)  # fmt: skip
        self.scope.append((go_name, binding))
        return binding

    def set_statement(self, pipe: n.PipeNode, value: _Expr) -> str:
        var = pipe.decl[0]
        if pipe.is_assign:
            binding = self.lookup(var.ident[0])
            if binding is None:
                raise _Refused(var, "assigns a variable that does not exist there")
            if binding.name == "loop.index0":
                raise _Refused(var, "assigns the index of a range")
            binding.type = binding.type if binding.type == value.type else ""
            return f"set {binding.ref} = {value.code}"
        binding = self.declare(var, value.type)
        if binding.namespace:
            return f"set {binding.name} = namespace(value={value.code})"
        return f"set {binding.name} = {value.code}"

    # -- statements ------------------------------------------------------------------------------

    def convert_action(self, node: n.ActionNode, dot: _Expr | None) -> None:
        value = self.pipe(node.pipe, dot)
        if node.pipe.decl:
            statement = self.set_statement(node.pipe, value)
            self.write_tag(self.next_tag("action"), statement, "{%")
            return
        if value.type == "time.Time":
            raise _Refused(node, "Go prints a time with its monotonic clock reading")
        self.write_tag(self.next_tag("action"), value.code, "{{")

    def condition(self, pipe: n.PipeNode, dot: _Expr | None) -> tuple[str, _Expr]:
        """(set statement or "", the condition) for an if/with pipeline."""
        value = self.pipe(pipe, dot, boolean=True)
        if pipe.decl:
            statement = self.set_statement(pipe, value)
            binding = self.lookup(pipe.decl[0].ident[0])
            assert binding is not None
            return statement, _Expr(binding.ref, _ATOM, value.type)
        return "", value

    def convert_if(self, node: n.IfNode, dot: _Expr | None, keyword: str) -> None:
        depth = len(self.scope)
        if node.pipe.decl and keyword == "elif":
            raise _Refused(node, "a variable declared in {{else if}} has no Jinja equivalent")
        statement, cond = self.condition(node.pipe, dot)
        tag = self.next_tag("elseif" if keyword == "elif" else "if")
        bodies = [statement] if statement else []
        self.write_tags(tag, [*bodies, f"{keyword} {cond.code}"])
        after_pipe = len(self.scope)
        self.convert_list(node.list, dot)
        del self.scope[after_pipe:]
        else_list = node.else_list
        if else_list is not None:
            if node.else_if:
                self.convert_if(else_list.nodes[0], dot, "elif")  # type: ignore[arg-type]
                del self.scope[depth:]
                return
            self.write_tag(self.next_tag("else"), "else", "{%")
            self.convert_list(else_list, dot)
        del self.scope[depth:]
        self.write_tag(self.next_tag("end"), "endif", "{%")

    def convert_with(self, node: n.WithNode, dot: _Expr | None) -> None:
        depth = len(self.scope)
        value = self.pipe(node.pipe, dot, boolean=True)
        tag = self.next_tag("with")
        if node.pipe.decl:
            statement = self.set_statement(node.pipe, value)
            binding = self.lookup(node.pipe.decl[0].ident[0])
            assert binding is not None
            new_dot = _Expr(binding.ref, _ATOM, value.type)
        else:
            name = self.fresh(_element_name(value.type, node.pipe))
            binding = _Binding(name, value.type, self.loop_depth)
            self.scope.append(("", binding))
            statement = f"set {name} = {value.code}"
            new_dot = _Expr(name, _ATOM, value.type)
        self.write_tags(tag, [statement, f"if {new_dot.code}"])
        after_pipe = len(self.scope)
        self.convert_list(node.list, new_dot)
        del self.scope[after_pipe:]
        if node.else_list is not None:
            self.write_tag(self.next_tag("else"), "else", "{%")
            self.convert_list(node.else_list, dot)
        del self.scope[depth:]
        self.write_tag(self.next_tag("end"), "endif", "{%")

    def convert_range(self, node: n.RangeNode, dot: _Expr | None) -> None:
        depth = len(self.scope)
        source = self.pipe(node.pipe, dot)
        tag = self.next_tag("range")
        decl = node.pipe.decl
        is_map = source.type.startswith("map[")
        element = _element_type(source.type)
        self.loop_depth += 1
        index_name = ""
        if decl and len(decl) == 2:
            index_var, elem_var = decl
            if is_map:
                key = self.declare(index_var, "string", loop_var=True)
                index_name = key.name
            else:
                index_name = "loop.index0"
                self.scope.append((index_var.ident[0], _Binding("loop.index0", "int",
                                                                self.loop_depth)))  # fmt: skip
            value = self.declare(elem_var, element, loop_var=True)
        elif decl:
            value = self.declare(decl[0], element, loop_var=True)
        else:
            name = self.fresh(_element_name(element, node.pipe))
            value = _Binding(name, element, self.loop_depth)
            self.scope.append(("", value))
        if is_map:
            target = f"{index_name if index_name else '_'}, {value.name}"
            iterable = f"{source.at(_ATOM)} | dictsort(true)"
        else:
            target = value.name
            iterable = source.code
        bodies = [f"for {target} in {iterable}"]
        if not is_map and decl and len(decl) == 2 and _uses_in_nested_loop(
            node.list, decl[0].ident[0]
        ):
            index = self.fresh(decl[0].ident[0][1:])
            self.scope[-2] = (decl[0].ident[0], _Binding(index, "int", self.loop_depth))
            bodies.append(f"set {index} = loop.index0")
        self.write_tags(tag, bodies)
        after_pipe = len(self.scope)
        self.convert_list(node.list, _Expr(value.name, _ATOM, element))
        del self.scope[after_pipe:]
        self.loop_depth -= 1
        if node.else_list is not None:
            del self.scope[depth:]
            self.write_tag(self.next_tag("else"), "else", "{%")
            self.convert_list(node.else_list, dot)
        del self.scope[depth:]
        self.write_tag(self.next_tag("end"), "endfor", "{%")

    # -- expressions -----------------------------------------------------------------------------

    def pipe(self, pipe: n.PipeNode, dot: _Expr | None, boolean: bool = False) -> _Expr:
        value: _Expr | None = None
        for cmd in pipe.cmds:
            value = self.command(cmd, value, dot, boolean and cmd is pipe.cmds[-1])
        assert value is not None
        return value

    def command(self, cmd: n.CommandNode, final: _Expr | None, dot: _Expr | None,
                boolean: bool) -> _Expr:  # fmt: skip
        first, args = cmd.args[0], cmd.args[1:]
        if isinstance(first, n.IdentifierNode):
            return self.call(first.ident, args, final, cmd, dot)
        if args or final is not None:
            if isinstance(first, n.FieldNode | n.ChainNode | n.VariableNode):
                return self.method(first, args, final, dot)
            raise _Refused(cmd, "gives arguments to a value that is not a function")
        return self.operand(first, dot, boolean)

    def operand(self, node: n.Node, dot: _Expr | None, boolean: bool = False) -> _Expr:
        if isinstance(node, n.StringNode):
            return _Expr(_jinja_string(node, node.text), _ATOM, "string")
        if isinstance(node, n.BoolNode):
            return _Expr("true" if node.value else "false", _ATOM, "bool")
        if isinstance(node, n.NilNode):
            raise _Refused(node, "nil is not a value in Jinja")
        if isinstance(node, n.NumberNode):
            return self.number(node)
        if isinstance(node, n.DotNode):
            if dot is None:
                raise _Refused(node, "dot is nil outside range and with in confd")
            return dot
        if isinstance(node, n.FieldNode):
            if dot is None:
                raise _Refused(node, "dot is nil outside range and with in confd")
            return self.fields(dot, node.ident, node, boolean)
        if isinstance(node, n.VariableNode):
            binding = self.lookup(node.ident[0])
            if node.ident[0] == "$" or binding is None:
                raise _Refused(node, "$ is nil in confd templates")
            base = _Expr(binding.ref, _ATOM, binding.type)
            return self.fields(base, node.ident[1:], node, boolean) if node.ident[1:] else base
        if isinstance(node, n.PipeNode):
            return self.pipe(node, dot, boolean)
        if isinstance(node, n.ChainNode):
            base = self.operand(node.node, dot)
            return self.fields(base, node.fields, node, boolean)
        if isinstance(node, n.IdentifierNode):
            return self.call(node.ident, [], None, node, dot)
        raise _Refused(node, "not converted")

    def number(self, node: n.NumberNode) -> _Expr:
        text = node.text
        if node.complex128 is not None:
            raise _Refused(node, "Jinja has no complex numbers")
        if node.float64 is not None and not text.startswith("'") and not (
            text[:2] in ("0x", "0X") and "p" not in text.lower()
        ) and any(c in text for c in ".eEpP"):  # fmt: skip
            return _Expr(repr(node.float64), _ATOM, "float64")
        if node.int64 is not None:
            return _Expr(str(node.int64), _ATOM, "int")
        raise _Refused(node, "overflows int")

    def fields(self, base: _Expr, names: list[str], node: n.Node, boolean: bool) -> _Expr:
        expr = base
        for i, name in enumerate(names):
            last = i == len(names) - 1
            struct = _STRUCT_FIELDS.get(expr.type)
            if struct is not None:
                if name not in struct:
                    raise _Refused(node, f"{expr.type} has no field {name}")
                attribute, go_type = struct[name]
                expr = _Expr(f"{expr.at(_ATOM)}.{attribute}", _ATOM, go_type)
            elif expr.type == "time.Time":
                expr = self.time_method(expr, name, [], node)
            elif expr.type in ("", "interface {}") or expr.type.startswith("map["):
                if boolean and last:
                    key = _python_string(name)
                    expr = _Expr(f"{expr.at(_ATOM)}.get({key})", _ATOM, "interface {}")
                elif _IDENTIFIER.match(name) and name not in _DICT_ATTRIBUTES:
                    expr = _Expr(f"{expr.at(_ATOM)}.{name}", _ATOM, "interface {}")
                else:
                    expr = _Expr(f"{expr.at(_ATOM)}[{_python_string(name)}]", _ATOM,
                                 "interface {}")  # fmt: skip
            else:
                raise _Refused(node, f"a {expr.type or 'value'} has no field {name}")
        return expr

    def method(self, first: n.Node, args: list[n.Node], final: _Expr | None,
               dot: _Expr | None) -> _Expr:  # fmt: skip
        if isinstance(first, n.FieldNode):
            if dot is None:
                raise _Refused(first, "dot is nil outside range and with in confd")
            base, names = dot, first.ident
        elif isinstance(first, n.VariableNode):
            binding = self.lookup(first.ident[0])
            if binding is None or len(first.ident) < 2:
                raise _Refused(first, "gives arguments to a value that is not a function")
            base, names = _Expr(binding.ref, _ATOM, binding.type), first.ident[1:]
        else:
            assert isinstance(first, n.ChainNode)
            base, names = self.operand(first.node, dot), first.fields
        receiver = self.fields(base, names[:-1], first, False) if names[:-1] else base
        if receiver.type != "time.Time":
            raise _Refused(first, f"{names[-1]} is not a method")
        values = [self.operand(a, dot) for a in args] + ([final] if final else [])
        return self.time_method(receiver, names[-1], values, first)

    def time_method(self, receiver: _Expr, name: str, args: list[_Expr], node: n.Node) -> _Expr:
        simple = {"Year": "year", "Day": "day", "Hour": "hour", "Minute": "minute",
                  "Second": "second"}  # fmt: skip
        if name in simple and not args:
            return _Expr(f"{receiver.at(_ATOM)}.{simple[name]}", _ATOM, "int")
        if name == "Month" and not args:
            return _Expr(f'{receiver.at(_ATOM)}.strftime("%B")', _ATOM, "string")
        if name == "Unix" and not args:
            return _Expr(f"{receiver.at(_ATOM)}.timestamp() | int", _ATOM, "int")
        if name == "Format" and len(args) == 1 and args[0].type == "string":
            layout = args[0].code
            if not (layout.startswith('"') and layout.endswith('"') and "\\" not in layout):
                raise _Refused(node, "Format with a layout that is not a constant")
            strftime = _strftime(layout[1:-1])
            if strftime is None:
                raise _Refused(node, "this Go time layout has no exact strftime equivalent")
            return _Expr(f"{receiver.at(_ATOM)}.strftime({_python_string(strftime)})", _ATOM,
                         "string")  # fmt: skip
        raise _Refused(node, f"time method {name} is not converted")

    def call(self, name: str, args: list[n.Node], final: _Expr | None, node: n.Node,
             dot: _Expr | None) -> _Expr:  # fmt: skip
        values = [self.operand(a, dot, name in ("and", "or", "not")) for a in args]
        if final is not None:
            values.append(final)
        builtin = _BUILTINS.get(name)
        if builtin is not None:
            return builtin(self, values, node)
        sig = SIGNATURES.get(name)
        if sig is not None:
            fixed = len(sig.params)
            if (sig.variadic is None and len(values) != fixed) or len(values) < fixed:
                raise _Refused(node, f"wrong number of arguments for {name} (an error in Go)")
            if sig.pass_args is not None and len(values) > sig.pass_args:
                raise _Refused(node, f"{name} ignores arguments after its {sig.pass_args}th")
            if name == "datetime":
                return _Expr("datetime()", _ATOM, "time.Time")
        code = f"{name}({', '.join(v.code for v in values)})"
        return _Expr(code, _ATOM, sig.result if sig else "")

    # -- builtins ----------------------------------------------------------------------------------

    def b_and_or(self, values: list[_Expr], node: n.Node, op: str) -> _Expr:
        if not values:
            raise _Refused(node, f"{op} needs arguments")
        prec = _AND if op == "and" else _OR
        types = {v.type for v in values}
        return _Expr(f" {op} ".join(v.at(prec + 1) for v in values), prec,
                     types.pop() if len(types) == 1 else "")  # fmt: skip

    def b_not(self, values: list[_Expr], node: n.Node) -> _Expr:
        if len(values) != 1:
            raise _Refused(node, "not takes one argument")
        return _Expr(f"not {values[0].at(_NOT)}", _NOT, "bool")

    def b_compare(self, values: list[_Expr], node: n.Node, op: str) -> _Expr:
        if len(values) != 2 and not (op == "==" and len(values) > 2):
            raise _Refused(node, "wrong number of arguments for a comparison")
        if len(values) > 2:
            others = ", ".join(v.code for v in values[1:])
            return _Expr(f"{values[0].at(_COMPARE + 1)} in [{others}]", _COMPARE, "bool")
        left, right = values
        if {left.type, right.type} & {"bool", "float64"} and left.type != right.type:
            raise _Refused(node, "compares values of different kinds (an error in Go)")
        return _Expr(f"{left.at(_COMPARE + 1)} {op} {right.at(_COMPARE + 1)}", _COMPARE, "bool")

    def b_len(self, values: list[_Expr], node: n.Node) -> _Expr:
        if len(values) != 1:
            raise _Refused(node, "len takes one argument")
        value = values[0]
        if value.type == "string":  # Go counts the bytes of a string
            return _Expr(f"{value.at(_ATOM)}.encode() | length", _ATOM, "int")
        return _Expr(f"{value.at(_ATOM)} | length", _ATOM, "int")

    def b_index(self, values: list[_Expr], node: n.Node) -> _Expr:
        if not values:
            raise _Refused(node, "index needs an argument")
        expr = values[0]
        for index in values[1:]:
            if expr.type == "string":
                raise _Refused(node, "index of a string gives a byte (a number) in Go")
            element = _element_type(expr.type)
            expr = _Expr(f"{expr.at(_ATOM)}[{index.code}]", _ATOM, element)
        return expr

    def b_slice(self, values: list[_Expr], node: n.Node) -> _Expr:
        if not values or len(values) > 3:
            raise _Refused(node, "slice with a third index has no Jinja equivalent")
        value = values[0]
        if value.type in ("string", "", "interface {}"):
            raise _Refused(node, "slice of a string works on bytes in Go")
        bounds = [v.code for v in values[1:]] + [""] * (3 - len(values))
        return _Expr(f"{value.at(_ATOM)}[{bounds[0]}:{bounds[1]}]", _ATOM, value.type)

    def b_printf(self, values: list[_Expr], node: n.Node) -> _Expr:
        if not values or values[0].type != "string":
            raise _Refused(node, "printf needs a format string")
        concatenated = _concatenation(values)
        if concatenated is not None:
            return concatenated
        return _Expr(f"printf({', '.join(v.code for v in values)})", _ATOM, "string")

    def b_print(self, values: list[_Expr], node: n.Node, newline: bool) -> _Expr:
        if any(v.type in ("", "interface {}") for v in values) and not newline:
            raise _Refused(node, "print spaces its operands by their types, unknown here")
        pieces = []
        for i, v in enumerate(values):
            if i > 0 and (newline or (v.type != "string" and values[i - 1].type != "string")):
                pieces.append(" ")
            pieces.append("%v")
        fmt = "".join(pieces) + ("\n" if newline else "")
        return self.b_printf([_Expr(_python_string(fmt), _ATOM, "string"), *values], node)

    def b_html(self, values: list[_Expr], node: n.Node) -> _Expr:
        if len(values) != 1 or values[0].type != "string":
            raise _Refused(node, "html of anything but one string")
        return _Expr(f"{values[0].at(_ATOM)} | e", _ATOM, "string")

    def b_refuse(self, values: list[_Expr], node: n.Node) -> _Expr:
        raise _Refused(node, "this builtin has no exact Jinja equivalent")


_BUILTINS: dict[str, Callable[[_Converter, list[_Expr], n.Node], _Expr]] = {
    "and": lambda c, v, node: c.b_and_or(v, node, "and"),
    "or": lambda c, v, node: c.b_and_or(v, node, "or"),
    "not": _Converter.b_not,
    "eq": lambda c, v, node: c.b_compare(v, node, "=="),
    "ne": lambda c, v, node: c.b_compare(v, node, "!="),
    "lt": lambda c, v, node: c.b_compare(v, node, "<"),
    "le": lambda c, v, node: c.b_compare(v, node, "<="),
    "gt": lambda c, v, node: c.b_compare(v, node, ">"),
    "ge": lambda c, v, node: c.b_compare(v, node, ">="),
    "len": _Converter.b_len,
    "index": _Converter.b_index,
    "slice": _Converter.b_slice,
    "printf": _Converter.b_printf,
    "print": lambda c, v, node: c.b_print(v, node, False),
    "println": lambda c, v, node: c.b_print(v, node, True),
    "html": _Converter.b_html,
    "js": _Converter.b_refuse,
    "urlquery": _Converter.b_refuse,
    "call": _Converter.b_refuse,
}


# -- helpers ---------------------------------------------------------------------------------


def _escape_text(text: str, before_tag: bool) -> str:
    """Template text as Jinja data: `{{`, `{%`, `{#` and carriage returns (Jinja turns \r\n
    into \n in template data) written as strings, and a `{` that would join the `{{` of what
    follows it (an escape, or the next tag) written as one too."""
    escaped = _JINJA_SYNTAX.sub(_quote_match, text)
    if before_tag and escaped.endswith("{"):
        escaped = escaped[:-1] + '{{ "{" }}'
    return escaped


def _quote_match(match: re.Match[str]) -> str:
    return '{{ "\\r" }}' if match.group() == "\r" else '{{ "' + match.group() + '" }}'


def _python_string(s: str) -> str:
    """A double-quoted Jinja string literal for `s`."""
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c < " " or c == "\x7f":
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _jinja_string(node: n.Node, text: str) -> str:
    if any("\udc80" <= c <= "\udcff" for c in text):
        raise _Refused(node, "the string holds bytes that are not UTF-8")
    return _python_string(text)


def _concatenation(values: list[_Expr]) -> _Expr | None:
    """`printf "/a/%s/b" $x` as `"/a/" ~ x ~ "/b"`, when that prints exactly the same."""
    fmt = values[0].code
    if not (fmt.startswith('"') and fmt.endswith('"')) or "\\" in fmt:
        return None
    parts = re.split(r"(%.)", fmt[1:-1])
    pieces: list[str] = []
    args = iter(values[1:])
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if part:
                pieces.append(_python_string(part))
            continue
        if part == "%%":
            pieces.append('"%"')
            continue
        arg = next(args, None)
        if arg is None:
            return None
        if part in ("%s", "%v") and arg.type == "string" or part in ("%d", "%v") and (
            arg.type == "int"
        ):  # fmt: skip
            pieces.append(arg.at(_CONCAT + 1))
        else:
            return None
    if next(args, None) is not None:
        return None
    if not pieces:
        return _Expr('""', _ATOM, "string")
    merged: list[str] = []
    for piece in pieces:  # "%" pieces next to literal text join it
        if merged and merged[-1].startswith('"') and piece.startswith('"'):
            merged[-1] = merged[-1][:-1] + piece[1:]
        else:
            merged.append(piece)
    if len(merged) == 1:
        only = merged[0]
        return _Expr(only, _ATOM, "string") if only.startswith('"') else None
    return _Expr(" ~ ".join(merged), _CONCAT, "string")


def _strftime(layout: str) -> str | None:
    """A Go time layout as a strftime format, when every element has an exact equivalent."""
    from confd.template.golang.gotime import _next_chunk

    out = []
    while layout:
        prefix, element, layout, _ = _next_chunk(layout)
        out.append(prefix.replace("%", "%%"))
        if not element:
            break
        if element not in _STRFTIME:
            return None
        out.append(_STRFTIME[element])
    return "".join(out)


def _element_type(go_type: str) -> str:
    if go_type.startswith("[]"):
        return go_type[2:]
    if go_type.startswith("map["):
        return go_type[go_type.index("]") + 1 :]
    return "interface {}"


def _element_name(go_type: str, pipe: n.PipeNode) -> str:
    first = pipe.cmds[-1].args[0] if pipe.cmds else None
    if isinstance(first, n.IdentifierNode) and first.ident in _FUNCTION_ELEMENT_NAMES:
        return _FUNCTION_ELEMENT_NAMES[first.ident]
    if go_type in _ELEMENT_NAMES:
        return _ELEMENT_NAMES[go_type]
    if go_type == "string":
        return "value"
    if go_type.startswith("map["):
        return "data"
    return "item"


def _construct(node: n.Node) -> str:
    if isinstance(node, n.BranchNode):
        return "{{" + node.keyword + " " + str(node.pipe) + "}}"
    return str(node)


def _tag_count(node: n.Node) -> int:
    """How many Go tags (comments aside) a node spans, to skip a refused one."""
    if isinstance(node, n.BranchNode):
        count = 2 + _list_tags(node.list)
        if node.else_list is not None:
            count += _list_tags(node.else_list)
            if node.else_if:
                count -= 1  # "{{else if}}" opens the nested if and shares this {{end}}
            else:
                count += 1
        return count
    return 1


def _list_tags(body: n.ListNode | None) -> int:
    return 0 if body is None else sum(
        _tag_count(child) for child in body.nodes if not isinstance(child, n.TextNode)
    )


def _uses_in_nested_loop(body: n.ListNode | None, name: str) -> bool:
    """Whether `name` is used inside a range nested in `body` (where `loop` is another loop)."""
    found = False

    def visit(node: Any, nested: bool) -> None:
        nonlocal found
        if node is None or found:
            return
        if isinstance(node, n.VariableNode):
            found = nested and node.ident[0] == name
        elif isinstance(node, n.ListNode):
            for child in node.nodes:
                visit(child, nested)
        elif isinstance(node, n.BranchNode):
            inner = nested or isinstance(node, n.RangeNode)
            visit(node.pipe, nested)
            visit(node.list, inner)
            visit(node.else_list, nested)
        elif isinstance(node, n.ActionNode | n.TemplateNode):
            visit(node.pipe, nested)
        elif isinstance(node, n.PipeNode):
            for cmd in node.cmds:
                for arg in cmd.args:
                    visit(arg, nested)
        elif isinstance(node, n.ChainNode):
            visit(node.node, nested)

    visit(body, False)
    return found


def _namespaced_declarations(root: n.ListNode) -> set[int]:
    """Declarations assigned from inside a deeper range: Jinja needs a namespace() for them
    (a `set` inside a for loop makes a new loop-local variable)."""
    result: set[int] = set()
    scope: list[tuple[str, n.VariableNode, int]] = []

    def declare(pipe: n.PipeNode, depth: int) -> None:
        for var in pipe.decl:
            if pipe.is_assign:
                for name, decl, decl_depth in reversed(scope):
                    if name == var.ident[0]:
                        if decl_depth < depth:
                            result.add(id(decl))
                        break
            else:
                scope.append((var.ident[0], var, depth))

    def visit(body: n.ListNode | None, depth: int) -> None:
        if body is None:
            return
        for node in body.nodes:
            if isinstance(node, n.ActionNode):
                declare(node.pipe, depth)
            elif isinstance(node, n.BranchNode):
                mark = len(scope)
                inner = depth + 1 if isinstance(node, n.RangeNode) else depth
                declare(node.pipe, inner)
                after = len(scope)
                visit(node.list, inner)
                del scope[after:]
                visit(node.else_list, depth)
                del scope[mark:]

    visit(root, 0)
    return result


def convert(source: str, name: str, function_names: Container[str]) -> Converted:
    """Convert the Go template `source` (named `name`) to Jinja.

    `function_names` are the functions it may call (as for parsing); a template that does not
    parse raises `GoSyntaxError`. Returns the Jinja text, or None and the problems found.
    """
    trees = parse(source, name, function_names)
    return _Converter(source, trees, name).convert()
