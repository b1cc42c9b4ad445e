"""The errors of the Go template front end: a template that does not parse, or fails to run.

Both are `confd.errors.TemplateError`s, so callers handle them like Jinja's; their text starts
with `file:line:column:` and then says what Go's text/template says.
"""

from __future__ import annotations

from confd.errors import TemplateError

__all__ = ["GoExecError", "GoSyntaxError", "position"]


def position(source: str, pos: int) -> tuple[int, int]:
    """(line, column) of offset `pos`: 1-based line, 0-based column in UTF-8 bytes, as Go."""
    line = source.count("\n", 0, pos) + 1
    start = source.rfind("\n", 0, pos) + 1
    return line, len(source[start:pos].encode("utf-8", "surrogateescape"))


class GoSyntaxError(TemplateError):
    """A Go template does not parse (or uses a function that is not defined)."""

    def __init__(self, where: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{where}:{line}:{column}: {message}")
        self.where = where
        self.line = line
        self.column = column
        self.message = message

    @property
    def short(self) -> str:
        """`line:column: message`, for a message that names the file already."""
        return f"{self.line}:{self.column}: {self.message}"


class GoExecError(TemplateError):
    """A Go template failed while rendering; `function` names the function that failed."""

    def __init__(
        self, where: str, line: int, column: int, name: str, context: str, message: str,
        function: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(
            f'{where}:{line}:{column}: executing "{name}" at <{context}>: {message}'
            if context else f'{where}:{line}:{column}: executing "{name}": {message}'
        )
        self.where = where
        self.line = line
        self.column = column
        self.template = name
        self.context = context
        self.message = message
        self.function = function
