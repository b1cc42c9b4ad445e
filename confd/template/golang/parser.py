"""The parser of Go's text/template language: tokens to parse trees, one per template name.

It follows Go 1.19's `text/template/parse` decision for decision, so a template parses here
exactly when it parses in Go confd, with the same messages: an unknown function
(`function "foo" not defined`), an undefined variable, a misplaced `{{else}}` or `{{break}}`.
Errors are `GoSyntaxError`s naming `file:line:column`.
"""

from __future__ import annotations

import math
from collections.abc import Container

from confd.template.golang import nodes as n
from confd.template.golang.errors import GoSyntaxError, position
from confd.template.golang.lexer import Kind, Token, tokenize
from confd.template.golang.strconv import (
    parse_float,
    parse_int,
    parse_uint,
    quote,
    unquote,
    unquote_char,
)

__all__ = ["BUILTINS", "Tree", "is_empty_tree", "parse"]

# Go's builtin functions: always defined, whatever function map a template gets.
BUILTINS = frozenset((
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
))  # fmt: skip


class Tree:
    """One named template: its name and root list."""

    __slots__ = ("name", "root")

    def __init__(self, name: str, root: n.ListNode) -> None:
        self.name = name
        self.root = root


def is_empty_tree(node: n.Node | None) -> bool:
    """Whether a tree holds nothing but space (Go's IsEmptyTree)."""
    if node is None:
        return True
    if isinstance(node, n.ListNode):
        return all(is_empty_tree(child) for child in node.nodes)
    if isinstance(node, n.TextNode):
        return node.text.strip(" \t\n\r\v\f\x85\xa0") == ""
    return False


class _Parser:
    """Parser state; the per-tree part (`vars`, lookahead, ...) is swapped for define/block."""

    def __init__(self, source: str, name: str, where: str, funcs: Container[str]) -> None:
        self.source = source
        self.name = name
        self.where = where
        self.funcs = funcs
        break_ok = not self.has_function("break")
        continue_ok = not self.has_function("continue")
        self.tokens = tokenize(source, break_ok=break_ok, continue_ok=continue_ok)
        self.index = 0
        self.tree_set: dict[str, Tree] = {}
        # Per-tree state.
        self.tree_name = name
        self.token: list[Token] = [self.tokens[0]] * 3
        self.peek_count = 0
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0

    # -- token stream --------------------------------------------------------------------------

    def _lex(self) -> Token:
        token = self.tokens[self.index]
        if self.index < len(self.tokens) - 1:
            self.index += 1
        return token

    def next(self) -> Token:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self._lex()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Token) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Token, t1: Token) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Token:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self._lex()
        return self.token[0]

    def next_non_space(self) -> Token:
        while True:
            token = self.next()
            if token.kind != Kind.SPACE:
                return token

    def peek_non_space(self) -> Token:
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors --------------------------------------------------------------------------------

    def errorf(self, message: str) -> None:
        token = self.token[0]
        _, column = position(self.source, token.pos)
        raise GoSyntaxError(self.where, token.line, column, message)

    def expect(self, kind: int, context: str) -> Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    def expect_one_of(self, kind1: int, kind2: int, context: str) -> Token:
        token = self.next_non_space()
        if token.kind not in (kind1, kind2):
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Token, context: str) -> None:
        if token.kind == Kind.ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = f" in action started at {self.tree_name}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(f"{token}{extra}")
        self.errorf(f"unexpected {token} in {context}")

    def has_function(self, name: str) -> bool:
        return name in BUILTINS or name in self.funcs

    # -- trees ---------------------------------------------------------------------------------

    def _enter_tree(self, name: str) -> tuple:
        saved = (self.tree_name, self.token, self.peek_count, self.vars, self.action_line,
                 self.range_depth)  # fmt: skip
        self.tree_name = name
        self.token = [self.token[0]] * 3
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        return saved

    def _leave_tree(self, saved: tuple) -> None:
        (self.tree_name, self.token, self.peek_count, self.vars, self.action_line,
         self.range_depth) = saved  # fmt: skip

    def add(self, name: str, root: n.ListNode) -> None:
        """Record a tree, as Go's Tree.add: an empty definition never replaces a full one."""
        tree = self.tree_set.get(name)
        if tree is None or is_empty_tree(tree.root):
            self.tree_set[name] = Tree(name, root)
            return
        if not is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {quote(name)}")

    def parse(self) -> dict[str, Tree]:
        root = n.ListNode(self.peek().pos)
        while self.peek().kind != Kind.EOF:
            if self.peek().kind == Kind.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().kind == Kind.DEFINE:
                    saved = self._enter_tree("definition")
                    try:
                        self.parse_definition()
                    finally:
                        self._leave_tree(saved)
                    continue
                self.backup2(delim)
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add(self.name, root)
        return self.tree_set

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(Kind.STRING, Kind.RAW_STRING, context)
        try:
            self.tree_name = unquote(name.val)
        except ValueError as exc:
            self.errorf(str(exc))
        self.expect(Kind.RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, n.EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add(self.tree_name, root)

    def item_list(self) -> tuple[n.ListNode, n.Node]:
        body = n.ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != Kind.EOF:
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                return body, node
            body.nodes.append(node)
        self.errorf("unexpected EOF")
        raise AssertionError  # unreachable: errorf raises

    def text_or_action(self) -> n.Node:
        token = self.next_non_space()
        if token.kind == Kind.TEXT:
            return n.TextNode(token.pos, token.val)
        if token.kind == Kind.LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(token, "input")
        raise AssertionError

    # -- actions -------------------------------------------------------------------------------

    def action(self) -> n.Node:
        token = self.next_non_space()
        kind = token.kind
        if kind == Kind.BLOCK:
            return self.block_control()
        if kind == Kind.BREAK:
            return self.break_control(token, "break")
        if kind == Kind.CONTINUE:
            return self.break_control(token, "continue")
        if kind == Kind.ELSE:
            return self.else_control()
        if kind == Kind.END:
            return n.EndNode(self.expect(Kind.RIGHT_DELIM, "end").pos)
        if kind == Kind.IF:
            return n.IfNode(*self.parse_control(True, "if"))
        if kind == Kind.RANGE:
            return n.RangeNode(*self.parse_control(False, "range"))
        if kind == Kind.TEMPLATE:
            return self.template_control()
        if kind == Kind.WITH:
            return n.WithNode(*self.parse_control(False, "with"))
        self.backup()
        token = self.peek()
        return n.ActionNode(token.pos, token.line, self.pipeline("command", Kind.RIGHT_DELIM))

    def break_control(self, keyword: Token, word: str) -> n.Node:
        token = self.next_non_space()
        if token.kind != Kind.RIGHT_DELIM:
            self.unexpected(token, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        if word == "break":
            return n.BreakNode(keyword.pos, keyword.line)
        return n.ContinueNode(keyword.pos, keyword.line)

    def pipeline(self, context: str, end: int) -> n.PipeNode:
        token = self.peek_non_space()
        pipe = n.PipeNode(token.pos, token.line)
        self._declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.kind in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def _declarations(self, pipe: n.PipeNode, context: str) -> None:
        while True:
            v = self.peek_non_space()
            if v.kind != Kind.VARIABLE:
                return
            self.next()
            # Space is a token, so "$x foo" needs three tokens of look-ahead to tell an
            # argument from a declaration.
            token_after = self.peek()
            nxt = self.peek_non_space()
            if nxt.kind in (Kind.ASSIGN, Kind.DECLARE):
                pipe.is_assign = nxt.kind == Kind.ASSIGN
                self.next_non_space()
                pipe.decl.append(n.VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                return
            if nxt.kind == Kind.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(n.VariableNode(v.pos, v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (
                        Kind.VARIABLE, Kind.RIGHT_DELIM, Kind.RIGHT_PAREN,
                    ):  # fmt: skip
                        continue  # the second variable of a range
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            if token_after.kind == Kind.SPACE:
                self.backup3(v, token_after)
            else:
                self.backup2(v)
            return

    def check_pipeline(self, pipe: n.PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], n.BoolNode | n.DotNode | n.NilNode | n.NumberNode
                          | n.StringNode):  # fmt: skip
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def parse_control(self, allow_else_if: bool, context: str) -> tuple:
        depth = len(self.vars)
        try:
            pipe = self.pipeline(context, Kind.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            else_if = False
            if isinstance(nxt, n.ElseNode):
                if allow_else_if and self.peek().kind == Kind.IF:
                    # "{{else if b}}" is "{{else}}{{if b}}...{{end}}{{end}}" with one {{end}}.
                    self.next()
                    else_list = n.ListNode(nxt.pos)
                    else_list.nodes.append(n.IfNode(*self.parse_control(True, "if")))
                    else_if = True
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, n.EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return pipe.pos, pipe.line, pipe, body, else_list, else_if
        finally:
            del self.vars[depth:]

    def else_control(self) -> n.Node:
        peek = self.peek_non_space()
        if peek.kind == Kind.IF:  # "{{else if ...": leave the "if" pending
            return n.ElseNode(peek.pos, peek.line)
        token = self.expect(Kind.RIGHT_DELIM, "else")
        return n.ElseNode(token.pos, token.line)

    def block_control(self) -> n.Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, Kind.RIGHT_DELIM)
        saved = self._enter_tree(name)
        try:
            root, end = self.item_list()
            if not isinstance(end, n.EndNode):
                self.errorf(f"unexpected {end} in {context}")
            self.add(name, root)
        finally:
            self._leave_tree(saved)
        return n.TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self) -> n.Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = None
        if self.next_non_space().kind != Kind.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, Kind.RIGHT_DELIM)
        return n.TemplateNode(token.pos, token.line, name, pipe)

    def parse_template_name(self, token: Token, context: str) -> str:
        if token.kind in (Kind.STRING, Kind.RAW_STRING):
            try:
                return unquote(token.val)
            except ValueError as exc:
                self.errorf(str(exc))
        self.unexpected(token, context)
        raise AssertionError

    # -- commands and operands -----------------------------------------------------------------

    def command(self) -> n.CommandNode:
        cmd = n.CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.kind == Kind.SPACE:
                continue
            if token.kind in (Kind.RIGHT_DELIM, Kind.RIGHT_PAREN):
                self.backup()
            elif token.kind != Kind.PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> n.Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == Kind.FIELD:
            chain = n.ChainNode(self.peek().pos, node)
            while self.peek().kind == Kind.FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, n.FieldNode):
                return n.FieldNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, n.VariableNode):
                return n.VariableNode(chain.pos, node.ident + chain.fields)
            if isinstance(node, n.BoolNode | n.StringNode | n.NumberNode | n.NilNode | n.DotNode):
                self.errorf(f"unexpected . after term {quote(str(node))}")
            return chain
        return node

    def term(self) -> n.Node | None:  # noqa: C901 - one case per token kind
        token = self.next_non_space()
        kind = token.kind
        if kind == Kind.IDENTIFIER:
            if not self.has_function(token.val):
                self.errorf(f"function {quote(token.val)} not defined")
            return n.IdentifierNode(token.pos, token.val)
        if kind == Kind.DOT:
            return n.DotNode(token.pos)
        if kind == Kind.NIL:
            return n.NilNode(token.pos)
        if kind == Kind.VARIABLE:
            return self.use_var(token.pos, token.val)
        if kind == Kind.FIELD:
            return n.FieldNode(token.pos, token.val[1:].split("."))
        if kind == Kind.BOOL:
            return n.BoolNode(token.pos, token.val == "true")
        if kind in (Kind.CHAR_CONSTANT, Kind.COMPLEX, Kind.NUMBER):
            return self.number(token)
        if kind == Kind.LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", Kind.RIGHT_PAREN)
        if kind in (Kind.STRING, Kind.RAW_STRING):
            try:
                text = unquote(token.val)
            except ValueError as exc:
                self.errorf(str(exc))
            return n.StringNode(token.pos, token.val, text)
        self.backup()
        return None

    def use_var(self, pos: int, name: str) -> n.VariableNode:
        node = n.VariableNode(pos, name.split("."))
        if node.ident[0] not in self.vars:
            self.errorf(f"undefined variable {quote(node.ident[0])}")
        return node

    def number(self, token: Token) -> n.NumberNode:  # noqa: C901 - Go's newNumber
        text = token.val
        node = n.NumberNode(token.pos, text)
        if token.kind == Kind.CHAR_CONSTANT:
            try:
                value, _, end = unquote_char(text, 1, "'")
            except (ValueError, IndexError):
                self.errorf("invalid syntax")
            if text[end:] != "'":
                self.errorf(f"malformed character constant: {text}")
            node.int64 = node.uint64 = value
            node.float64 = float(value)
            return node
        if token.kind == Kind.COMPLEX:
            try:
                node.complex128 = complex(text.replace("i", "j"))
            except ValueError:
                self.errorf("expected integer")
            _simplify_complex(node)
            return node
        if text.endswith("i"):
            imag = parse_float(text[:-1])
            if imag is not None:
                node.complex128 = complex(0, imag)
                _simplify_complex(node)
                return node
        u = parse_uint(text)
        if u is not None:
            node.uint64 = u
        i = parse_int(text)
        if i is not None:
            node.int64 = i
            if i == 0:
                node.uint64 = u if u is not None else 0  # "-0"
        if node.int64 is not None:
            node.float64 = float(node.int64)
        elif node.uint64 is not None:
            node.float64 = float(node.uint64)
        else:
            f = parse_float(text)
            if f is not None:
                if not any(c in text for c in ".eEpP"):
                    self.errorf(f"integer overflow: {quote(text)}")
                node.float64 = f
                if f == int(f) and -(1 << 63) <= f < 1 << 63:
                    node.int64 = int(f)
                if f == int(f) and 0 <= f < 1 << 64:
                    node.uint64 = int(f)
        if node.int64 is None and node.uint64 is None and node.float64 is None:
            self.errorf(f"illegal number syntax: {quote(text)}")
        return node


_OPERAND_START = frozenset({
    Kind.BOOL, Kind.CHAR_CONSTANT, Kind.COMPLEX, Kind.DOT, Kind.FIELD, Kind.IDENTIFIER,
    Kind.NUMBER, Kind.NIL, Kind.RAW_STRING, Kind.STRING, Kind.VARIABLE, Kind.LEFT_PAREN,
})  # fmt: skip


def _simplify_complex(node: n.NumberNode) -> None:
    value = node.complex128
    assert value is not None
    if value.imag == 0 and math.isfinite(value.real):
        node.float64 = value.real
        if value.real == int(value.real) and -(1 << 63) <= value.real < 1 << 63:
            node.int64 = int(value.real)
        if value.real == int(value.real) and 0 <= value.real < 1 << 64:
            node.uint64 = int(value.real)


def parse(
    source: str, name: str, function_names: Container[str], where: str | None = None
) -> dict[str, Tree]:
    """Parse `source` as the template `name`; returns every tree it defines, `name`'s too.

    `function_names` are the functions the template may call besides Go's builtins (as the
    function map given to Go's parser); `where` names the file in messages (default `name`).
    Raises `GoSyntaxError` (`file:line:column: message`).
    """
    return _Parser(source, name, where or name, function_names).parse()
