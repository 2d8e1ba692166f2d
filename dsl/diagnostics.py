"""Diagnostics as data, and their one rendering.

Every pass reports problems as :class:`Diagnostic` values and carries on.
:func:`render` prints them the way Rust and Elm do: ``file:line:col``, the
source line, carets under the span, secondary labels and a help line.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict

from pathways.model import NOWHERE, Span

Severity = Literal["error", "warning", "note"]


class Label(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    span: Span
    message: str
    file: str | None = None  # another file (an import), or the diagnostic's own


class Diagnostic(BaseModel):
    """One problem: a code, a severity, a message, where, and how to fix it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str
    severity: Severity
    message: str
    file: str = ""
    span: Span = NOWHERE
    labels: tuple[Label, ...] = ()
    help: str | None = None

    def to_json(self) -> dict:
        """The flat form of ``pathways check --format json``."""
        return {
            "file": self.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "help": self.help,
            "labels": [
                {"line": lb.span.line, "column": lb.span.column, "message": lb.message,
                 "file": lb.file or self.file}
                for lb in self.labels
            ],
        }


class Sink:
    """Collects the diagnostics of one file; passes write to it and carry on."""

    def __init__(self, file: str = ""):
        self.file = file
        self.items: list[Diagnostic] = []

    def add(self, code: str, severity: Severity, message: str, span: Span = NOWHERE,
            help: str | None = None, labels: Iterable[Label] = ()) -> None:
        self.items.append(Diagnostic(code=code, severity=severity, message=message,
                                     file=self.file, span=span, help=help, labels=tuple(labels)))

    def error(self, code: str, message: str, span: Span = NOWHERE, help: str | None = None,
              labels: Iterable[Label] = ()) -> None:
        self.add(code, "error", message, span, help, labels)

    def warning(self, code: str, message: str, span: Span = NOWHERE, help: str | None = None,
                labels: Iterable[Label] = ()) -> None:
        self.add(code, "warning", message, span, help, labels)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A help line naming the closest candidate, if one is close enough.

    >>> did_you_mean("minimun_age", ["minimum_age", "lookback"])
    'did you mean `minimum_age`?'
    >>> did_you_mean("zzz", ["minimum_age"]) is None
    True
    """
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None


def sort_key(d: Diagnostic) -> tuple:
    return (d.file, d.span.line, d.span.column, d.code)


def _visible(text: str) -> str:
    """The line as it can be printed: control characters become `\ufffd` (one column each)."""
    return "".join("\ufffd" if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def _snippet(lines: list[str], span: Span, marker: str, message: str, gutter: int) -> list[str]:
    out: list[str] = []
    if not 1 <= span.line <= len(lines):
        return out
    text = _visible(lines[span.line - 1].rstrip("\r\n").expandtabs(1))
    start = max(span.column, 1)
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(text) - start + 1, 1)
    num = str(span.line).rjust(gutter)
    out.append(f"{num} | {text}")
    caret = " " * (start - 1) + marker * max(width, 1)
    out.append(f"{' ' * gutter} | {caret} {message}".rstrip())
    return out


def render(diag: Diagnostic, source: str | None) -> str:
    """Render one diagnostic with its source line and carets.

    >>> from pathways.model import Span
    >>> d = Diagnostic(code="PW201", severity="error", message="unknown name `agee`",
    ...                file="x.pw", span=Span(line=1, column=8, end_line=1, end_column=12),
    ...                help="did you mean `age`?")
    >>> print(render(d, "define agee: 1"))
    error[PW201]: unknown name `agee`
     --> x.pw:1:8
      |
    1 | define agee: 1
      |        ^^^^
      = help: did you mean `age`?
    """
    lines = source.split("\n") if source else []  # lines as the parser counts them
    all_lines = [diag.span.line] + [lb.span.line for lb in diag.labels if not lb.file]
    gutter = len(str(max(all_lines)))
    out = [f"{diag.severity}[{diag.code}]: {diag.message}",
           f"{' ' * gutter}--> {diag.file or '<input>'}:{diag.span.line}:{diag.span.column}"]
    # snippets in the order of the file, as a reader scans it; notes on other files last
    here = [(diag.span, "^", "")] + [(lb.span, "-", lb.message) for lb in diag.labels
                                    if not lb.file or lb.file == diag.file]
    body = []
    for span, marker, message in sorted(here, key=lambda h: (h[0].line, h[0].column)):
        body.extend(_snippet(lines, span, marker, message, gutter))
    for lb in diag.labels:
        if lb.file and lb.file != diag.file:
            body.append(f"{' ' * gutter} = note: {lb.file}:{lb.span.line}:{lb.span.column}: {lb.message}")
    if body:
        out.append(f"{' ' * gutter} |")
        out.extend(body)
    if diag.help:
        out.append(f"{' ' * gutter} = help: {diag.help}")
    return "\n".join(out)
