"""Readers: real data in, patient records out.

>>> from engine.readers import read_fhir
>>> records, report = read_fhir("data/bundles/")          # doctest: +SKIP
>>> print(report.summary())                               # doctest: +SKIP

``read_fhir`` reads FHIR R4 Bundles and Bulk Data NDJSON (see
:mod:`engine.readers.fhir`); a mapping file (:mod:`engine.readers.mapping`)
says what local codes mean; the :class:`LoadReport` accounts for every
resource read. ``docs/data.md`` documents the mapping and the report.
"""

from __future__ import annotations

from .fhir import read_fhir, read_fhir_json
from .mapping import Mapping, MappingError, load_mapping
from .report import LoadReport, Problem, ReadError

__all__ = ["LoadReport", "Mapping", "MappingError", "Problem", "ReadError", "load_mapping", "read_fhir", "read_fhir_json"]
