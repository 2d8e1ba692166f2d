"""Synthetic patient records for the tests and the speed benchmark.

A thin wrapper around the project's generator, :mod:`engine.generate` (see
its docstring for what the population is and where its figures come from).
The one difference: the tests take an extract of patients aged **40 and
over** (``min_age=40``), as this fixture always did, so that the property
tests spend their examples on people the case-finding protocols are about
and the benchmark's records stay comparable with its earlier figures.

Everything comes from seeded :class:`random.Random` objects; nothing reads
the clock. Patient ``i`` depends only on ``(seed, i, as_of)``, so
``generate(10, s, d)`` is the first ten of ``generate(1000, s, d)``.

>>> a = generate(3, seed=7, as_of="2024-04-01")
>>> a == generate(3, seed=7, as_of="2024-04-01"), len(a), a[0].id
(True, 3, 'syn-7-000000')
>>> all(r.patient.birth_date.latest.year <= 1984 for r in a)
True
"""

from __future__ import annotations

import gc
from typing import Iterator

from engine import generate as _gen
from pathways.records import PatientRecord

#: the youngest age in the tests' extract
MIN_AGE = 40


def make_patient(seed: int, i: int, as_of) -> PatientRecord:
    """Patient ``i`` of the population ``seed`` on ``as_of``."""
    return _gen.make_patient(seed, i, as_of, min_age=MIN_AGE)


def iter_generate(n: int, seed: int, as_of) -> Iterator[PatientRecord]:
    """``n`` patients, one at a time (nothing is kept: memory stays flat)."""
    return _gen.generate(n, seed, as_of, min_age=MIN_AGE)


def generate(n: int, seed: int, as_of) -> list[PatientRecord]:
    """``n`` patients as a list.

    The cyclic garbage collector is paused while the list is built: records
    hold no cycles, and with it running, building 100,000 records (millions
    of objects that all survive) takes several times longer."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(iter_generate(n, seed, as_of))
    finally:
        if enabled:
            gc.enable()
