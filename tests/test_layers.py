"""The layers form one stack: pathways <- dsl <- engine <- tui, and textual
is imported only by the workbench, lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["pathways", "dsl", "engine", "tui"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_each_layer_imports_only_layers_below_it():
    problems = []
    for i, layer in enumerate(ORDER):
        forbidden = set(ORDER[i + 1:])
        for path in (ROOT / layer).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert problems == []


def test_no_layer_imports_the_library_folder():
    for layer in ORDER:
        for path in (ROOT / layer).rglob("*.py"):
            assert "library" not in _imports(path), path


WORKBENCH = ROOT / "tui" / "workbench"
#: The workbench modules the benchmarks and tests use without a terminal.
WORKBENCH_LOGIC = ("workbench_lang.py", "workbench_data.py", "workbench_diagram.py")


def test_only_the_workbench_imports_textual_at_module_level():
    for layer in ORDER:
        for path in (ROOT / layer).rglob("*.py"):
            if WORKBENCH in path.parents:
                continue  # the workbench package is the Textual application
            assert "textual" not in _imports(path), path


def test_the_workbench_logic_does_not_import_textual():
    for name in WORKBENCH_LOGIC:
        assert "textual" not in _imports(WORKBENCH / name), name


def test_command_line_and_engine_do_not_load_textual():
    code = ("import sys, tui.cli, dsl.compiler, engine; "
            "print('textual' in sys.modules or any(m.startswith('textual.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_no_eval_or_exec_in_the_library_code():
    for layer in ORDER[:3]:
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    assert node.func.id not in ("eval", "exec"), f"{path}:{node.lineno}"
