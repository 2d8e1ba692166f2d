"""Whether the evaluator's hot modules run compiled (Cython) or as pure Python.

``setup.py`` compiles these modules, from the same Python source and without
any Cython-only syntax, when the package is installed; about one and a half
times faster (docs/performance.md). They are used only when every one is
present and newer than its source: after an edit the package falls back on
the pure modules until it is installed again (``pip install -e .``), so a
stale build never runs. ``PATHWAYS_PURE_PYTHON=1`` asks for the pure modules
(to step through them in a debugger, or to compare).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

#: the modules setup.py compiles (in the order they import each other)
HOT = ("calendar", "values", "record_index", "fast_roads", "evaluate")

_HERE = Path(__file__).resolve().parent


class _PureSource(importlib.abc.MetaPathFinder):
    """Finds the hot modules' Python source before the import system finds their compiled form."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package == __package__ and name in HOT:
            return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")
        return None


def _compiled(here: Path, name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def pure_reason(here: Path = _HERE, environ=os.environ) -> str | None:
    """Why the pure modules must run (None: the compiled ones may).

    Every hot module must be compiled and newer than its source."""
    if environ.get("PATHWAYS_PURE_PYTHON", "") not in ("", "0"):
        return "PATHWAYS_PURE_PYTHON is set"
    built = {name: _compiled(here, name) for name in HOT}
    missing = [name for name, so in built.items() if so is None]
    if missing:
        return "not compiled" if len(missing) == len(HOT) else f"{', '.join(missing)} not compiled"
    stale = [name for name, so in built.items() if so.stat().st_mtime < (here / f"{name}.py").stat().st_mtime]
    if stale:
        return f"the compiled {', '.join(stale)} is older than its source: reinstall with `pip install -e .`"
    return None


def choose() -> str:
    """Install the pure-source finder unless the compiled modules may run; returns how the
    evaluator runs ("compiled", or "pure Python (why)")."""
    reason = pure_reason()
    if reason is None:
        return "compiled"
    if not any(isinstance(f, _PureSource) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureSource())
    return f"pure Python ({reason})"
