"""Optional compiled speed-ups: the evaluator's hot modules built with Cython.

The same Python source is compiled as it is (no Cython-only syntax), so the
compiled and the pure modules behave alike. If the build fails (no C
compiler, no Python headers) the package installs and runs as pure Python;
engine/_compiled.py decides at import which form runs.
"""

from setuptools import setup

#: engine/_compiled.py HOT (tests/test_compiled.py checks the two agree)
HOT = ["calendar", "values", "record_index", "fast_roads", "evaluate"]

try:
    from Cython.Build import cythonize

    # Python's semantics, not C's: annotations are for readers and type checkers
    # (annotation_typing=False: Cython would turn an `int` passed for a `float` argument
    # into a float), and an untyped local stays a Python object (infer_types=False: the
    # default inference made `total = 0; total += float(v)` a C double, so a sum of no
    # items was 0.0 compiled and 0 in Python). tests/test_compiled.py compares the forms.
    extensions = cythonize([f"engine/{name}.py" for name in HOT], language_level=3, quiet=True,
                           compiler_directives={"annotation_typing": False, "infer_types": False})
    for extension in extensions:
        extension.optional = True  # a failed build leaves the pure Python module in use
except Exception:  # noqa: BLE001 - no Cython: pure Python
    extensions = []

setup(ext_modules=extensions)
