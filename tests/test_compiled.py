"""The evaluator's hot modules compiled with Cython (setup.py) and as pure Python
(engine/_compiled.py decides which runs): both give the same answers."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import _compiled

ROOT = Path(__file__).resolve().parent.parent


def test_setup_compiles_the_modules_the_engine_chooses_between():
    tree = ast.parse((ROOT / "setup.py").read_text())
    (hot,) = [ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HOT"]
    assert tuple(hot) == _compiled.HOT


def _package(tmp_path: Path, compiled: tuple[str, ...], newer: tuple[str, ...] = ()) -> Path:
    """A folder with the hot modules' sources and, for ``compiled``, a compiled file;
    the sources in ``newer`` are touched after their compiled file."""
    suffix = _compiled.importlib.machinery.EXTENSION_SUFFIXES[0]
    tmp_path.mkdir(exist_ok=True)
    for name in _compiled.HOT:
        (tmp_path / f"{name}.py").write_text("")
        os.utime(tmp_path / f"{name}.py", (1_000, 1_000))
    for name in compiled:
        (tmp_path / f"{name}{suffix}").write_bytes(b"")
        os.utime(tmp_path / f"{name}{suffix}", (2_000, 2_000))
    for name in newer:
        os.utime(tmp_path / f"{name}.py", (3_000, 3_000))
    return tmp_path


def test_the_compiled_modules_run_only_when_all_are_there_and_current(tmp_path):
    every = _compiled.HOT
    assert _compiled.pure_reason(_package(tmp_path / "all", every), {}) is None
    assert _compiled.pure_reason(_package(tmp_path / "none", ()), {}) == "not compiled"
    assert _compiled.pure_reason(_package(tmp_path / "some", every[:-1]), {}) == "evaluate not compiled"
    reason = _compiled.pure_reason(_package(tmp_path / "stale", every, newer=("values",)), {})
    assert reason.startswith("the compiled values is older than its source")
    asked = _package(tmp_path / "asked", every)
    assert _compiled.pure_reason(asked, {"PATHWAYS_PURE_PYTHON": "1"}) == "PATHWAYS_PURE_PYTHON is set"
    assert _compiled.pure_reason(asked, {"PATHWAYS_PURE_PYTHON": "0"}) is None


@pytest.mark.skipif(engine.EVALUATOR != "compiled", reason=f"the evaluator is {engine.EVALUATOR}")
def test_the_pure_modules_pass_the_conformance_cases_and_the_road_comparisons_too():
    # this run uses the compiled modules; the same cases in a process that asks for the pure ones
    env = {**os.environ, "PATHWAYS_PURE_PYTHON": "1"}
    code = ("import engine, engine.evaluate, sys, pytest; "
            "assert engine.EVALUATOR.startswith('pure'), engine.EVALUATOR; "
            "assert engine.evaluate.__file__.endswith('.py'), engine.evaluate.__file__; "
            "sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', "
            "'tests/test_conformance.py', 'tests/test_fast_roads.py']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout


_TRACES = """
import hashlib, random, sys
sys.path[:0] = ['tests']
import engine
from synthetic import generate
from test_fast_roads import blur

AS_OF = '2024-04-01'
records = generate(300, 99, AS_OF)
rng = random.Random(5)
records = [blur(r, rng, 0.4) if i % 2 else r for i, r in enumerate(records)]
digest = hashlib.sha256()
for name in ('castlefields', 'evercare', 'ltc_pyramid', 'efi'):
    program = engine.load(f'library/{name}.pw')
    population = program.distributions(records, AS_OF) if program.population_terms() else None
    for record in records:
        result = program.evaluate(record, AS_OF, explain=True, population=population)
        # repr, not ==: 0 and 0.0 are equal but are not the same value to a caller
        digest.update(repr(sorted((k, repr(v)) for k, v in result.trace.items())).encode())
        digest.update(repr(program.evaluate(record, AS_OF, population=population).outcomes).encode())
print(engine.EVALUATOR.split()[0], digest.hexdigest())
"""


@pytest.mark.skipif(engine.EVALUATOR != "compiled", reason=f"the evaluator is {engine.EVALUATOR}")
def test_the_compiled_and_pure_evaluators_give_the_same_values_node_for_node():
    """Every node's value in the trace, and every outcome, to the type (an empty sum is 0 in
    both, not 0.0 in one), over records with some dates blurred to the month or year."""
    runs = {}
    for pure in ("1", "0"):
        env = {**os.environ, "PATHWAYS_PURE_PYTHON": pure}
        done = subprocess.run([sys.executable, "-c", _TRACES], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        form, digest = done.stdout.split()
        runs[form] = digest
    assert set(runs) == {"pure", "compiled"}
    assert runs["pure"] == runs["compiled"]
