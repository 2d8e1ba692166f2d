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

    # Cython's defaults type some locals and arguments as C numbers: a local only ever a
    # number literal or a float becomes a C double, and a `float` annotation converts an int
    # (`-> float` made a sum of no items, 0, into 0.0). Both are kept for speed (annotations
    # off costs 4%), so the hot modules avoid the two shapes where the type would show
    # (record_index.plain_sum), and tests/test_compiled.py compares every traced node's value
    # and type between the compiled and the pure forms.
    extensions = cythonize([f"engine/{name}.py" for name in HOT], language_level=3, quiet=True)
    for extension in extensions:
        extension.optional = True  # a failed build leaves the pure Python module in use
except Exception:  # noqa: BLE001 - no Cython: pure Python
    extensions = []

setup(ext_modules=extensions)
