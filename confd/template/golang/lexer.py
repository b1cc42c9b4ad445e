"""The scanner of Go's text/template language: template source to a list of tokens.

It follows Go 1.19's `text/template/parse` lexer token for token (trim markers `{{- ` and
` -}}`, comments, the keyword set, number and quote scanning), so the parser can report the same
errors at the same places. Positions are character offsets into the source; `Token.line` is the
1-based line the token starts on.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

from confd.template.golang.strconv import quote

__all__ = ["SPACES", "Kind", "Token", "has_left_trim", "has_right_trim", "tokenize"]

LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
LEFT_COMMENT = "/*"
RIGHT_COMMENT = "*/"
SPACES = " \t\r\n"


class Kind:
    """Token kinds, in Go's order; every kind after KEYWORD is a keyword (plain ints: an enum
    class costs start-up time for nothing here)."""

    ERROR = 0
    BOOL = 1
    CHAR = 2
    CHAR_CONSTANT = 3
    COMMENT = 4
    COMPLEX = 5
    ASSIGN = 6
    DECLARE = 7
    EOF = 8
    FIELD = 9
    IDENTIFIER = 10
    LEFT_DELIM = 11
    LEFT_PAREN = 12
    NUMBER = 13
    PIPE = 14
    RAW_STRING = 15
    RIGHT_DELIM = 16
    RIGHT_PAREN = 17
    SPACE = 18
    STRING = 19
    TEXT = 20
    VARIABLE = 21
    KEYWORD = 22
    BLOCK = 23
    BREAK = 24
    CONTINUE = 25
    DOT = 26
    DEFINE = 27
    ELSE = 28
    END = 29
    IF = 30
    NIL = 31
    RANGE = 32
    TEMPLATE = 33
    WITH = 34


KEYWORDS = {
    ".": Kind.DOT,
    "block": Kind.BLOCK,
    "break": Kind.BREAK,
    "continue": Kind.CONTINUE,
    "define": Kind.DEFINE,
    "else": Kind.ELSE,
    "end": Kind.END,
    "if": Kind.IF,
    "range": Kind.RANGE,
    "nil": Kind.NIL,
    "template": Kind.TEMPLATE,
    "with": Kind.WITH,
}


class Token(NamedTuple):
    """One token: its kind, offset in the source, text, and the line it starts on."""

    kind: int
    pos: int
    val: str
    line: int

    def __str__(self) -> str:  # as Go's item.String, used in "unexpected ..." messages
        if self.kind == Kind.EOF:
            return "EOF"
        if self.kind == Kind.ERROR:
            return self.val
        if self.kind > Kind.KEYWORD:
            return f"<{self.val}>"
        if len(self.val.encode()) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def is_space(c: str) -> bool:
    return c in SPACES and c != ""


def is_alphanumeric(c: str) -> bool:
    """Go's `_`, unicode.IsLetter or unicode.IsDigit."""
    if c == "":
        return False
    if c < "\x80":
        return c == "_" or c.isalnum()
    return c.isalpha() or unicodedata.category(c) == "Nd"


def describe_rune(c: str) -> str:
    """A character as Go's `%#U`: `U+0041 'A'` (the quoted form only when printable)."""
    code = f"U+{ord(c):04X}"
    if c.isprintable() or c == " ":
        return f"{code} '{c}'"
    return code


def has_left_trim(s: str, i: int) -> bool:
    """Whether `s` has Go's left trim marker (`-` then a space) at `i`, after a `{{`."""
    return s[i : i + 1] == "-" and is_space(s[i + 1 : i + 2])


def has_right_trim(s: str, i: int) -> bool:
    """Whether `s` has Go's right trim marker (a space then `-`) at `i`, before a `}}`."""
    return is_space(s[i : i + 1]) and s[i + 1 : i + 2] == "-"


class _Lexer:
    """The scanner's state; `run` fills `tokens` and stops after an EOF or ERROR token."""

    def __init__(
        self, source: str, break_ok: bool, continue_ok: bool, emit_comments: bool = False
    ) -> None:
        self.src = source
        self.emit_comments = emit_comments
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.paren_depth = 0
        self.break_ok = break_ok
        self.continue_ok = continue_ok
        self.tokens: list[Token] = []

    # -- primitives ------------------------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.src):
            self.pos = len(self.src) + 1  # "at EOF": backup will not move
            return ""
        c = self.src[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def backup(self) -> None:
        if self.pos > len(self.src):
            self.pos = len(self.src)
            return
        if self.pos > 0:
            self.pos -= 1
            if self.src[self.pos] == "\n":
                self.line -= 1

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def emit(self, kind: int) -> None:
        end = min(self.pos, len(self.src))
        self.tokens.append(Token(kind, self.start, self.src[self.start : end], self.start_line))
        self.start = end
        self.start_line = self.line

    def ignore(self) -> None:
        end = min(self.pos, len(self.src))
        self.line += self.src.count("\n", self.start, end)
        self.start = end
        self.start_line = self.line

    def error(self, message: str) -> None:
        self.tokens.append(Token(Kind.ERROR, self.start, message, self.start_line))

    def accept(self, valid: str) -> bool:
        c = self.next()
        if c and c in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            c = self.next()
            if not c or c not in valid:
                break
        self.backup()

    def at_right_delim(self) -> tuple[bool, bool]:
        """Whether a right delimiter (with or without trim marker) starts here."""
        src, pos = self.src, self.pos
        if has_right_trim(src, pos) and src.startswith(RIGHT_DELIM, pos + 2):
            return True, True
        if src.startswith(RIGHT_DELIM, pos):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        c = self.peek()
        if c == "" or is_space(c) or c in ".,|:)(":
            return True
        return self.src.startswith(RIGHT_DELIM, self.pos)

    # -- states (each returns the next state, None to stop) ------------------------------------

    def run(self) -> None:
        state = self.lex_text
        while state is not None:
            state = state()

    def lex_text(self):  # noqa: ANN201 - state functions return the next state
        src = self.src
        x = src.find(LEFT_DELIM, self.pos)
        if x >= 0:
            self.pos = x
            trim = 0
            if has_left_trim(src, x + len(LEFT_DELIM)):
                text = src[self.start : x]
                trim = len(text) - len(text.rstrip(SPACES))
            self.pos -= trim
            if self.pos > self.start:
                self.line += src.count("\n", self.start, self.pos)
                self.emit(Kind.TEXT)
            self.pos += trim
            self.ignore()
            return self.lex_left_delim
        self.pos = len(src)
        if self.pos > self.start:
            self.line += src.count("\n", self.start, self.pos)
            self.emit(Kind.TEXT)
        self.emit(Kind.EOF)
        return None

    def lex_left_delim(self):  # noqa: ANN201
        self.pos += len(LEFT_DELIM)
        trim = has_left_trim(self.src, self.pos)
        after = 2 if trim else 0
        if self.src.startswith(LEFT_COMMENT, self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(Kind.LEFT_DELIM)
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self):  # noqa: ANN201
        self.pos += len(LEFT_COMMENT)
        i = self.src.find(RIGHT_COMMENT, self.pos)
        if i < 0:
            self.error("unclosed comment")
            return None
        self.pos = i + len(RIGHT_COMMENT)
        delim, trim = self.at_right_delim()
        if not delim:
            self.error("comment ends before closing delimiter")
            return None
        if self.emit_comments:
            self.emit(Kind.COMMENT)
        if trim:
            self.pos += 2
        self.pos += len(RIGHT_DELIM)
        if trim:
            rest = self.src[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(SPACES))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):  # noqa: ANN201
        trim = has_right_trim(self.src, self.pos)
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT_DELIM)
        self.emit(Kind.RIGHT_DELIM)
        if trim:
            rest = self.src[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(SPACES))
            self.ignore()
        return self.lex_text

    def lex_inside_action(self):  # noqa: ANN201, C901 - one branch per character class
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            self.error("unclosed left paren")
            return None
        c = self.next()
        if c == "":
            self.error("unclosed action")
            return None
        if is_space(c):
            self.backup()  # put the space back in case we have " -}}"
            return self.lex_space
        if c == "=":
            self.emit(Kind.ASSIGN)
        elif c == ":":
            if self.next() != "=":
                self.error("expected :=")
                return None
            self.emit(Kind.DECLARE)
        elif c == "|":
            self.emit(Kind.PIPE)
        elif c == '"':
            return self.lex_quote
        elif c == "`":
            return self.lex_raw_quote
        elif c == "$":
            return self.lex_variable
        elif c == "'":
            return self.lex_char
        elif c == "." and self.peek() != "" and not "0" <= self.peek() <= "9":
            return self.lex_field
        elif c == "." or c in "+-" or "0" <= c <= "9":
            self.backup()
            return self.lex_number
        elif is_alphanumeric(c):
            self.backup()
            return self.lex_identifier
        elif c == "(":
            self.emit(Kind.LEFT_PAREN)
            self.paren_depth += 1
        elif c == ")":
            self.emit(Kind.RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.error(f"unexpected right paren {describe_rune(c)}")
                return None
        elif c <= "\x7f" and c.isprintable():
            self.emit(Kind.CHAR)
        else:
            self.error(f"unrecognized character in action: {describe_rune(c)}")
            return None
        return self.lex_inside_action

    def lex_space(self):  # noqa: ANN201
        spaces = 0
        while is_space(self.peek()):
            self.next()
            spaces += 1
        # A trim-marked right delimiter starts with a space: leave it to lex_right_delim.
        if has_right_trim(self.src, self.pos - 1) and self.src.startswith(
            RIGHT_DELIM, self.pos + 1
        ):
            self.backup()
            if spaces == 1:
                return self.lex_right_delim
        self.emit(Kind.SPACE)
        return self.lex_inside_action

    def lex_identifier(self):  # noqa: ANN201
        while True:
            c = self.next()
            if is_alphanumeric(c):
                continue
            self.backup()
            word = self.src[self.start : self.pos]
            if not self.at_terminator():
                self.error(f"bad character {describe_rune(c)}")
                return None
            keyword = KEYWORDS.get(word)
            if keyword is not None and keyword > Kind.KEYWORD:
                if (keyword == Kind.BREAK and not self.break_ok) or (
                    keyword == Kind.CONTINUE and not self.continue_ok
                ):
                    self.emit(Kind.IDENTIFIER)
                else:
                    self.emit(keyword)
            elif word[0] == ".":
                self.emit(Kind.FIELD)
            elif word in ("true", "false"):
                self.emit(Kind.BOOL)
            else:
                self.emit(Kind.IDENTIFIER)
            return self.lex_inside_action

    def lex_field(self):  # noqa: ANN201
        return self.lex_field_or_variable(Kind.FIELD)

    def lex_variable(self):  # noqa: ANN201
        if self.at_terminator():  # just "$"
            self.emit(Kind.VARIABLE)
            return self.lex_inside_action
        return self.lex_field_or_variable(Kind.VARIABLE)

    def lex_field_or_variable(self, kind: int):  # noqa: ANN201
        if self.at_terminator():  # "." or "$" alone
            self.emit(Kind.VARIABLE if kind == Kind.VARIABLE else Kind.DOT)
            return self.lex_inside_action
        while True:
            c = self.next()
            if not is_alphanumeric(c):
                self.backup()
                break
        if not self.at_terminator():
            self.error(f"bad character {describe_rune(c)}")
            return None
        self.emit(kind)
        return self.lex_inside_action

    def lex_char(self):  # noqa: ANN201
        return self.lex_escaped("'", Kind.CHAR_CONSTANT, "unterminated character constant")

    def lex_number(self):  # noqa: ANN201
        if not self.scan_number():
            self.error(f"bad number syntax: {quote(self.src[self.start : self.pos])}")
            return None
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self.scan_number() or self.src[self.pos - 1] != "i":
                self.error(f"bad number syntax: {quote(self.src[self.start : self.pos])}")
                return None
            self.emit(Kind.COMPLEX)
        else:
            self.emit(Kind.NUMBER)
        return self.lex_inside_action

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if is_alphanumeric(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self):  # noqa: ANN201
        return self.lex_escaped('"', Kind.STRING, "unterminated quoted string")

    def lex_escaped(self, close: str, kind: Kind, unterminated: str):  # noqa: ANN201
        """Scan a backslash-escaped literal up to `close`; a newline or EOF inside is an error."""
        while True:
            c = self.next()
            if c == "\\":
                c = self.next()
                if c not in ("", "\n"):
                    continue
                self.error(unterminated)
                return None
            if c in ("", "\n"):
                self.error(unterminated)
                return None
            if c == close:
                break
        self.emit(kind)
        return self.lex_inside_action

    def lex_raw_quote(self):  # noqa: ANN201
        end = self.src.find("`", self.pos)
        if end < 0:
            self.error("unterminated raw quoted string")
            return None
        self.line += self.src.count("\n", self.pos, end + 1)
        self.pos = end + 1
        self.emit(Kind.RAW_STRING)
        return self.lex_inside_action


def tokenize(
    source: str, *, break_ok: bool = True, continue_ok: bool = True, comments: bool = False
) -> list[Token]:
    """Every token of `source`, ending with an EOF token or, at the first error, an ERROR one.

    With `comments`, each `{{/* ... */}}` gives a COMMENT token (`/* ... */`), as Go's
    ParseComments mode; the parser does not take them.
    """
    lexer = _Lexer(source, break_ok, continue_ok, comments)
    lexer.run()
    return lexer.tokens
