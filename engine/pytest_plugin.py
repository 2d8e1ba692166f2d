"""A pytest plugin: the tests written in protocols (``.pw`` files) become pytest items.

Registered as a ``pytest11`` entry point, so installing the project enables
it: ``pytest library/`` (or the project's plain ``pytest``, whose testpaths
include ``library``) runs every ``test "...":`` block, one item per test,
with the same runner as ``pathways test`` (``engine.protocol_tests``).
Only pytest is imported at start-up; the engine loads when a ``.pw`` file
is collected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_HAS_TESTS = re.compile(r"^test\s", re.MULTILINE)


#: Folders of deliberately broken or partial protocols kept as inputs of the project's own tests.
TEST_DATA_FOLDERS = frozenset({"golden", "fixtures", "conformance"})


def pytest_collect_file(file_path: Path, parent):
    """Collect a ``.pw`` file that has at least one test block.

    Files inside test-data folders (:data:`TEST_DATA_FOLDERS`) are skipped
    unless named on the command line.
    """
    if file_path.suffix != ".pw":
        return None
    if TEST_DATA_FOLDERS.intersection(file_path.parts[:-1]) and not _named(file_path, parent.config):
        return None
    try:
        text = file_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None  # a file that cannot be read has no tests; `pathways check` reports it
    if not _HAS_TESTS.search(text):
        return None
    return ProtocolFile.from_parent(parent, path=file_path)


class ProtocolFile(pytest.File):
    """The tests of one protocol file."""

    def collect(self):
        from engine.protocol_tests import discover

        for case in discover([self.path]):
            yield ProtocolTestItem.from_parent(self, name=case.name, case=case)


class ProtocolTestFailed(Exception):
    """A protocol test whose expectations did not hold, or that could not run."""


class ProtocolTestItem(pytest.Item):
    """One ``test "...":`` block."""

    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from engine.protocol_tests import run_test

        outcome = run_test(self.case)
        if outcome.status == "error":
            raise ProtocolTestFailed(f"the test could not run:\n{outcome.message}")
        if outcome.status == "failed":
            lines = []
            for check in outcome.failures:
                lines.extend(check.lines())
            raise ProtocolTestFailed("\n".join(lines) + ("\n\nwhy:\n" + outcome.explanation
                                                         if outcome.explanation else ""))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ProtocolTestFailed):
            return f"{self.case.id}\n{excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"protocol test: {self.case.name}"


def _named(file_path: Path, config) -> bool:
    """Was this very file given on the command line?"""
    for arg in config.args:
        candidate = Path(str(arg).split("::")[0])
        if not candidate.is_absolute():
            candidate = Path(config.invocation_params.dir) / candidate
        if candidate.resolve() == file_path.resolve():
            return True
    return False
