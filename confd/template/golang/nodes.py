"""The parse tree of a Go template, as Go's `text/template/parse` builds it.

Every node keeps its character offset (`pos`) for error locations, and `str(node)` writes it
back the way Go's `Node.String` does: error messages quote it (`at <getv "/x">`), and the
converter reads the tree. Plain slotted classes: this module loads at start-up.
"""

from __future__ import annotations

from confd.template.golang.strconv import quote

__all__ = [
    "ActionNode", "BoolNode", "BranchNode", "BreakNode", "ChainNode", "CommandNode",
    "ContinueNode", "DotNode", "FieldNode", "IdentifierNode", "IfNode", "ListNode", "NilNode",
    "Node", "NumberNode", "PipeNode", "RangeNode", "StringNode", "TemplateNode", "TextNode",
    "VariableNode", "WithNode",
]  # fmt: skip


class Node:
    """Base of every parse tree node; `pos` is the offset of the node in the source."""

    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node] | None = None) -> None:
        self.pos = pos
        self.nodes: list[Node] = [] if nodes is None else nodes

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos = pos
        self.text = text

    def __str__(self) -> str:
        return quote(self.text)


class IdentifierNode(Node):
    """A function name."""

    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return self.ident


class VariableNode(Node):
    """`$x` or `$x.a.b`: `ident` is ["$x", "a", "b"]."""

    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class FieldNode(Node):
    """`.a.b`: `ident` is ["a", "b"]."""

    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos = pos
        self.value = value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    """A number constant with every reading Go allows it (None where it has none)."""

    __slots__ = ("text", "int64", "uint64", "float64", "complex128")

    def __init__(self, pos: int, text: str) -> None:
        self.pos = pos
        self.text = text
        self.int64: int | None = None
        self.uint64: int | None = None
        self.float64: float | None = None
        self.complex128: complex | None = None

    def __str__(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos = pos
        self.quoted = quoted  # as written, with its quotes
        self.text = text  # the value

    def __str__(self) -> str:
        return self.quoted


class CommandNode(Node):
    """One command of a pipeline: a function, field, variable or constant and its arguments."""

    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[Node] | None = None) -> None:
        self.pos = pos
        self.args: list[Node] = [] if args is None else args

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class PipeNode(Node):
    """Commands joined by `|`, with the variables the pipeline declares or assigns."""

    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos: int, line: int) -> None:
        self.pos = pos
        self.line = line
        self.is_assign = False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.cmds)
        if self.decl:  # Go 1.19 writes ":=" for assignments too
            return ", ".join(str(v) for v in self.decl) + " := " + text
        return text


class ChainNode(Node):
    """A term followed by field accesses: `(getv "/x").Foo`."""

    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node: Node) -> None:
        self.pos = pos
        self.node = node
        self.fields: list[str] = []

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.fields)


class ActionNode(Node):
    """`{{pipeline}}`: prints the value unless the pipeline declares variables."""

    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: PipeNode) -> None:
        self.pos = pos
        self.line = line
        self.pipe = pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class BranchNode(Node):
    """`if`, `range` and `with`: a pipeline, a body, and an optional else body."""

    __slots__ = ("line", "pipe", "list", "else_list", "else_if")
    keyword = ""

    def __init__(
        self, pos: int, line: int, pipe: PipeNode, body: ListNode, else_list: ListNode | None,
        else_if: bool = False,
    ) -> None:  # fmt: skip
        self.pos = pos
        self.line = line
        self.pipe = pipe
        self.list = body
        self.else_list = else_list
        self.else_if = else_if  # the else list is an "{{else if}}" (sharing this {{end}})

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            text += "{{else}}" + str(self.else_list)
        return text + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class BreakNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos: int, line: int) -> None:
        self.pos = pos
        self.line = line

    def __str__(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos: int, line: int) -> None:
        self.pos = pos
        self.line = line

    def __str__(self) -> str:
        return "{{continue}}"


class TemplateNode(Node):
    """`{{template "name" pipeline}}` (and the call a `block` makes)."""

    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None) -> None:
        self.pos = pos
        self.line = line
        self.name = name
        self.pipe = pipe

    def __str__(self) -> str:
        text = "{{template " + quote(self.name)
        if self.pipe is not None:
            text += " " + str(self.pipe)
        return text + "}}"


class EndNode(Node):
    """`{{end}}`: ends a list while parsing, never in a finished tree."""

    __slots__ = ()

    def __str__(self) -> str:
        return "{{end}}"


class ElseNode(Node):
    """`{{else}}`: ends a list while parsing, never in a finished tree."""

    __slots__ = ("line",)

    def __init__(self, pos: int, line: int) -> None:
        self.pos = pos
        self.line = line

    def __str__(self) -> str:
        return "{{else}}"
