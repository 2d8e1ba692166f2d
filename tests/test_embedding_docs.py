"""The examples in docs/embedding.md run, and print what the page says they print.

Every fenced ``python`` block of the page is a doctest. The blocks run in
order in one namespace (later examples use names defined earlier), from the
repository root, with ELLIPSIS (``...`` in expected output matches anything)
and NORMALIZE_WHITESPACE.
"""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "embedding.md"
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks() -> list[tuple[int, str]]:
    text = DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in _BLOCK.finditer(text)]


def test_the_page_has_examples_and_every_one_is_a_doctest():
    found = blocks()
    assert len(found) >= 10
    for line, body in found:
        assert body.lstrip().startswith(">>>"), f"docs/embedding.md:{line}: a python block that is not a doctest"


def test_examples_run_as_written(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    namespace: dict = {}
    failures = []
    for line, body in blocks():
        test = parser.get_doctest(body, namespace, f"embedding.md:{line}", str(DOC), line)
        out: list[str] = []
        result = runner.run(test, out=out.append, clear_globs=False)
        namespace = test.globs  # a DocTest works on a copy: carry its names on to the next block
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)
    assert os.getcwd() == str(ROOT)
