"""Fuzzing the parser and checker: no input text may produce a Python traceback.

A few thousand inputs here; `benchmarks/fuzz_protocols.py` runs 100,000.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing
from fuzzing import FRAGMENTS, check_one, mutate

LIBRARY = Path(__file__).resolve().parent.parent / "library"
SOURCES = {p.name: p.read_text(encoding="utf-8") for p in sorted(LIBRARY.glob("*.pw"))}
# A fixed budget for the whole library, so the suite's time does not grow with
# every protocol added (benchmarks/fuzz_protocols.py runs as many as wanted).
MUTATIONS = max(2400 // max(len(SOURCES), 1), 60)
CUTS = max(600 // max(len(SOURCES), 1), 30)


@pytest.fixture(scope="module", autouse=True)
def _cached_imports():
    """The library files a fuzzed text imports are compiled once for this module."""
    plain = fuzzing.compile_text
    fuzzing.compile_text = fuzzing.compile_with_cached_imports(LIBRARY)
    yield
    fuzzing.compile_text = plain


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_random_mutations_of_library_files(name):
    rng = random.Random(f"pathways-fuzz-{name}")
    for _ in range(MUTATIONS):
        check_one(mutate(SOURCES[name], rng), LIBRARY)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_truncation_point_of_library_files(name):
    text = SOURCES[name]
    for cut in range(0, len(text), max(len(text) // CUTS, 1)):
        check_one(text[:cut], LIBRARY)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    check_one(text, LIBRARY)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS + ["protocol p:\n  version \"1\"\n", "age ", "x", "3 "]), max_size=40))
def test_token_soup(parts):
    check_one("".join(parts), LIBRARY)


@pytest.mark.parametrize("text", [
    "", "\n\n\n", "# only a comment\n", "\x00\x01\x02", "define x: " + "(" * 5000 + "1" + ")" * 5000,
    "define x: " + "not " * 5000 + "true", "define x: " + " and ".join(["true"] * 3000),
    "define x: " + "1" * 5000, 'define x: "unterminated', "protocol p:\n" + "  " * 500 + "version \"1\"\n",
    "define x: 1\n" * 2000, "\ufeffprotocol p:\n  version \"1\"\n", "define x:\n\tcount\n  conditions\n",
])
def test_hostile_inputs(text):
    check_one(text, LIBRARY)
