"""A run over a tree, at scale: discovery, cache, screening, isolated workers, results in order.

This is what ``scan``, ``diff`` and ``fix`` iterate. The main process streams the files
discovery finds and, for each one, reads it, hashes it and:

1. skips it if it is marked ``@generated`` (unless asked not to), or if an interrupted
   ``fix`` with the same arguments already finished it (:mod:`checkpointify.engine.journal`);
2. takes its result from the cache when the content is unchanged
   (:mod:`checkpointify.engine.cache`); ``fix``/``diff`` recompute files with a fix to apply;
3. decides it on the spot when it does not decode or cannot hold a finding
   (:func:`checkpointify.prefilter.text_stage`, a few microseconds per file);
4. otherwise hands it to a worker process (:mod:`checkpointify.engine.pool`), which runs
   :func:`checkpointify.rewrite.verify.process_source`: the ``ast`` stage, then LibCST and the
   matcher on what remains. A worker that crashes or exceeds the time limit costs that
   file an error result, nothing more.

Results come out in discovery order whatever the number of workers, as soon as every
earlier file is done, with at most :data:`WINDOW` files in the workers (each holds its
bytes) and :data:`BACKLOG` results waiting for an earlier file; nothing else is kept, so
memory does not grow with the tree. The two bounds differ because a large file that takes
a worker many seconds must not stop the main process from feeding the other workers. The main process never imports LibCST: a run
whose files all come from the cache parses nothing and starts no worker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

from checkpointify import notebook, prefilter
from checkpointify.engine.cache import Cache, cacheable, digest, namespace
from checkpointify.engine.discovery import Candidate, Selection, discover
from checkpointify.engine.journal import Journal
from checkpointify.engine.pool import Failure, IsolatedPool, forks
from checkpointify.engine.progress import Progress
from checkpointify.engine.projects import ProjectOptions, options_digest
from checkpointify.fileio import SourceError, check_encoding, read_source
from checkpointify.types import FileResult, Options, applicable

#: seconds a file may take before its worker is killed and the file reported
DEFAULT_TIMEOUT = 60.0
#: a file larger than this (bytes) is reported and not analysed: LibCST needs about 170 times
#: a file's size in memory (a 4 MB file of loops: 0.7 GB and rising), see the README
DEFAULT_MAX_FILE_SIZE = 5 * 1024 * 1024
#: the address space a worker may use (bytes, RLIMIT_AS): a file that needs more fails alone
DEFAULT_MAX_MEMORY = 4 * 1024 * 1024 * 1024
#: files handed to the workers and not answered yet: each holds its bytes (bounds memory)
WINDOW = 1024
#: files between the oldest unfinished one and the newest started. Most are decided in the
#: main process (a small result each, about 0.5 kB with its content hash), so this is much
#: larger than WINDOW: with one file as the bound (pandas' pytables.py takes a worker 5 s),
#: the other workers starved as soon as this many files had been read behind it
BACKLOG = 16384
#: a file marked generated has this in its first GENERATED_HEAD bytes
GENERATED_MARKER = b"@generated"
GENERATED_HEAD = 2048

#: (path as shown, bytes, options, rewrite, staged)
Task = Tuple[str, bytes, Options, bool, bool]


@dataclass(frozen=True)
class Settings:
    """How a run goes, besides what each file's analysis needs (that is :class:`Options`).

    ``cache_dir`` None means no cache. ``staged`` False runs LibCST on every file that
    contains ``for``/``while`` (the reference path the staged one is tested against).
    """

    jobs: int = 1
    timeout: Optional[float] = DEFAULT_TIMEOUT
    cache_dir: Optional[Path] = None
    selection: Selection = Selection()
    staged: bool = True
    include_generated: bool = False
    max_file_size: Optional[int] = DEFAULT_MAX_FILE_SIZE
    max_memory: Optional[int] = DEFAULT_MAX_MEMORY


@dataclass
class Stats:
    """What a run did, for the summary and the benchmark."""

    files: int = 0
    cached: int = 0
    screened: int = 0
    analysed: int = 0
    generated: int = 0
    resumed: int = 0
    cache_warning: Optional[str] = None
    #: paths discovery yielded (files, and paths reported without being read); 0: no Python file at all
    candidates: int = 0


def analysed_size(source: bytes, path: str) -> int:
    """The bytes the worker parses, which ``--max-file-size`` bounds: a notebook's code
    cells, not its outputs (images and tables make a small notebook weigh megabytes)."""
    if notebook.is_notebook(path):
        try:
            return len(notebook.read(source).source)
        except SourceError:
            return 0  # not a readable notebook: the analysis reports why
    return len(source)


def size_error(source: bytes, path: str, limit: Optional[int]) -> Optional[FileResult]:
    """The error of a file over ``--max-file-size`` (None: within it, or no limit)."""
    if limit is None:
        return None
    size = analysed_size(source, path)
    return FileResult(path, error=too_large(size, limit)) if size > limit else None


def too_large(size: int, limit: int) -> str:
    return (
        "not analysed: %s is larger than the limit of %s (raise it with --max-file-size or max-file-size)"
        % (
            human_bytes(size),
            human_bytes(limit),
        )
    )


def human_bytes(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return "%.1f %s" % (size / scale, unit)
    return "%d bytes" % size


def generated(source: bytes) -> bool:
    """Marked ``@generated`` in its header (the first 2 KB): see docs/large-trees.md."""
    return GENERATED_MARKER in source[:GENERATED_HEAD]


def analyse(task: Task) -> FileResult:
    """A worker's job: one file through the staged path (or the full one). Every task has
    passed :func:`screen` already, so the text stage is not run again."""
    from checkpointify.rewrite.verify import process_source

    path, source, options, rewrite, staged = task
    result = process_source(source, path, options, rewrite, staged=staged, text_kept=True)
    return result if result.changed else replace(result, source=None, new_source=None)


def failure_result(path: str, failure: Failure, timeout: Optional[float]) -> FileResult:
    """A file whose worker crashed, hung or raised: an error for that file only."""
    if failure.kind == "timeout":
        return FileResult(
            path,
            error="not analysed: it took longer than %g s (raise the limit with --timeout)" % (timeout or 0),
        )
    if failure.kind == "crashed":
        return FileResult(
            path,
            error="internal error: the analysis crashed (worker process %s); LibCST cannot handle "
            "this file, probably because of very deeply nested code or a size beyond the worker's "
            "memory limit (--max-memory)" % failure.detail,
            internal=True,
        )
    return FileResult(path, error="internal error: the worker failed", internal=True, detail=failure.detail)


class _Run:
    def __init__(
        self,
        options: Options,
        rewrite: bool,
        settings: Settings,
        journal: Optional[Journal],
        progress: Progress,
        stats: Stats,
        projects: Optional[ProjectOptions] = None,
    ) -> None:
        self.options = options
        self.projects = projects
        #: per-file Options that are not the base's: one cache namespace each
        self.caches: Dict[str, Cache] = {}
        self.rewrite = rewrite
        self.settings = settings
        self.journal = journal
        self.progress = progress
        self.stats = stats
        self.cache: Optional[Cache] = None
        if settings.cache_dir is not None:
            self.cache = Cache(settings.cache_dir, namespace(options, settings.staged), self._cache_warning)
        self.pool: Optional[IsolatedPool[Task, FileResult]] = None
        #: sequence number -> result (None: nothing to report) or the content hash of a task
        self.done: Dict[int, Optional[FileResult]] = {}
        self.contents: Dict[int, str] = {}
        self.file_caches: Dict[int, Cache] = {}  # sequence number -> the cache its result goes to

    def _cache_warning(self, message: str) -> None:
        self.stats.cache_warning = message

    def _options_of(
        self, candidate: Candidate
    ) -> Union[Tuple[Options, Optional[Cache], str], FileResult, None]:
        """The file's Options (its nearest configuration's: :mod:`.projects`), its cache and
        the key its journal record carries; or its result when its configuration decides
        it (an invalid nested pyproject.toml: an error; its exclude: nothing to report)."""
        if self.projects is None:
            return self.options, self.cache, ""
        resolved = self.projects.for_file(candidate.path)
        if isinstance(resolved, str):
            return FileResult(candidate.display, error=resolved)
        options, is_base = resolved
        if is_base:
            return self.options, self.cache, ""
        if self.projects.excluded(candidate.path, options):
            return None
        ns = namespace(options, self.settings.staged)
        cache = self.caches.get(ns)
        if cache is None and self.settings.cache_dir is not None:
            cache = self.caches[ns] = Cache(self.settings.cache_dir, ns, self._cache_warning)
        return options, cache, "+" + options_digest(options)

    def prepare(self, seq: int, candidate: Candidate) -> Optional[Task]:
        """Decide ``candidate`` here if possible (then ``done[seq]`` is set), else its task."""
        path = candidate.display
        if candidate.error is not None:
            self.done[seq] = FileResult(path, error=candidate.error)
            return None
        resolved = self._options_of(candidate)
        if not isinstance(resolved, tuple):
            self.done[seq] = resolved
            return None
        options, cache, variant = resolved
        try:
            source = read_source(candidate.path)
        except SourceError as exc:
            self.done[seq] = FileResult(path, error=str(exc))
            return None
        oversized = size_error(source, path, self.settings.max_file_size)
        if oversized is not None:
            self.done[seq] = oversized
            return None
        if not self.settings.include_generated and generated(source):
            self.stats.generated += 1
            self.done[seq] = None
            return None
        content = digest(source)
        # a file under a nested configuration: its record in the journal names that
        # configuration too (edited between the runs, the file is done again)
        self.contents[seq] = content + variant
        if self.journal is not None and self.journal.is_done(path, content + variant):
            self.stats.resumed += 1
            self.done[seq] = None
            return None
        if cache is not None:
            self.file_caches[seq] = cache
            entry = cache.get(path, content)
            if entry is not None:
                error, findings = entry
                if not self.rewrite or not any(applicable(f, options) for f in findings):
                    self.stats.cached += 1
                    self.done[seq] = FileResult(path, findings=findings, error=error)
                    return None
        quick = screen(source, path, options, self.settings.staged)
        if quick is not None:
            self.stats.screened += 1
            self.finish(seq, quick)
            return None
        self.stats.analysed += 1
        return (path, source, options, self.rewrite, self.settings.staged)

    def finish(self, seq: int, result: FileResult) -> None:
        cache = self.file_caches.pop(seq, None)
        if cache is not None and seq in self.contents and cacheable(result, self.rewrite):
            cache.put(result.path, self.contents[seq].partition("+")[0], result)
        self.done[seq] = result

    def submit(self, seq: int, task: Task) -> None:
        if self.pool is None:
            if forks():
                # loaded once here, inherited by every worker (and by any replacement)
                # instead of imported by each: only a run with something to analyse pays
                import checkpointify.rewrite.verify  # noqa: F401
            self.pool = IsolatedPool(
                analyse, self.settings.jobs, self.settings.timeout, self.settings.max_memory
            )
        self.pool.submit(seq, task, len(task[1]) + 4096)

    def in_flight(self) -> int:
        """Files handed to the workers and not answered yet."""
        return self.pool.busy if self.pool is not None else 0

    def collect(self, timeout: Optional[float], paths: Dict[int, str]) -> None:
        if self.pool is None or not self.pool.busy:
            return
        for seq, outcome in self.pool.poll(timeout):
            if isinstance(outcome, Failure):
                outcome = failure_result(paths[seq], outcome, self.settings.timeout)
            self.finish(seq, outcome)

    def emit(self, seq: int) -> Optional[FileResult]:
        """The result of file ``seq`` (None: nothing to report), recorded in the journal."""
        result = self.done.pop(seq)
        content = self.contents.pop(seq, None)
        self.progress.advance(len(result.findings) if result is not None else 0)
        if result is None:
            return None
        self.stats.files += 1
        if self.journal is not None and content is not None and result.error is None and not result.changed:
            self.journal.record(result.path, content)  # nothing to write: finished
        return result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.cache is not None:
            self.cache.close()
        for cache in self.caches.values():
            cache.close()
        self.progress.close()


def screen(source: bytes, path: str, options: Options, staged: bool) -> Optional[FileResult]:
    """The result of a file decided without parsing it, or None when it must be analysed.

    The decoding check comes first: a file that does not decode is reported even when it
    could not hold a finding. A notebook is screened on the module of its code cells (not
    valid JSON or not nbformat 4: reported here); its schema is checked in the worker.
    """
    try:
        encoding = check_encoding(source)
        if notebook.is_notebook(path):  # screened on the module of its code cells
            source, encoding = notebook.read(source).source, "utf-8"
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    if staged:
        return None if prefilter.text_stage(source, encoding, options.extra_sinks) else FileResult(path)
    return None if prefilter.has_loop_keyword(source) else FileResult(path)


def run(
    paths: Sequence[str],
    options: Options,
    rewrite: bool,
    settings: Settings,
    journal: Optional[Journal] = None,
    progress: Optional[Progress] = None,
    stats: Optional[Stats] = None,
    projects: Optional[ProjectOptions] = None,
) -> Iterator[FileResult]:
    """Every discovered file's result, in discovery order; see the module doc.

    With a ``journal`` (``fix``), files an interrupted run finished are skipped, and every
    file found to need no change is recorded as finished; the caller records the files it
    rewrites. ``stats`` is filled in as the run goes.
    """
    state = _Run(options, rewrite, settings, journal, progress or Progress(False), stats or Stats(), projects)
    candidates = discover(paths, settings.selection)
    shown: Dict[int, str] = {}
    started = emitted = 0
    exhausted = False
    try:
        while True:
            while not exhausted and started - emitted < BACKLOG and state.in_flight() < WINDOW:
                candidate = next(candidates, None)
                if candidate is None:
                    exhausted = True
                    state.stats.candidates = started
                    state.progress.discovered(started)
                    break
                task = state.prepare(started, candidate)
                if task is not None:
                    shown[started] = candidate.display
                    state.submit(started, task)
                started += 1
                state.collect(0, shown)  # keep the workers fed and their pipes empty
                if emitted in state.done:
                    break  # hand out what is ready before reading more
            while emitted in state.done:
                shown.pop(emitted, None)
                result = state.emit(emitted)
                emitted += 1
                if result is not None:
                    yield result
            if exhausted and emitted == started:
                return
            if started - emitted >= BACKLOG or state.in_flight() >= WINDOW or exhausted:
                state.collect(0.1, shown)
                state.progress.tick()
    finally:
        state.close()


def run_source(source: bytes, name: str, options: Options, rewrite: bool, settings: Settings) -> FileResult:
    """One file given as bytes (stdin), analysed in a worker like any other; never cached."""
    quick = screen(source, name, options, settings.staged)
    if quick is not None:
        return quick
    oversized = size_error(source, name, settings.max_file_size)
    if oversized is not None:
        return oversized
    task: Task = (name, source, options, rewrite, settings.staged)
    with IsolatedPool(analyse, 1, settings.timeout, settings.max_memory) as pool:
        pool.submit(0, task)
        while True:
            for _, outcome in pool.poll(1.0):
                if isinstance(outcome, Failure):
                    return failure_result(name, outcome, settings.timeout)
                return outcome
