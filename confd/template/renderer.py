"""Render Jinja2 templates against a KV store, in a sandbox, with errors naming file and line.

Templates are compiled once and cached (re-read when the file changes). Each render gets
its own recording view of the store, so concurrent renders never share state and the
processor learns exactly which keys an output depends on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateNotFound
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from confd.errors import TemplateError
from confd.template.cache import CompiledTemplates
from confd.template.functions import FunctionError, template_functions
from confd.template.store import KVStore, Reads

__all__ = ["Rendered", "Renderer", "jinja_environment"]

_MIN_REDACT = 4  # shorter values ("80", "on") are too common to hide without garbling messages


class Rendered(NamedTuple):
    """The output of one render and what it read from the store."""

    text: str
    reads: Reads


class Renderer:
    """Loads templates from `templates_dir` and renders them with confd's function set."""

    def __init__(self, templates_dir: Path, syntax: str = "auto",
                 cache: CompiledTemplates | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self.syntax = syntax
        self.cache = cache  # compiled templates by content, on disk too (confd.template.cache)
        self._root = os.path.normpath(os.path.abspath(self.templates_dir))
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(os.fspath(self.templates_dir)),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            auto_reload=True,
            cache_size=-1,  # one compiled template per file, however many resources
            bytecode_cache=cache,
        )

    def prepare(self, sources: Iterable[str]) -> None:
        """Compile ahead, in parallel when many are missing, the templates a pass renders."""
        if self.cache is not None:
            factory = partial(jinja_environment, self.templates_dir, self.syntax)
            self.cache.prepare(self._env, sources, factory)

    def check(self, src: str, syntax: str | None = None) -> None:
        """Load and compile `src` without rendering; `TemplateError` on any problem."""
        self._load(src)

    def render(
        self, src: str, store: KVStore, extra: Mapping[str, Any] | None = None, *,
        syntax: str | None = None,
    ) -> Rendered:
        """Render `src` against `store`; `extra` adds variables (functions win on clashes)."""
        template = self._load(src)
        reads = Reads()
        context: dict[str, Any] = dict(extra) if extra else {}
        context.update(template_functions(store.view(reads)))
        try:
            text = template.render(context)
        except TemplateError as exc:
            raise TemplateError(self._redact(str(exc), src, store)) from exc
        except Exception as exc:
            raise TemplateError(self._redact(self._describe(src, exc), src, store)) from exc
        return Rendered(text, reads)

    def _redact(self, message: str, src: str, store: KVStore) -> str:
        """Hide store values that an error message quotes (a value used as a dict key, or
        glued into a key name): values are never logged. Text the template itself spells
        out stays, so a literal key name is still shown."""
        where, sep, body = message.partition(": ")
        if not sep:
            where, body = "", message
        try:
            source = self._env.loader.get_source(self._env, src)[0] if self._env.loader else ""
        except Exception:  # noqa: BLE001 - the template just failed; show less, not crash
            source = ""
        values = {v for v in store.snapshot().values() if len(v) >= _MIN_REDACT}
        for value in sorted(values, key=len, reverse=True):
            if value in body and value not in source:
                body = body.replace(value, "<value hidden>")
        return f"{where}{sep}{body}"

    def _path(self, src: str) -> str:
        return os.path.join(os.fspath(self.templates_dir), src)

    def _load(self, src: str) -> Template:
        full = os.path.normpath(os.path.join(self._root, src))
        if not full.startswith(self._root.rstrip(os.sep) + os.sep):
            raise TemplateError(
                f"{self._path(src)}: template path escapes the templates directory "
                f"{self.templates_dir}"
            )
        try:
            return self._env.get_template(src)
        except TemplateSyntaxError as exc:
            where = exc.filename or self._path(src)
            raise TemplateError(f"{where}:{exc.lineno}: {exc.message}") from exc
        except TemplateNotFound as exc:
            raise TemplateError(f"{self._path(src)}: template not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{self._path(src)}: cannot read template: {exc}") from exc

    def _describe(self, src: str, exc: BaseException) -> str:
        """`file:line: message` for an error raised while rendering."""
        where = _template_location(exc.__traceback__) or self._path(src)
        if isinstance(exc, FunctionError):
            return f"{where}: {exc.reason} (in {exc.function})"
        if isinstance(exc, UndefinedError):
            return f"{where}: {exc.message}"
        if isinstance(exc, SecurityError):
            return f"{where}: refused by the template sandbox: {exc}"
        if isinstance(exc, TemplateNotFound):
            return f"{where}: included template {exc.name!r} not found"
        if isinstance(exc, TemplateSyntaxError):  # an included template failed to parse
            return f"{exc.filename}:{exc.lineno}: {exc.message}"
        return f"{where}: {type(exc).__name__}: {exc}"


def jinja_environment(templates_dir: Path, syntax: str = "auto") -> Any:
    """The Jinja environment a `Renderer` renders with (compile workers build theirs alike)."""
    return Renderer(templates_dir, syntax)._env


def _template_location(tb: TracebackType | None) -> str | None:
    """`file:line` of the innermost template frame in `tb` (Jinja rewrites those frames)."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if "__jinja_exception__" in frame.f_globals:
            found = f"{frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found
