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
    # into a float, or a `-> float` function's 0 into 0.0). Cython's default inference of
    # local types is kept (it is much of the speed-up); it may make a local that is only
    # ever a number literal or a float a C double, so such a local starts as None
    # (record_index.plain_sum). tests/test_compiled.py compares the two forms node by node.
    extensions = cythonize([f"engine/{name}.py" for name in HOT], language_level=3, quiet=True,
                           compiler_directives={"annotation_typing": False})
    for extension in extensions:
        extension.optional = True  # a failed build leaves the pure Python module in use
except Exception:  # noqa: BLE001 - no Cython: pure Python
    extensions = []

setup(ext_modules=extensions)
