"""The protocols a service serves: compiled once, swapped atomically on reload.

:class:`Library` compiles every ``.pw`` file of a folder (and its
sub-folders) at start-up. :meth:`Library.reload` compiles the folder again
into a *new* snapshot; only if every protocol compiles does the new snapshot
replace the old one, in a single assignment. A request holds the snapshot it
started with, so it never sees half a reload. A broken protocol is refused:
the previous snapshot keeps serving and the refusal (with every diagnostic)
is returned and logged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..limits import Limits


class LibraryError(Exception):
    """The library does not compile; ``problems`` holds each rendered diagnostic."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Snapshot:
    """One compiled state of the library. Never changed after it is built."""

    generation: int
    programs: dict = field(default_factory=dict)  # protocol name -> engine.Program
    files: dict = field(default_factory=dict)  # protocol name -> file (relative to the library)
    populations: dict = field(default_factory=dict)  # name -> distributions by term (empty groups: unknown)
    references: dict = field(default_factory=dict)  # name -> the reference.Reference ranked against, if any
    unranked: dict = field(default_factory=dict)  # name -> empty distributions (other parameters)
    compiled: dict = field(default_factory=dict)  # (protocol, pathway) -> compiled entry condition (a cache)

    def population(self, name: str, parameters: dict) -> dict | None:
        """The distributions ``name``'s ranked terms use for a request with ``parameters``:
        the reference's when they are the ones it was made with, else empty (unknown)."""
        reference = self.references.get(name)
        same = reference is None or dict(parameters) == reference.parameters
        return (self.populations[name] if same else self.unranked[name]) or None

    def describe(self) -> list[dict]:
        """Name, version, sha256, file, outcomes and parameters of every protocol (GET /protocols)."""
        out = []
        for name in sorted(self.programs):
            protocol = self.programs[name].protocol
            out.append({
                "name": name, "version": protocol.header.version, "title": protocol.header.title,
                "status": protocol.header.status, "sha256": protocol.sha256, "file": self.files[name],
                "outcomes": list(self.programs[name].outcome_names),
                "parameters": _parameters(protocol),
                "reference": self.references[name].describe() if self.references.get(name) else None,
            })
        return out


def _parameters(protocol, prefix: str = "") -> list[dict]:
    from dsl.formatter import expr_to_text as expr_text

    out = []
    for decl in protocol.of_kind("parameter"):
        out.append({"name": prefix + decl.name, "label": decl.label, "default": expr_text(decl.default)})
    for use in protocol.uses:
        if use.protocol is not None:
            out.extend(_parameters(use.protocol, prefix + use.alias + "."))
    return out


def compile_library(folder: Path, limits: Limits, generation: int, references: tuple = ()) -> Snapshot:
    """Compile every protocol in ``folder``; raise LibraryError listing every problem."""
    from dsl.compiler import Session, compile_file
    from dsl.diagnostics import render

    from .. import EngineError, Program

    files = sorted(folder.rglob("*.pw"))
    if not files:
        raise LibraryError(f"{folder}: there are no protocol (.pw) files in this folder", [])
    session = Session(root=folder, max_file_bytes=limits.max_protocol_bytes, max_depth=limits.max_nesting_depth)
    programs, names, problems = {}, {}, []
    for path in files:
        shown = str(path.relative_to(folder))
        result = compile_file(path, session)
        errors = [d for d in result.diagnostics if d.severity == "error"]
        if result.protocol is None or errors:
            problems.extend(render(d, result.sources.get(d.file)) for d in errors)
            if not errors:
                problems.append(f"{shown}: does not compile")
            continue
        if not result.protocol.outcomes and all(d.kind == "test" for d in result.protocol.declarations):
            continue  # a companion file of tests (castlefields_tests.pw): checked, not served
        name = result.protocol.header.name
        if name in programs:
            problems.append(f"{shown}: the protocol name {name!r} is already used by {names[name]}")
            continue
        try:
            programs[name] = Program(result.protocol)
        except EngineError as exc:
            problems.append(f"{shown}: {exc}")
            continue
        names[name] = shown
    if problems:
        raise LibraryError(f"{folder}: {len(problems)} problem(s); nothing was changed", problems)
    from .logs import log
    from .reference import populations as ranked

    populations, used, unranked = {}, {}, {}
    for name, program in programs.items():
        populations[name], used[name], notes = ranked(program, list(references))
        unranked[name] = {t.id: {} for _, _, t in program.population_terms()}
        for note in notes:
            log("reference not used", 30, protocol=name, note=note)
    return Snapshot(generation, programs, names, populations, used, unranked)


class Library:
    """The served snapshot and the lock that keeps reloads one at a time.

    With several worker processes (``pathways serve --workers N``) each holds
    its own snapshot. ``signal_file`` joins them: a worker that reloads
    successfully touches it, and the others, noticing its new time stamp
    (checked at most twice a second, on a request), reload too.
    """

    def __init__(self, folder: str | Path, limits: Limits, signal_file: str | Path | None = None,
                 references: tuple = ()):
        self.folder = Path(folder).resolve()
        self.limits = limits
        self.references = tuple(references)  # reference.Reference, applied again on every reload
        self._reloading = threading.Lock()
        self.signal_file = Path(signal_file) if signal_file else None
        # the stamp before the folder is read: a reload asked for while this worker compiles
        # (a SIGHUP as it starts) is then noticed, not taken as already done
        self._seen = self._stamp()
        self.current = compile_library(self.folder, limits, 1, self.references)
        self._checked = time.monotonic()

    def reload(self, follow: bool = False) -> tuple[bool, Snapshot, list[str]]:
        """Compile the folder again. (True, new snapshot, []) if it replaced the old one;
        (False, the snapshot still served, problems) if it was refused."""
        with self._reloading:
            before = self._stamp()  # (as in __init__: a signal written while compiling is not lost)
            try:
                new = compile_library(self.folder, self.limits, self.current.generation + 1, self.references)
            except LibraryError as exc:
                return False, self.current, [str(exc), *exc.problems]
            self.current = new  # one assignment: requests see the old snapshot or the new, never a mix
            if self.signal_file is not None and not follow:
                self.signal_file.write_text(str(time.time_ns()))  # tell the other workers
                before = self._stamp()  # (its own signal: nothing to follow)
            self._seen = before
            return True, new, []

    def follow(self, on_reload) -> None:
        """Reload in the background if another worker has (see the class)."""
        if self.signal_file is None or time.monotonic() - self._checked < 0.5:
            return
        self._checked = time.monotonic()
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp

            def run():
                on_reload(*self.reload(follow=True))
            threading.Thread(target=run, name="follow-reload", daemon=True).start()

    def _stamp(self) -> int | None:
        try:
            return self.signal_file.stat().st_mtime_ns if self.signal_file else None
        except OSError:
            return None
