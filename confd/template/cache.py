"""Compiled templates: compiled once per content, kept on disk across runs, compiled by worker
processes when a pass finds many missing.

Jinja compiles a template (lex, parse, generate Python, `compile`) in 2 to 6 ms; loading the same
code with `marshal` takes microseconds. `CompiledTemplates` is the environment's Jinja
`BytecodeCache`: code is keyed by the template's bytes and everything that shapes the generated
code (confd's and Jinja's versions, the Python build, the environment's options), so templates
with the same content share one compile whatever their file names, and an edited template, an
upgrade or a different environment never reuses stale code. A template missing from the cache
whose shape (everything but its text and string literals) compiled before takes that code with
its own literals (`confd.template.shapes`), in this process and in the compile workers.

On disk, each compiled template is one file `<dir>/templates/<key>.jbc` (a Go template:
`<key>.gtc`, `GoTemplate.dumps`), written atomically (and
the syntax `template_syntax = auto` found for a template, `<key>.syntax`: deciding it means
parsing the template as Go and compiling it as Jinja). What a batch compiles is written when it
ends: a few entries as files, many (PACK_MIN) as one pack `pack-<digest>.jbp` holding them all
(creating a file costs ~0.5 ms of kernel time on this project's test disk: 1,000 templates
cost half a second of it, their pack a few milliseconds). A run reads every pack at its first
miss; past MAX_PACKS, writing one removes the packs no run used for longest. Where the
directory is, and when it is skipped (compiling in memory only) or refused, is
`confd.cache_dir`'s.

`compile_ahead` is called with the templates of a batch (a full pass): when many are missing from
the cache and the machine has more than one core, worker processes (one per core) run a renderer
like this process's on them (deciding the syntax under `auto`, compiling Jinja or Go) and hand
back the cache entries that made, while this process reads the store and renders what is ready;
the batch writes them when it ends.
(Compiling the first few here while the workers start was slower in an A/B on 2 cores: 4.6 s
against 4.2 s for issue #13's cold first render, three processes then sharing two cores.)
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
import threading
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from jinja2.bccache import Bucket, BytecodeCache

from confd import __version__
from confd.cache_dir import CacheDirectory
from confd.log import get_logger

if TYPE_CHECKING:
    from concurrent.futures import Future

    from jinja2 import Environment

__all__ = ["CompiledTemplates", "environment_fingerprint"]

log = get_logger("template")

_T = TypeVar("_T")

FORMAT = b"confd-jbc1\n"  # first line of every cache file; bump when the layout changes
# A pass compiles in worker processes from this many missing templates up: a worker costs
# ~0.15 s to start (an interpreter importing Jinja), a compile 2 to 6 ms.
PARALLEL_COMPILE_MIN = 100
CHUNK = 20  # templates per job sent to a worker
SAMPLE = 50  # templates looked at before deciding whether a pass needs workers
# A batch from this many templates up loads them all before it renders (`Renderer.prepare`):
# reading a template and its compiled code (an open, two stats, a read each) took 0.3 to 0.7 ms
# per template on this project's test disk while sync threads created files beside the renders
# (as they did before `sync_files`), ~20 us before; loading first keeps a pass's reads together.
PRELOAD_MIN = 16
# A batch that compiled this many templates up keeps them in one pack file instead of one file
# each: creating a file cost ~0.5 ms of kernel time on this project's test disk (1,000 templates:
# half a second), loading a pack of 1,000 a few milliseconds.
PACK_MIN = 16
MAX_PACKS = 8  # beyond this, the packs least recently used are removed when one is written
PACK_SUFFIX = ".jbp"


def _name(obj: Any) -> str:
    """A stable spelling of a class or function (repr would show an address)."""
    if obj is None or isinstance(obj, bool | str | int):
        return repr(obj)
    target = obj if isinstance(obj, type) else type(obj) if not callable(obj) else obj
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


def environment_fingerprint(environment: Environment) -> bytes:
    """What, besides the source, decides the code Jinja generates for `environment`."""
    import jinja2

    env = environment
    parts = [
        FORMAT.decode().strip(), __version__, jinja2.__version__, sys.implementation.cache_tag,
        str(sys.hexversion), _name(type(env)), _name(env.undefined), _name(env.finalize),
        _name(env.autoescape), _name(env.code_generator_class), _name(env.context_class),
        env.block_start_string, env.block_end_string, env.variable_start_string,
        env.variable_end_string, env.comment_start_string, env.comment_end_string,
        repr(env.line_statement_prefix), repr(env.line_comment_prefix), repr(env.trim_blocks),
        repr(env.lstrip_blocks), repr(env.newline_sequence), repr(env.keep_trailing_newline),
        repr(env.optimized), repr(env.is_async), ",".join(sorted(env.extensions)),
        ",".join(sorted(getattr(env, "intercepted_binops", ()))),
        ",".join(sorted(getattr(env, "intercepted_unops", ()))),
        ",".join(sorted(env.filters)), ",".join(sorted(env.tests)),  # the compiler checks them
    ]
    return "\0".join(parts).encode()


def _with_filename(code: CodeType, filename: str) -> CodeType:
    """`code` (and the functions it defines) reporting `filename`, as errors name the file."""
    consts = tuple(_with_filename(c, filename) if isinstance(c, CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


class _Directory(CacheDirectory):
    """The on-disk half: one file per compiled template, and packs of many."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, "templates", FORMAT, "compiled-template cache")

    def packs(self) -> list[str]:
        """The pack files here, most recently used first."""
        if not self.readable:
            return []
        try:
            with os.scandir(self.root) as entries:
                found = [(e.stat(follow_symlinks=False).st_mtime, e.name) for e in entries
                         if e.name.endswith(PACK_SUFFIX) and not e.name.startswith(".")]
        except OSError:
            return []
        return [name for _, name in sorted(found, reverse=True)]

    def store_pack(self, name: str, payload: bytes, keep: Collection[str]) -> None:
        """Write pack `name`; past MAX_PACKS, remove the least recently used (not `keep`)."""
        self.store(name, payload, PACK_SUFFIX)
        if not self.writable:
            return
        for old in self.packs()[MAX_PACKS:]:
            if old not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(self.root / old)

    def touch(self, names: Iterable[str]) -> None:
        """Mark packs as used now: the ones removed first are those no run uses."""
        if self.writable:
            for name in names:
                with contextlib.suppress(OSError):
                    os.utime(self.root / name)


class Preparer(Protocol):
    """What a compile worker runs: a renderer over the same templates, its cache in memory."""

    cache: CompiledTemplates | None

    @property
    def environment(self) -> Environment: ...

    def check(self, src: str, syntax: str | None = None) -> object: ...


class CompiledTemplates(BytecodeCache):
    """Jinja's bytecode cache for one environment: in memory by content, and on disk."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = _Directory(directory) if directory is not None else None
        self._code: dict[str, CodeType] = {}
        self._pending: dict[str, Future[list[tuple[str, bytes]]]] = {}  # by key
        self._compiling: dict[str, Future[list[tuple[str, bytes]]]] = {}  # the same, by name
        self._fingerprint: bytes | None = None
        self._syntaxes: dict[str, tuple[str, str]] = {}  # by syntax key: (syntax, why)
        self._go: dict[str, bytes] = {}  # compiled Go templates by key (GoTemplate.dumps)
        self._names: tuple[int, str] | None = None  # the function names hashed for those keys
        # the code in the packs on disk, once read: key -> (marshalled code, pack file)
        self._packed: dict[str, tuple[bytes, str]] | None = None
        self._used_packs: set[str] = set()  # pack files a lookup took code from
        self._unsaved: dict[str, bytes] = {}  # code compiled here or by workers, not on disk
        self._batches = 0  # batches under way: their compiles are written when the last ends
        self._lock = threading.Lock()

    def key(self, environment: Environment, source: str) -> str:
        """The cache key of `source` compiled by `environment`."""
        if self._fingerprint is None:
            self._fingerprint = environment_fingerprint(environment)
        digest = hashlib.sha256(self._fingerprint)
        digest.update(b"\0")
        digest.update(source.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    # -- Jinja's BytecodeCache --------------------------------------------------------------

    def get_bucket(self, environment: Environment, name: str, filename: str | None,
                   source: str) -> Bucket:
        key = self.key(environment, source)
        bucket = Bucket(environment, key, "")
        code = self._lookup(key)
        if code is not None:
            want = filename or name
            bucket.code = code if code.co_filename == want else _with_filename(code, want)
        return bucket

    def set_bucket(self, bucket: Bucket) -> None:
        code = bucket.code
        if code is None:
            return
        with self._lock:
            self._code[bucket.key] = code
        self._put(bucket.key + ".jbc", marshal.dumps(code))

    def load_bytecode(self, bucket: Bucket) -> None:  # unused: get_bucket does the loading
        return None

    def dump_bytecode(self, bucket: Bucket) -> None:  # unused: set_bucket does the storing
        return None

    def _lookup(self, key: str) -> CodeType | None:
        """The code of `key`: in memory, from a compile worker (waiting for it), or on disk."""
        with self._lock:
            future = self._pending.get(key) if key not in self._code else None
        if future is not None:
            self._collect(future)
        return self._remembered(self._code, key, ".jbc", _unmarshal)

    def _remembered(self, memory: dict[str, _T], key: str, suffix: str,
                    decode: Callable[[bytes], _T | None]) -> _T | None:
        """`memory[key]`, else cache file `<key><suffix>` decoded (and kept in `memory`)."""
        with self._lock:
            found = memory.get(key)
        if found is not None:
            return found
        payload = self._get(key + suffix)
        found = decode(payload) if payload is not None else None
        if found is not None:
            with self._lock:
                memory[key] = found
        return found

    # -- packs: a batch's compiled templates in one file ------------------------------------

    def _get(self, name: str) -> bytes | None:
        """Cache file `name` (`<key><suffix>`): from a pack, or on its own."""
        if self.directory is None:
            return None
        payload = self._from_pack(name)
        if payload is None:
            payload = self.directory.load(name, "")
            if payload is None and self._packed is None:  # a run's first miss: read the packs
                self.load_packs()
                payload = self._from_pack(name)
        return payload

    def _put(self, name: str, payload: bytes) -> None:
        """Keep cache file `name`: now, or with its batch's others when the batch ends."""
        with self._lock:
            self._unsaved[name] = payload
            later = self._batches > 0
        if not later:
            self._save()

    def _from_pack(self, name: str) -> bytes | None:
        """An entry of the packs read, handed out once: its caller keeps it decoded, and the
        packs' bytes (megabytes for a big confdir) are not held for the daemon's life."""
        with self._lock:
            found = self._packed.pop(name, None) if self._packed is not None else None
            if found is None:
                return None
            self._used_packs.add(found[1])
        return found[0]

    def load_packs(self) -> None:
        """Read every pack in the directory (once): lookups then open no file."""
        if self._packed is not None or self.directory is None:
            return
        packed: dict[str, tuple[bytes, str]] = {}
        for name in self.directory.packs():
            payload = self.directory.load(name, "")
            try:
                entries = marshal.loads(payload) if payload is not None else None
            except (EOFError, ValueError, TypeError):
                entries = None
            if not isinstance(entries, dict):
                continue
            for key, code in entries.items():
                if isinstance(key, str) and isinstance(code, bytes):
                    packed.setdefault(key, (code, name))
        with self._lock:
            self._packed = packed

    def begin_batch(self) -> None:
        """Compiles from now on are written when the last batch begun ends (`end_batch`)."""
        with self._lock:
            self._batches += 1

    def end_batch(self) -> None:
        with self._lock:
            self._batches -= 1
            last = self._batches == 0
        if last:
            self._save()

    def _save(self) -> None:
        """Write the code compiled since the last save: one pack when it is many (PACK_MIN),
        else a file each; and mark the packs lookups used as recently used."""
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
            used, self._used_packs = self._used_packs, set()
        if self.directory is None:
            return
        if len(unsaved) >= PACK_MIN:
            name = "pack-" + hashlib.sha256("\0".join(sorted(unsaved)).encode()).hexdigest()
            self.directory.store_pack(name, marshal.dumps(unsaved), keep=used)
        else:
            for name, payload in unsaved.items():
                self.directory.store(name, payload, "")
        self.directory.touch(used)

    def _collect(self, future: Future[list[tuple[str, bytes]]]) -> None:
        """Wait for a worker's job and keep the code of each template it compiled."""
        try:
            done = future.result()
        except Exception as exc:  # noqa: BLE001 - a broken worker: compile here instead
            log.debug("a compile worker failed (%s); compiling here", exc)
            done = []
        with self._lock:
            for key, pending in list(self._pending.items()):
                if pending is future:
                    del self._pending[key]
            for name, pending in list(self._compiling.items()):
                if pending is future:
                    del self._compiling[name]
            for entry, payload in done:
                key, _, suffix = entry.rpartition(".")
                if suffix == "jbc":
                    code = _unmarshal(payload)
                    if code is not None:
                        self._code[key] = code
                elif suffix == "gtc":
                    self._go[key] = payload
                elif suffix == "syntax":
                    found = _syntax(payload)
                    if found is not None:
                        self._syntaxes[key] = found
                self._unsaved[entry] = payload
            later = self._batches > 0
        if not later:
            self._save()

    def close(self) -> None:
        """Cancel the compile jobs no worker has started (the daemon stops): the workers then
        exit after the jobs in hand instead of compiling a whole pass for nobody."""
        with self._lock:
            pending = list({id(f): f for f in self._pending.values()}.values())
            self._pending.clear()
            self._compiling.clear()
        for future in pending:
            future.cancel()

    # -- a pass's templates, compiled ahead -------------------------------------------------

    def has_code(self, environment: Environment, source: str) -> bool:
        """Whether compiled code for `source` is at hand (in memory, from a worker, on disk):
        then it compiles, and the syntax check of `auto` need not compile it again."""
        return self._lookup(self.key(environment, source)) is not None

    # -- the syntax `auto` found for a template -------------------------------------------

    def _syntax_key(self, environment: Environment, source: str,
                    names: Collection[str]) -> str:
        """The key of `auto`'s decision for `source`: it also depends on confd's function
        names (an unknown function fails Go's parser)."""
        if self._names is None or self._names[0] != id(names):
            self._names = (id(names), "\0".join(sorted(names)))
        return self.key(environment, "\0".join(("syntax", self._names[1], source)))

    def syntax(self, environment: Environment, source: str,
               names: Collection[str]) -> tuple[str, str] | None:
        """The syntax (and why) `auto` found for `source` before, in this run or an earlier
        one: deciding means parsing it as Go and compiling it as Jinja."""
        key = self._syntax_key(environment, source, names)
        return self._remembered(self._syntaxes, key, ".syntax", _syntax)

    def remember_syntax(self, environment: Environment, source: str, names: Collection[str],
                        syntax: str, reason: str) -> None:
        """Keep what `auto` decided for `source`."""
        key = self._syntax_key(environment, source, names)
        with self._lock:
            self._syntaxes[key] = (syntax, reason)
        self._put(key + ".syntax", f"{syntax}\n{reason}".encode())

    def _go_key(self, environment: Environment, source: str, names: Collection[str]) -> str:
        """The key of a compiled Go template: its source and confd's function names."""
        return self._syntax_key(environment, "go\0" + source, names)

    def go_template(self, environment: Environment, source: str,
                    names: Collection[str]) -> bytes | None:
        """A Go template `remember_go` kept for `source` (`GoTemplate.dumps`), or None."""
        key = self._go_key(environment, source, names)
        return self._remembered(self._go, key, ".gtc", bytes)

    def remember_go(self, environment: Environment, source: str, names: Collection[str],
                    payload: bytes) -> None:
        """Keep a compiled Go template (`GoTemplate.dumps`) for later runs."""
        key = self._go_key(environment, source, names)
        with self._lock:
            self._go[key] = payload
        self._put(key + ".gtc", payload)

    @staticmethod
    def loads_ahead(count: int) -> bool:
        """Whether a batch of `count` templates is loaded before it renders (PRELOAD_MIN)."""
        return count >= PRELOAD_MIN

    def remember(self, environment: Environment, source: str, code: CodeType) -> None:
        """Keep `code`, compiled from `source` elsewhere (the syntax check of `auto`)."""
        bucket = Bucket(environment, self.key(environment, source), "")
        bucket.code = code
        self.set_bucket(bucket)

    def compiling(self, name: str) -> bool:
        """Whether a worker process is compiling template `name`."""
        with self._lock:
            return name in self._compiling

    def wait_for(self, name: str) -> None:
        """Take what a worker found for template `name` (its syntax, its code), waiting for
        the worker if need be; nothing when no worker has it."""
        with self._lock:
            future = self._compiling.get(name)
        if future is not None:
            self._collect(future)

    def compile_ahead(self, environment: Environment, templates: Iterable[str],
                      factory: Callable[[], Preparer], names: Collection[str],
                      syntax: Callable[[str, str], str]) -> None:
        """Start worker processes on the `templates` (by name) neither in memory nor on disk,
        when there are enough of them to pay for the workers (and more than one core);
        `syntax(name, source)` is how each is read: jinja, go or auto (decided there).

        A worker runs `factory()` (pickled: a module-level callable), a renderer over the same
        templates with an in-memory cache, and `check`s each template there: the syntax
        `auto` decides, the compiled Jinja or Go template. `names` are confd's function names
        (they key Go templates). `wait_for` takes a template's results, `end_batch` writes
        them. A template that fails there is left out: this process does it again and reports
        the error.
        """
        templates = list(dict.fromkeys(templates))
        self.load_packs()
        if environment.loader is not None:
            self._start_workers(environment, templates, factory, names, syntax)

    def _start_workers(self, environment: Environment, templates: list[str],
                       factory: Callable[[], Preparer], names: Collection[str],
                       syntax: Callable[[str, str], str]) -> None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        if len(templates) < PARALLEL_COMPILE_MIN or cpus < 2 \
                or getattr(sys, "frozen", False):  # a frozen confd cannot spawn a python
            return
        # A sample first: when most templates are compiled already (a restart), looking at
        # every source and cache file would cost more than the few compiles left.
        sample = templates[:: max(1, len(templates) // SAMPLE)]
        if len(self._missing(environment, sample, names, syntax)) * 2 < len(sample):
            return
        missing = self._missing(environment, templates, names, syntax)
        if len(missing) < PARALLEL_COMPILE_MIN:
            return
        workers = min(cpus, -(-len(missing) // CHUNK))
        try:
            self._submit(missing, workers, factory)
        except Exception as exc:  # noqa: BLE001 - no processes here (frozen build, limits)
            log.debug("cannot start compile workers (%s); compiling here", exc)

    def _missing(self, environment: Environment, templates: list[str], names: Collection[str],
                 syntax_of: Callable[[str, str], str]) -> list[tuple[str, str, str]]:
        """(name, syntax, Jinja key) of each template whose compiled form (or, under `auto`,
        whose syntax) is neither in memory, being compiled, nor on disk."""
        assert environment.loader is not None
        missing = []
        for name in templates:
            try:
                source, _, _ = environment.loader.get_source(environment, name)
            except Exception:  # noqa: BLE001 - the render reports a missing or bad template
                continue
            syntax = syntax_of(name, source)
            key = self.key(environment, source)
            if syntax == "jinja":
                entry, memory = key + ".jbc", self._code
            elif syntax == "go":
                entry, memory = self._go_key(environment, source, names) + ".gtc", self._go
            else:
                entry, memory = self._syntax_key(environment, source, names) + ".syntax", \
                    self._syntaxes
            with self._lock:
                known = entry[: entry.rindex(".")] in memory or name in self._compiling \
                    or (self._packed is not None and entry in self._packed)
            if known or (self.directory is not None and self.directory.path(entry, "").exists()):
                continue
            missing.append((name, syntax, key))
        return missing

    def _submit(self, missing: list[tuple[str, str, str]], workers: int,
                factory: Callable[[], Preparer]) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(factory, self._fingerprint),
        )
        try:
            for start in range(0, len(missing), CHUNK):
                chunk = missing[start : start + CHUNK]
                future = executor.submit(_prepare, [(n, syntax) for n, syntax, _ in chunk])
                with self._lock:
                    for name, _, key in chunk:
                        self._pending[key] = future
                        self._compiling[name] = future
        finally:
            executor.shutdown(wait=False)  # workers exit once the jobs are done
        log.debug("compiling %d templates in %d worker processes", len(missing), workers)

    def take(self) -> list[tuple[str, bytes]]:
        """What was compiled since the last save, no longer to be saved (a worker's results:
        the daemon saves them)."""
        with self._lock:
            taken, self._unsaved = list(self._unsaved.items()), {}
        return taken


def _syntax(payload: bytes) -> tuple[str, str] | None:
    """A `.syntax` entry: (syntax, why), or None when it is not one."""
    name, _, reason = payload.decode("utf-8", "replace").partition("\n")
    return (name, reason) if name in ("go", "jinja") else None


def _unmarshal(payload: bytes) -> CodeType | None:
    try:
        code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


# -- the worker side ------------------------------------------------------------------------

_worker: Preparer | None = None


def _start_worker(factory: Callable[[], Preparer], fingerprint: bytes | None) -> None:
    """Build the worker's renderer; Ctrl-C and SIGHUP are the daemon's business."""
    import signal

    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    preparer = factory()
    if fingerprint is not None and environment_fingerprint(preparer.environment) != fingerprint:
        raise RuntimeError("the worker's template environment differs from confd's")
    _worker = preparer


def _prepare(items: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """`check` each (name, syntax) and return the cache entries that made (syntax decided,
    code compiled); a template that fails is left out (the daemon reports it)."""
    preparer = _worker
    assert preparer is not None and preparer.cache is not None
    preparer.cache.begin_batch()  # keep the entries in memory, to hand back
    for name, syntax in items:
        try:
            preparer.check(name, syntax)
        except Exception:  # noqa: BLE001 - reported where it is rendered
            continue
    return preparer.cache.take()
