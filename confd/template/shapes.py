"""Templates that differ only in their text and string literals share one compile.

Configuration generators write hundreds of templates that differ only in a name, a key or a
line of text (issue #13's 1,000 resources: one shape, a resource number and two key paths
apart). Jinja compiles each in 2 to 3.4 ms, of which parsing is ~0.5 ms; the rest (generating
Python, optimizing, `compile`) is the same work for every template of a shape. `Shapes` parses
a template, replaces its text and the string literals that reach the generated code unchanged
by numbered sentinels, and compiles that shape once; a template of a known shape gets the
shape's code with its own literals put back into the code's constants.

A literal is shared only where Jinja's code uses it as it is: text, and strings passed to a
call, a filter or a test, used as a subscript, compared or concatenated at run time, or set to a
variable. Anything the compiler could fold (`"a"|upper`, `"x" in "xy"`, a constant `if`) keeps
its literals in the shape, so those templates compile alone. After compiling a shape, each
sentinel must be found in the code's constants, or the shape is refused and its templates
compile alone: what a template renders never depends on which template first had its shape.

A template is not even parsed when its token stream matches one seen before but for its text and
strings (`Shapes`): lexing is ~0.3 ms of the ~0.5 ms of Jinja's front end, and 1,000 fan-out
templates compile in ~0.36 s instead of ~0.7 s through the parse tree (2 to 2.5 s alone).
"""

from __future__ import annotations

import re
import threading
from types import CodeType
from typing import TYPE_CHECKING, Any, NamedTuple

from jinja2 import nodes
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["Shapes"]

_MARK = "\x00confd-literal:"  # no template holding a NUL is shared: the marks cannot clash
_SENTINEL = re.compile("\x00confd-literal:([0-9]+)\x00")
_PROBE = re.compile("\x00confd-token:([0-9]+)\x00")
_FREE_TYPES = ("data", "string")  # the tokens whose values may differ within a shape
_NAME = 0  # sentinel 0 stands for the template's name (the code holds it as a constant)
MAX_SHAPES = 4096  # a daemon whose templates are edited for months keeps no more than this

# (parent node type, field) where a string literal reaches the code unchanged (when nothing
# around it folds): the positions whose literal may differ between templates of one shape
# (a printed constant, under `nodes.Output`, is decided by `_Walk._shared`: finalize runs on it)
_SHARED_FIELDS = {
    (nodes.Call, "args"), (nodes.Keyword, "value"),  # a keyword of a call, filter or test
    (nodes.Filter, "args"), (nodes.Test, "args"), (nodes.Getitem, "arg"),
    (nodes.Assign, "node"), (nodes.Concat, "nodes"), (nodes.Operand, "expr"),
    (nodes.Compare, "expr"),
}


def _mark(number: int) -> str:
    return f"{_MARK}{number}\x00"


class _Walk:
    """One walk of a parsed template: its shape (everything but the shared literals, line
    numbers included: the code maps them), and the literal nodes, marked in place."""

    def __init__(self, environment: Environment, name: str | None) -> None:
        self.context = nodes.EvalContext(environment, name)
        self.finalize_free = environment.finalize is None
        self.shape: list[Any] = []
        self.literals: list[str] = []
        self.shareable = not environment.autoescape and not environment.is_async

    def visit(self, node: nodes.Node, parent: nodes.Node | None, field: str) -> bool:
        """Walk `node`, marking its shared literals; whether it holds one."""
        if isinstance(node, nodes.EvalContextModifier):
            self.shareable = False  # {% autoescape %}: the compiler escapes text itself
        self.shape.append((type(node).__name__, node.lineno))
        if self._shared(node, parent, field):
            value = node.data if isinstance(node, nodes.TemplateData) else node.value
            self.literals.append(value)
            if isinstance(node, nodes.TemplateData):
                node.data = _mark(len(self.literals))
            else:
                node.value = _mark(len(self.literals))
            return True
        marked = False
        for name, value in node.iter_fields():
            if isinstance(value, nodes.Node):
                self.shape.append(name)
                marked = self.visit(value, node, name) or marked
            elif isinstance(value, list):
                self.shape.append((name, len(value)))
                for item in value:
                    if isinstance(item, nodes.Node):
                        marked = self.visit(item, node, name) or marked
                    else:
                        self.shape.append(repr(item))
            else:
                self.shape.append((name, repr(value)))
        if marked and isinstance(node, nodes.Expr):
            try:
                node.as_const(self.context)
            except Exception:  # noqa: BLE001 - Impossible: computed at run time, as wanted
                pass
            else:  # the compiler would compute it from the marks, not from the literals
                self.shareable = False
        return marked

    def _shared(self, node: nodes.Node, parent: nodes.Node | None, field: str) -> bool:
        if isinstance(node, nodes.TemplateData):
            return True
        if not isinstance(node, nodes.Const) or type(node.value) is not str:
            return False
        if isinstance(parent, nodes.Output):
            return self.finalize_free  # a printed constant goes through finalize when compiled
        return (type(parent), field) in _SHARED_FIELDS


class _Frame(NamedTuple):
    """What a token stream's frame (everything but its text and strings) says of its shape:
    the text and string tokens whose values stay in the shape, the tokens each mark is made
    of, and the shape's code for each set of values the fixed tokens had (None: refused)."""

    fixed: tuple[int, ...]
    marks: tuple[tuple[int, ...], ...]
    codes: dict[tuple[str, ...], CodeType | None]


class Shapes:
    """The compiled code of each template shape seen by one environment (None: refused).

    A template whose token stream matches one seen before (same tokens, lines, names and
    numbers; text and strings apart) takes the code without being parsed: the parser's output
    depends on nothing else, and which tokens make each literal was learned from the first
    one, by parsing its stream with every text and string token replaced by a probe."""

    def __init__(self) -> None:
        self._code: dict[tuple[Any, ...], CodeType | None] = {}
        self._frames: dict[tuple[Any, ...], _Frame | None] = {}
        self._lock = threading.Lock()

    def compile(self, environment: Environment, source: str, name: str | None,
                filename: str | None, compile_alone: Any) -> CodeType:
        """`source` compiled by `environment`, from its shape's code when one is known;
        `compile_alone(source_or_tree, name, filename)` is Jinja's own compile."""
        if "\x00" in source:
            return compile_alone(source, name, filename)
        try:
            tokens = list(environment._tokenize(source, name, filename))
        except Exception:  # noqa: BLE001 - Jinja's compile reports it as it should
            return compile_alone(source, name, filename)
        frame_key = tuple((t.lineno, t.type, t.value == "") if t.type in _FREE_TYPES
                          else (t.lineno, t.type, t.value) for t in tokens)
        with self._lock:
            learned = frame_key in self._frames
            frame = self._frames.get(frame_key)
        fixed = tuple(tokens[i].value for i in frame.fixed) if frame is not None else ()
        if frame is not None and fixed in frame.codes:
            code = frame.codes[fixed]
            if code is None:
                return compile_alone(source, name, filename)
            literals = ["".join(tokens[i].value for i in idxs) for idxs in frame.marks]
            return _fill(code, ["" if name is None else name, *literals],
                         filename or "<template>")
        compiled, shape_code, literals = self._by_tree(environment, source, name, filename,
                                                      compile_alone)
        if not learned:
            frame = _learn(environment, tokens, name, filename, literals)
            if frame is not None:
                fixed = tuple(tokens[i].value for i in frame.fixed)
            with self._lock:
                if len(self._frames) >= MAX_SHAPES:
                    self._frames.clear()
                self._frames[frame_key] = frame
        if frame is not None:
            with self._lock:
                frame.codes[fixed] = shape_code
        return compiled

    def _by_tree(self, environment: Environment, source: str, name: str | None,
                 filename: str | None, compile_alone: Any,
                 ) -> tuple[CodeType, CodeType | None, list[str]]:
        """`source` compiled through its parse tree: its code, its shape's code (None when not
        shared) and its literals, in mark order."""
        try:
            tree = environment._parse(source, name, filename)
        except Exception:  # noqa: BLE001 - Jinja's compile reports it as it should
            return compile_alone(source, name, filename), None, []
        walk = _Walk(environment, name)
        walk.visit(tree, None, "")
        if not walk.shareable or not walk.literals:
            _restore(tree, walk.literals)
            return compile_alone(tree, name, filename), None, walk.literals
        key = tuple(walk.shape)
        with self._lock:
            known = key in self._code
            code = self._code.get(key)
        if not known:
            try:
                code = compile_alone(tree, _mark(_NAME), filename)
            except Exception:  # noqa: BLE001 - compiled alone below, to report it by name
                code = None
            if code is not None and not _holds_every_mark(code, len(walk.literals)):
                code = None
            with self._lock:
                if len(self._code) >= MAX_SHAPES:
                    self._code.clear()
                self._code[key] = code
            if code is None:  # the compiler changed the tree: parse it again
                return compile_alone(source, name, filename), None, walk.literals
        if code is None:
            _restore(tree, walk.literals)
            return compile_alone(tree, name, filename), None, walk.literals
        filled = _fill(code, ["" if name is None else name, *walk.literals],
                       filename or "<template>")
        return filled, code, walk.literals


def _learn(environment: Environment, tokens: list[Token], name: str | None,
           filename: str | None, literals: list[str]) -> _Frame | None:
    """Which tokens make each literal of a template whose tree walk found `literals`: parse
    its stream with each text and string token replaced by a probe and walk that tree the
    same way (where a literal is marked depends on the tree's structure, not on values).
    None when anything does not add up: its frame then goes through the tree every time."""
    probed = [Token(t.lineno, t.type, _probe(i)) if t.type in _FREE_TYPES and t.value else t
              for i, t in enumerate(tokens)]
    try:
        parser = Parser(environment, "", name, filename)
        parser.stream = TokenStream(iter(probed), name, filename)
        tree = parser.parse()
    except Exception:  # noqa: BLE001 - a stream the parser refuses has no frame
        return None
    walk = _Walk(environment, name)
    walk.visit(tree, None, "")
    if len(walk.literals) != len(literals):
        return None
    marks = []
    for probes, real in zip(walk.literals, literals, strict=True):
        made_of = tuple(int(n) for n in _PROBE.findall(probes))
        if _PROBE.sub("", probes) or "".join(tokens[i].value for i in made_of) != real:
            return None
        marks.append(made_of)
    free = {i for made_of in marks for i in made_of}
    fixed = tuple(i for i, t in enumerate(tokens) if t.type in _FREE_TYPES and i not in free)
    return _Frame(fixed, tuple(marks), {})


def _probe(number: int) -> str:
    return f"\x00confd-token:{number}\x00"


def _restore(tree: nodes.Template, literals: list[str]) -> None:
    """Put the literals `_Walk` marked back into `tree`."""
    if not literals:
        return
    for node in tree.find_all((nodes.TemplateData, nodes.Const)):
        if isinstance(node, nodes.TemplateData):
            found = _SENTINEL.fullmatch(node.data)
            if found:
                node.data = literals[int(found[1]) - 1]
        elif type(node.value) is str:
            found = _SENTINEL.fullmatch(node.value)
            if found:
                node.value = literals[int(found[1]) - 1]


def _holds_every_mark(code: CodeType, count: int) -> bool:
    """Whether every literal's mark (and the name's) is among the constants of `code`."""
    seen: set[int] = set()

    def scan(value: Any) -> None:
        if isinstance(value, str):
            seen.update(int(n) for n in _SENTINEL.findall(value))
        elif isinstance(value, CodeType):
            for const in value.co_consts:
                scan(const)
        elif isinstance(value, tuple | frozenset):
            for item in value:
                scan(item)

    scan(code)
    return seen >= set(range(1, count + 1))


def _fill(code: CodeType, values: list[str], filename: str) -> CodeType:
    """The shape's `code` with each mark replaced by its template's value."""

    def replace(found: re.Match[str]) -> str:
        return values[int(found[1])]

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return _SENTINEL.sub(replace, value) if "\x00" in value else value
        if isinstance(value, CodeType):
            return value.replace(co_filename=filename,
                                 co_consts=tuple(fill(c) for c in value.co_consts))
        if isinstance(value, tuple):
            return tuple(fill(v) for v in value)
        if isinstance(value, frozenset):
            return frozenset(fill(v) for v in value)
        return value

    return fill(code)
