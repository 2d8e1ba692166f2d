"""Golden files: malformed protocols and the exact diagnostics `pathways check` prints.

Each case in ``tests/golden/diagnostics`` is ``NAME.pw`` (or, for cases that
need several files, a folder ``NAME/`` whose ``main.pw`` is checked) with the
expected text beside it in ``NAME.expected``. File names are shown relative
to the golden folder, so the text does not depend on the machine.

To write the ``.expected`` files after changing a message::

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_golden_diagnostics.py

then read every changed file as a clinical lead would before committing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsl.compiler import Session
from dsl.diagnostics import render

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "diagnostics"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
JSON_KEYS = {"file", "line", "column", "end_line", "end_column", "severity", "code", "message"}


def _cases() -> list[str]:
    """Case names: ``NAME`` for ``NAME.pw`` and for ``NAME/main.pw``."""
    single = [p.stem for p in GOLDEN.glob("*.pw")]
    multi = [p.parent.name for p in GOLDEN.glob("*/main.pw")]
    return sorted(single + multi)


CASES = _cases()


def _protocol(name: str) -> str:
    """The file checked for a case, relative to the golden folder."""
    return f"{name}/main.pw" if (GOLDEN / name).is_dir() else f"{name}.pw"


def _check(name: str):
    session = Session(root=GOLDEN)
    rel = _protocol(name)
    unit = session.compile_path(GOLDEN / rel, display=rel)
    assert unit is not None
    return session.result(unit)


def _rendered(result) -> str:
    return "\n\n".join(render(d, result.sources.get(d.file)) for d in result.diagnostics) + "\n"


def test_there_are_enough_cases():
    assert len(CASES) >= 40
    orphans = sorted(p.stem for p in GOLDEN.glob("*.expected") if p.stem not in CASES)
    assert orphans == [], f".expected files without a protocol: {orphans}"


@pytest.mark.parametrize("name", CASES)
def test_golden_diagnostics(name, monkeypatch):
    monkeypatch.chdir(GOLDEN)  # names of imported files are shown relative to the working folder
    result = _check(name)  # any exception escaping the compiler fails the case
    assert result.diagnostics, f"{name}: a malformed protocol gave no diagnostic"
    assert not (result.ok and result.protocol is None), f"{name}: no errors, yet nothing was compiled"
    text = _rendered(result)
    expected_file = GOLDEN / f"{name}.expected"
    if UPDATE:
        expected_file.write_text(text, encoding="utf-8")
        return
    assert expected_file.exists(), f"run UPDATE_GOLDEN=1 pytest {Path(__file__).name} to write {expected_file.name}"
    assert text == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_no_absolute_paths_in_messages(name, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    text = _rendered(_check(name))
    assert str(GOLDEN) not in text and str(ROOT) not in text


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=GOLDEN,
                          env=env)


@pytest.mark.parametrize("name, exit_code", [
    ("syntax_missing_colon", 1),
    ("syntax_binary_junk", 1),
    ("unknown_symbol_value", 1),
    ("type_age_bare_number", 1),
    ("import_cycle", 1),
    ("items_at_least_too_many", 0),
    ("levels_unreachable", 0),
    ("unused_definition", 0),
])
def test_cli_json(name, exit_code):
    out = _cli("check", "--format", "json", _protocol(name))
    assert "Traceback" not in out.stderr
    assert out.returncode == exit_code, (out.stdout, out.stderr)
    items = json.loads(out.stdout)
    assert items
    for item in items:
        assert JSON_KEYS <= item.keys()
        assert item["severity"] in ("error", "warning", "note")
        assert item["code"].startswith("PW")
        assert item["line"] >= 1 and item["column"] >= 1
    assert any(item["severity"] == "error" for item in items) == (exit_code == 1)


@pytest.mark.parametrize("name", ["syntax_upper_case_name", "unknown_definition", "pathway_when_cycle",
                                  "import_with_errors"])
def test_cli_text_matches_golden(name):
    """`pathways check FILE` prints the golden text, then its count line."""
    out = _cli("check", _protocol(name))
    expected = (GOLDEN / f"{name}.expected").read_text(encoding="utf-8")
    assert out.stdout.startswith(expected + "\n"), out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("checked 1 file: ")
