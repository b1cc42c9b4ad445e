"""Render templates against a KV store, with errors naming file and line: Jinja2 (sandboxed)
or Go's text/template (`confd.template.golang`), chosen per template file.

`template_syntax` is `go`, `jinja` or `auto`, where the file decides (the rule is
`confd.template.golang.syntax.detect_syntax`: `{%`/`{#` means Jinja, else whichever parser
accepts it, Go when both do). Templates are compiled once and cached (re-read when the file
changes; Jinja's compiled code is also kept by content, on disk too, by `confd.template.cache`).
Each render gets its own recording view of the store, so concurrent renders never
share state and the processor learns exactly which keys an output depends on, in either syntax.
Templates `include`d read through the same view. confd's functions are a template's globals;
those of the fork's utility set that read naturally after a `|` are Jinja filters too
(`FILTERS`), with the piped value as the subject. Jinja's own `default` and `indent` filters
keep Jinja's meaning; `tojson` writes JSON as Go does (compact, keys sorted), like `toJson`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from confd.errors import TemplateError
from confd.template.cache import CompiledTemplates
from confd.template.functions import (
    FUNCTION_NAMES,
    FunctionError,
    function,
    is_template_function,
    template_functions,
)
from confd.template.include import Includes, inside
from confd.template.printing import finalize
from confd.template.store import KVPair, KVStore, Reads

if TYPE_CHECKING:
    from confd.template.golang.template import GoTemplate
    from confd.template.shapes import Shapes

__all__ = ["FILTERS", "Rendered", "Renderer", "SYNTAXES", "worker_renderer"]

SYNTAXES = ("auto", "go", "jinja")

_MIN_REDACT = 4  # shorter values ("80", "on") are too common to hide without garbling messages


def _piped(name: str) -> Callable[..., Any]:
    """Filter `name` as a Go pipeline calls it: `x|nindent(2)` is `nindent(2, x)`."""
    fn = function(name)

    def apply(value: Any, *args: Any) -> Any:
        return fn(*args, value)

    apply.__name__ = name
    return apply


def _subject_first(name: str) -> Callable[..., Any]:
    """Filter `name` whose first parameter is the subject: `m|hasKey("a")`."""
    return function(name)


def _regex_replace_all(value: Any, pattern: Any, replacement: Any) -> Any:
    return function("regexReplaceAll")(pattern, value, replacement)


def _pluck(maps: Any, key: Any) -> Any:
    return function("pluck")(key, *maps)


def _tojson(value: Any, indent: int | None = None) -> str:
    """Jinja's `tojson`, writing JSON as Go does (`indent`: spaces, pretty-printed)."""
    if indent is None:
        return function("toJson")(value)
    from confd.template.gojson import marshal

    try:
        return marshal(value, " " * int(indent))
    except Exception as exc:
        raise FunctionError("tojson", exc) from exc


# The fork's functions as Jinja filters, the piped value as subject.
FILTERS: dict[str, Callable[..., Any]] = {
    **{name: _piped(name) for name in (
        "ternary", "empty", "toJson", "fromJson", "toPrettyJson", "nindent", "quote",
        "squote", "regexMatch", "regexFind", "repeat", "nospace", "snakecase", "camelcase",
        "kebabcase", "keys", "values", "sha256sum",
    )},
    **{name: _subject_first(name) for name in ("coalesce", "hasKey", "append")},
    "regexReplaceAll": _regex_replace_all,
    "pluck": _pluck,
    "tojson": _tojson,
}


_PAIR_FIELDS = {"key": 0, "value": 1, "Key": 0, "Value": 1}


class _Environment(SandboxedEnvironment):
    """confd's Jinja environment: templates that differ only in their text and string
    literals share one compile (`confd.template.shapes`), and a key/value pair's fields are
    read without the sandbox's checks (plain strings; half of a `gets` loop's time), as are
    confd's own functions called (a sixth of a render of 11 calls)."""

    shapes: Shapes | None = None

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if is_template_function(__obj):  # safe, and takes no context: nothing to check or pass
            if kwargs:
                kwargs.pop("_loop_vars", None)  # what Jinja passes for a context function
                kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is KVPair:
            field = _PAIR_FIELDS.get(attribute)
            if field is not None:
                return obj[field]
        return super().getattr(obj, attribute)

    def compile(self, source: Any, name: str | None = None, filename: str | None = None,
                raw: bool = False, defer_init: bool = False) -> Any:
        if raw or defer_init or not isinstance(source, str):
            return super().compile(source, name, filename, raw, defer_init)
        if self.shapes is None:
            from confd.template.shapes import Shapes  # only a compile needs it

            self.shapes = Shapes()
        return self.shapes.compile(self, source, name, filename, super().compile)


class Rendered(NamedTuple):
    """The output of one render and what it read from the store."""

    text: str
    reads: Reads


class Syntax(NamedTuple):
    """The syntax a template was read as (`go` or `jinja`) and why."""

    name: str
    reason: str


class _Loader(BaseLoader):
    """Jinja's loader for a renderer's templates directory: reads through the renderer, so a
    source `syntax_of` just read is not read again and freshness is the batch's one stat."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        return self._renderer._jinja_source(template)


class Renderer:
    """Loads templates from `templates_dir` and renders them with confd's function set.

    `syntax` is the run's `template_syntax`; a resource may ask for its own per call.
    """

    def __init__(self, templates_dir: Path, syntax: str = "auto",
                 cache: CompiledTemplates | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self._dir = os.fspath(self.templates_dir)  # joined to names: a str, converted once
        self.syntax = syntax
        self.cache = cache  # Jinja's compiled code by content, on disk too
        self._root = os.path.normpath(os.path.abspath(self.templates_dir))
        # per file: (mtime_ns, size) -> the syntax it was read as, and its compiled Go form
        self._syntaxes: dict[tuple[str, str], tuple[tuple[int, int], Syntax]] = {}
        self._go: dict[str, tuple[tuple[int, int], GoTemplate]] = {}
        # during a batch: each file looked at once, each Jinja template loaded once (`batch`)
        self._stamps: dict[str, tuple[int, int]] | None = None
        self._pinned: dict[str, Template] | None = None
        self._chosen: dict[tuple[str, str], Syntax] | None = None  # syntax_of, in a batch
        # sources `syntax_of` read, until Jinja's loader takes them: a file is read once
        self._read: dict[str, tuple[tuple[int, int], str]] = {}
        self._env = _Environment(
            loader=_Loader(self),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            auto_reload=True,
            cache_size=-1,  # one compiled template per file, however many resources
            finalize=finalize,  # {{ value }} prints as Go confd prints it
            bytecode_cache=cache,
        )
        self._env.filters.update(FILTERS)

    @property
    def environment(self) -> SandboxedEnvironment:
        """The Jinja environment templates compile in."""
        return self._env

    @contextlib.contextmanager
    def batch(self, templates: Iterable[tuple[str, str | None]]) -> Iterator[None]:
        """Render a batch of (src, syntax) templates: `prepare` them, and look at each file
        once for the whole batch instead of at every render (a stat each, 0.2 ms apiece on
        this project's test disk once the batch's syncs are creating files). A template edited
        meanwhile is read again by the next batch."""
        self._stamps, self._pinned, self._chosen = {}, {}, {}
        if self.cache is not None:
            self.cache.begin_batch()  # what it compiles is written once, at its end
        try:
            self.prepare(templates)
            yield
        finally:
            self._stamps = self._pinned = self._chosen = None
            if self.cache is not None:
                self.cache.end_batch()

    def prepare(self, templates: Iterable[tuple[str, str | None]]) -> None:
        """Ready the (src, syntax) templates of a batch before it renders: when many are
        missing from the compiled cache, worker processes compile those that may be Jinja;
        then each is loaded, before the batch's syncs start (`confd.template.cache`)."""
        wanted = list(dict.fromkeys(templates))
        if self.cache is None or not self.cache.loads_ahead(len(wanted)):
            return
        chosen = {src: syntax or self.syntax for src, syntax in wanted}
        self.cache.compile_ahead(
            self._env, chosen, partial(worker_renderer, self.templates_dir, self.syntax),
            FUNCTION_NAMES, lambda src, source: _syntax_at_a_glance(chosen[src], source))
        self.cache.begin_batch()
        try:
            for src, syntax in wanted:
                if self.cache.compiling(src):
                    continue  # loaded when rendered, as its worker finishes
                try:
                    if self.syntax_of(src, syntax).name == "go":
                        self._load_go(src)
                    else:
                        self._load(src)
                except TemplateError:
                    continue  # reported when its resource renders
        finally:
            self.cache.end_batch()

    def check(self, src: str, syntax: str | None = None) -> Syntax:
        """Load and compile `src` without rendering; returns the syntax it was read as.

        `TemplateError` on any problem (a syntax error names file:line[:column]).
        """
        chosen = self.syntax_of(src, syntax)
        if chosen.name == "go":
            self._load_go(src)
        else:
            self._load(src)
        return chosen

    def render(
        self, src: str, store: KVStore, extra: Mapping[str, Any] | None = None, *,
        syntax: str | None = None,
    ) -> Rendered:
        """Render `src` against `store`; `extra` adds variables (functions win on clashes)."""
        reads = Reads()
        functions: dict[str, Any] = {}
        includes = Includes(self._root,  # absolute: no getcwd per render (slow beside renames)
                            lambda name, data: self._render_included(name, data, functions))
        try:
            return Rendered(self._execute(src, store, extra, syntax, reads, functions, includes),
                            reads)
        finally:
            # `include` renders with this very map, which holds it: a cycle (~47 objects a
            # render) only the cycle collector could free. Emptied, it all goes at once.
            functions.clear()

    def _execute(self, src: str, store: KVStore, extra: Mapping[str, Any] | None,
                 syntax: str | None, reads: Reads, functions: dict[str, Any],
                 includes: Includes) -> str:
        """The text of `src` rendered with `functions` (filled here) bound to `reads`."""
        if self.syntax_of(src, syntax).name == "go":
            from confd.template.golang.functions import go_functions

            template = self._load_go(src)
            functions.update(go_functions(store.view(reads), includes))
            try:
                return template.execute(functions)
            except TemplateError as exc:
                raise TemplateError(self._redact(str(exc), src, store)) from exc
        jinja = self._load(src)
        context: dict[str, Any] = {"printf": _printf}
        context.update(extra or {})
        functions.update(template_functions(store.view(reads), includes))
        context.update(functions)
        try:
            return jinja.render(context)
        except TemplateError as exc:
            raise TemplateError(self._redact(str(exc), src, store)) from exc
        except Exception as exc:
            raise TemplateError(self._redact(self._describe(src, exc), src, store)) from exc

    def syntax_of(self, src: str, syntax: str | None = None) -> Syntax:
        """The syntax `src` is read as: the one asked for (resource, then run), or under
        `auto` what the file says (cached until the file changes)."""
        wanted = syntax or self.syntax
        if wanted in ("go", "jinja"):
            return Syntax(wanted, "template_syntax says so")
        chosen = self._chosen
        if chosen is not None and (found := chosen.get((src, wanted))) is not None:
            return found  # a batch looks at each file once: what it found stands till its end
        self._from_worker(src)
        path = self._checked_path(src)
        stamp = self._stamp(path)
        cached = self._syntaxes.get((src, wanted))
        if cached is not None and cached[0] == stamp:
            if chosen is not None:
                chosen[(src, wanted)] = cached[1]
            return cached[1]
        source = self._source(src, path)
        from confd.template.golang.syntax import detect_syntax, evident_syntax

        # a glance (cheaper than any cache file), else what an earlier run decided
        known = evident_syntax(source) or (
            self.cache.syntax(self._env, source, FUNCTION_NAMES) if self.cache else None)
        if known is not None:
            found = Syntax(*known)
        else:
            detection = detect_syntax(source,
                                      lambda text: self._go_error(text, src, path, stamp),
                                      lambda text: self._jinja_error(text, src, path))
            if detection.syntax is None:
                raise self._neither(path, source, src)
            found = Syntax(detection.syntax, detection.reason)
            if self.cache is not None:
                self.cache.remember_syntax(self._env, source, FUNCTION_NAMES, *found)
        self._syntaxes[(src, wanted)] = (stamp, found)
        if chosen is not None:
            chosen[(src, wanted)] = found
        if found.name == "jinja":  # its compile (Jinja's loader) takes the source from here
            self._read[os.path.normpath(path)] = (stamp, source)
        return found

    def unknown_names(self, src: str) -> list[str]:
        """Names a Jinja template uses that are neither confd functions nor set in the
        template (`file:line: unknown function or variable 'x'`): what would fail at render
        time, found at load time. Go templates have this checked by their parser."""
        from jinja2 import meta, nodes

        path = self._checked_path(src)
        tree = self._env.parse(self._source(src, path))
        known = FUNCTION_NAMES | {"printf"} | set(self._env.globals)
        unknown = sorted(meta.find_undeclared_variables(tree) - known)
        problems = []
        for name in unknown:
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), 1)
            problems.append(f"{path}:{line}: unknown function or variable {name!r}")
        return problems

    def _neither(self, path: str, source: str, src: str) -> TemplateError:
        """A template neither syntax reads: the Jinja error first (file:line), then Go's."""
        go = self._go_error(source, src, path) or ""
        try:
            self._env.compile(source)
        except TemplateSyntaxError as exc:
            return TemplateError(
                f"{path}:{exc.lineno}: {exc.message} (read as Jinja; as a Go template: {go})")
        return TemplateError(f"{path}: {go}")

    def _go_error(self, source: str, src: str, path: str,
                  stamp: tuple[int, int] | None = None) -> str | None:
        """Why `source` does not parse as a Go template (None when it does). With the file's
        `stamp`, the template parsed to tell is kept: loading it then parses nothing."""
        from confd.template.golang.errors import GoSyntaxError
        from confd.template.golang.template import GoTemplate

        try:
            template = GoTemplate.parse(source, src, FUNCTION_NAMES, where=path)
        except GoSyntaxError as exc:
            return exc.short
        if stamp is not None:
            self._go[src] = (stamp, template)
            if self.cache is not None:
                self.cache.remember_go(self._env, source, FUNCTION_NAMES, template.dumps())
        return None

    def _jinja_error(self, source: str, name: str | None = None,
                     filename: str | None = None) -> str | None:
        """Why `source` does not compile as Jinja (None when it does). The code compiled to
        tell is kept (`confd.template.cache`): loading the template then compiles nothing."""
        if self.cache is not None and self.cache.has_code(self._env, source):
            return None
        try:
            code = self._env.compile(source, name, filename)
        except TemplateSyntaxError as exc:
            return f"line {exc.lineno}: {exc.message}"
        if self.cache is not None:
            self.cache.remember(self._env, source, code)
        return None

    def _source(self, src: str, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            raise TemplateError(f"{path}: template not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read template: {exc}") from exc

    def _jinja_source(self, name: str) -> tuple[str, str, Callable[[], bool]]:
        """What Jinja's loader returns for template `name`: its source (the one `syntax_of`
        just read, when the file has not changed since), file name, and an up-to-date check
        that uses the batch's one look at the file."""
        path = os.path.normpath(os.path.join(self._dir,
                                             *split_template_path(name)))
        stamp = self._stamp(path)
        read = self._read.pop(path, None)
        if read is not None and read[0] == stamp and stamp != (0, 0):
            source = read[1]
        else:
            if not os.path.isfile(path):
                raise TemplateNotFound(name)
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        return source, path, lambda: self._stamp(path) == stamp

    def _load_go(self, src: str) -> GoTemplate:
        """The compiled Go template `src` (compiled again when the file changes)."""
        from confd.template.golang.template import GoTemplate

        path = self._checked_path(src)
        stamp = self._stamp(path)
        cached = self._go.get(src)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        self._from_worker(src)
        source = self._source(src, path)
        template = None
        payload = self.cache.go_template(self._env, source, FUNCTION_NAMES) if self.cache else None
        if payload is not None:  # compiled in an earlier run (confd.template.cache)
            template = GoTemplate.loads(payload, source, src, FUNCTION_NAMES, where=path)
        if template is None:
            template = GoTemplate.parse(source, src, FUNCTION_NAMES, where=path)
            if self.cache is not None:
                self.cache.remember_go(self._env, source, FUNCTION_NAMES, template.dumps())
        self._go[src] = (stamp, template)
        return template

    def _go_hint(self, src: str) -> str:
        """When a template failing as Jinja is a valid Go template, say how to read it as Go."""
        from confd.template.golang.errors import GoSyntaxError
        from confd.template.golang.parser import parse

        try:
            parse(self._source(src, self._path(src)), src, FUNCTION_NAMES)
        except (GoSyntaxError, TemplateError):
            return ""
        return (" (this is a Go text/template template: set template_syntax = \"go\" or "
                "\"auto\" to read it as one)")

    def _checked_path(self, src: str) -> str:
        if inside(self._root, src) is None:
            raise TemplateError(
                f"{self._path(src)}: template path escapes the templates directory "
                f"{self.templates_dir}"
            )
        return self._path(src)

    def _render_included(self, name: str, data: Any, functions: Mapping[str, Any]) -> str:
        """An included template, in its own syntax, rendered with the includer's functions
        (Go: `data` is dot; Jinja: a map's keys are its variables and `data` the whole value)."""
        if self.syntax_of(name).name == "go":
            return self._load_go(name).execute(functions, data)
        template = self._load(name)
        context: dict[str, Any] = {"printf": _printf}
        if isinstance(data, Mapping):
            context.update((k, v) for k, v in data.items() if isinstance(k, str))
        context["data"] = data
        context.update(functions)
        return template.render(context)

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
        return os.path.join(self._dir, src)

    def _stamp(self, path: str) -> tuple[int, int]:
        stamps = self._stamps
        if stamps is None:
            return _stamp(path)
        stamp = stamps.get(path)
        if stamp is None:
            stamp = stamps[path] = _stamp(path)
        return stamp

    def _from_worker(self, src: str) -> None:
        """Take what a compile worker found for `src`, if one has it (`compile_ahead`)."""
        if self.cache is not None and self.cache.compiling(src):
            self.cache.wait_for(src)

    def _load(self, src: str) -> Template:
        pinned = self._pinned
        if pinned is not None and src in pinned:
            return pinned[src]
        self._checked_path(src)
        self._from_worker(src)
        try:
            template = self._env.get_template(src)
            if pinned is not None:
                pinned[src] = template
            return template
        except TemplateSyntaxError as exc:
            where = exc.filename or self._path(src)
            raise TemplateError(f"{where}:{exc.lineno}: {exc.message}{self._go_hint(src)}") \
                from exc
        except TemplateNotFound as exc:
            raise TemplateError(f"{self._path(src)}: template not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{self._path(src)}: cannot read template: {exc}") from exc

    def _describe(self, src: str, exc: BaseException) -> str:
        """`file:line: message` for an error raised while rendering."""
        where = _template_location(exc.__traceback__) or self._path(src)
        if isinstance(exc, FunctionError):
            if isinstance(exc.cause, TemplateError):  # an included template: it names itself
                return str(exc.cause)
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


def _syntax_at_a_glance(syntax: str, source: str) -> str:
    """`syntax` (jinja, go, auto), with auto settled when the text shows Jinja (`{%`)."""
    if syntax != "auto":
        return syntax
    from confd.template.golang.syntax import evident_syntax

    evident = evident_syntax(source)
    return evident.syntax if evident is not None and evident.syntax else "auto"


def worker_renderer(templates_dir: Path, syntax: str = "auto") -> Renderer:
    """A renderer like this process's for a compile worker: its cache in memory only."""
    return Renderer(templates_dir, syntax, cache=CompiledTemplates(None))


def _printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for Jinja templates (what `confd convert` writes for Go's `printf`)."""
    from confd.template.golang.fmt import sprintf

    try:
        return sprintf(fmt, *args)
    except Exception as exc:
        raise FunctionError("printf", exc) from exc


_printf.__name__ = "printf"


def _stamp(path: str) -> tuple[int, int]:
    """(mtime_ns, size) of `path`: a template file changed when this did; (0, 0) if gone."""
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


def _template_location(tb: TracebackType | None) -> str | None:
    """`file:line` of the innermost template frame in `tb` (Jinja rewrites those frames)."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if "__jinja_exception__" in frame.f_globals:
            found = f"{frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found
