"""The pipeline: parse -> resolve -> type check -> lint -> lower.

Each pass collects diagnostics and carries on. Files named by a protocol
(imports and CSV code lists) are read only through :class:`Session`, which
keeps them inside the folder of the protocol being compiled: a protocol is
data, and never reaches the rest of the disk or the network.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pathways import model as m

from . import lint, resolve, typecheck
from .diagnostics import Diagnostic, Label, Sink, sort_key
from .lower import lower
from .parser import parse
from .statements import StatementCache
from .unit import Unit

#: Protocol and code-list files larger than this are refused.
MAX_FILE_BYTES = 2_000_000

PASSES = (
    resolve.resolve_header,
    resolve.resolve_names,
    typecheck.typecheck,
    resolve.check_cycles,
    *lint.LINTS,
)


@dataclass
class Compiled:
    """The result of compiling one file: the model (None if it has errors),
    every diagnostic of it and of its imports, and the texts to render them."""

    file: str
    protocol: m.Protocol | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


class Session:
    """Compiles files, sharing imports between them and detecting import cycles."""

    def __init__(self, root: Path | None = None, *, max_file_bytes: int | None = None,
                 max_depth: int | None = None, statements: StatementCache | None = None):
        self.root = root.resolve() if root else None
        # Limits an embedding system may lower (engine.limits); None keeps the defaults.
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else MAX_FILE_BYTES
        self.max_depth = max_depth
        self.units: dict[Path, Unit] = {}
        self.lowered: dict[Path, m.Protocol | None] = {}
        self.in_progress: list[Path] = []
        # Statements parsed in this session, by their text: a re-check of an edited text parses
        # only the statements that changed. An editor passes one cache to the sessions of its re-checks.
        self.statements = statements if statements is not None else StatementCache()

    # --- reading files -----------------------------------------------------------
    def _read(self, path: Path, display: str, sink: Sink, span: m.Span | None = None) -> str | None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = "it does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            sink.error("PW600", f"cannot read {display}: {reason}", span or m.NOWHERE)
            return None
        if len(data) > self.max_file_bytes:
            sink.error("PW109", f"{display} is {len(data):,} bytes; the limit is {self.max_file_bytes:,}",
                       span or m.NOWHERE, help="split it into several protocols joined with `uses`")
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            line_start = data.rfind(b"\n", 0, exc.start) + 1
            column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
            where = m.Span(line=line, column=column, end_line=line, end_column=column + 1)
            sink.error("PW106", f"{display} is not UTF-8 text: line {line} has a character that cannot be read",
                       span or where, help="save the file with the UTF-8 encoding (most editors offer it under "
                                           "\"Save as\"); if it is not a protocol, remove it from the folder")
            return None

    def _locate(self, unit: Unit, relative: str, span: m.Span, suffix: str) -> Path | None:
        """The file a protocol names, if it is allowed to read it."""
        rel = PurePosixPath(relative.replace("\\", "/"))
        base = unit.path.parent if unit.path else Path.cwd()
        if not relative.strip():
            unit.sink.error("PW604", "the file name is empty", span,
                            help=f'write the name of a file in this folder, e.g. `"castlefields{suffix}"`')
            return None
        if rel.is_absolute() or ":" in relative:
            unit.sink.error("PW604", f'"{relative}" is a full path: write it from this file\'s folder', span,
                            help=f'put the file in this protocol\'s folder and write `"{rel.name}"`')
            return None
        if rel.suffix != suffix:
            what = "`uses` imports another protocol, a file whose name ends in `.pw`" if suffix == ".pw" \
                else "code lists are read from files whose names end in `.csv`"
            unit.sink.error("PW605", f'"{relative}" must name a `{suffix}` file', span, help=what)
            return None
        target = (base / Path(*rel.parts)).resolve()
        root = self.root or base.resolve()
        if root not in target.parents and target != root:
            unit.sink.error("PW606", f'"{relative}" is outside this protocol\'s folder', span,
                            help="protocols may only read files in their own folder and below it")
            return None
        return target

    # --- compiling ---------------------------------------------------------------
    def compile_text(self, source: str, file: str = "<input>", path: Path | None = None) -> Unit:
        """Run every pass over one text; imports are compiled through this session."""
        unit = Unit(file=file, source=source, sink=Sink(file), path=path)
        unit.collect(parse(source, unit.sink, self.statements))
        if self.max_depth is not None:
            _check_depth(unit, self.max_depth)
        resolve.resolve_imports(unit, self._import)
        resolve.resolve_value_sets(unit, self._read_codes)
        for run in PASSES:
            try:
                run(unit)
            except RecursionError:  # the parser's depth limit should make this unreachable
                unit.sink.error("PW108", "this protocol nests too deeply to check", m.NOWHERE,
                                help="split deep expressions into named definitions")
                break
        return unit

    def _import(self, unit: Unit, relative: str, span: m.Span) -> Unit | None:
        target = self._locate(unit, relative, span, ".pw")
        if target is None:
            return None
        if target in self.in_progress:
            chain = " → ".join(p.name for p in self.in_progress[self.in_progress.index(target):])
            unit.sink.error("PW601", f'importing "{relative}" makes a circle: {chain} → {target.name}', span,
                            help="protocols cannot import each other; move the shared part into its own file")
            return None
        imported = self.units.get(target)
        if imported is None:
            display = _import_display(unit.file, relative)
            if not target.is_file():
                unit.sink.error("PW600", f'cannot import "{relative}": there is no such file', span,
                                help=f"looked for {display}; check the name, and that the file is in this "
                                     "protocol's folder or below it")
                return None
            imported = self.compile_path(target, display=display)
        if imported is None:
            return None
        if imported.sink.has_errors:
            first = next(d for d in imported.sink.items if d.severity == "error")
            cause = Label(span=first.span, message=first.message, file=imported.file)
            if first.code == "PW602" and first.labels:
                cause = first.labels[0]  # the import's own import is where the mistake is
            unit.sink.error("PW602", f'the imported protocol "{relative}" has errors', span, labels=[cause],
                            help=f"run `pathways check {cause.file}` to see them")
            return None
        return imported

    def _read_codes(self, unit: Unit, relative: str, span: m.Span) -> str | None:
        """The text of a CSV code list, or None once the reason is reported."""
        target = self._locate(unit, relative, span, ".csv")
        if target is None:
            return None
        if not target.is_file():
            unit.sink.error("PW231", f'cannot read the code list "{relative}": there is no such file', span,
                            help=f"looked for {_import_display(unit.file, relative)}; check the name, and that "
                                 "the file is in this protocol's folder or below it")
            return None
        return self._read(target, relative, unit.sink, span)

    def compile_path(self, path: Path, display: str | None = None) -> Unit | None:
        path = path.resolve()
        if path in self.units:
            return self.units[path]
        sink = Sink(display or str(path))
        source = self._read(path, display or str(path), sink)
        if source is None:
            if display is None:
                return None
            unit = Unit(file=display, source=_readable(path), sink=sink, path=path)
            self.units[path] = unit
            return unit
        self.in_progress.append(path)
        try:
            unit = self.compile_text(source, display or _display(path), path)
        finally:
            self.in_progress.pop()
        self.units[path] = unit
        return unit

    def lower(self, unit: Unit) -> m.Protocol | None:
        """The model of a unit without errors (and of its imports), else None."""
        key = unit.path or Path(unit.file)
        if key in self.lowered:
            return self.lowered[key]
        result = None
        if not unit.sink.has_errors:
            imported = {alias: self.lower(u) for alias, u in unit.imports.items() if u is not None}
            result = lower(unit, {a: p for a, p in imported.items() if p is not None})
        self.lowered[key] = result
        return result

    def result(self, unit: Unit) -> Compiled:
        diags: dict[tuple, Diagnostic] = {}
        sources: dict[str, str] = {}
        stack, seen = [unit], set()
        while stack:
            u = stack.pop()
            if id(u) in seen:
                continue
            seen.add(id(u))
            sources[u.file] = u.source
            for d in u.sink.items:
                diags.setdefault((d.file, d.span.line, d.span.column, d.code, d.message), d)
            stack.extend(i for i in u.imports.values() if i is not None)
        return Compiled(unit.file, self.lower(unit), sorted(diags.values(), key=sort_key), sources)


def _check_depth(unit: Unit, limit: int) -> None:
    """The configured nesting limit (the parser always applies its own, larger one)."""
    from pathways.walk import depth

    for decl in unit.order:
        found = depth(decl)
        if found > limit:
            unit.sink.error("PW108", f"`{decl.name}` nests {found} levels deep; the limit is {limit}", decl.span,
                            help="split it into named definitions and combine those")


def _readable(path: Path) -> str:
    """The text of a file that is not UTF-8, as well as it can be shown (to point at the bad line)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return ""
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def _import_display(importer: str, relative: str) -> str:
    """How an imported file is named in diagnostics: from the importing file's name,
    so the names do not depend on the working folder."""
    parent = PurePosixPath(importer.replace("\\", "/")).parent if importer and not importer.startswith("<") \
        else PurePosixPath(".")
    return posixpath.normpath(str(parent / relative.replace("\\", "/")))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def compile_file(path: str | Path, session: Session | None = None) -> Compiled:
    """Compile a protocol file and everything it imports."""
    session = session or Session()
    p = Path(path)
    unit = session.compile_path(p, display=str(path))
    return session.result(unit)


def compile_text(source: str, file: str = "<input>", base_dir: str | Path | None = None, *,
                 max_file_bytes: int | None = None, max_depth: int | None = None) -> Compiled:
    """Compile protocol text held in memory; imports are read from ``base_dir``."""
    base = Path(base_dir) if base_dir else Path.cwd()
    session = Session(root=base, max_file_bytes=max_file_bytes, max_depth=max_depth)
    unit = session.compile_text(source, file, base / "__text__.pw")
    return session.result(unit)


def protocol_files(paths: list[str | Path]) -> list[Path]:
    """The ``.pw`` files named, or found (recursively, sorted) in the folders named."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.rglob("*.pw")))
        else:
            out.append(p)
    return out
