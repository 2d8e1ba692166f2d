"""The formatter: canonical layout, and the three properties every run must keep
(idempotent, same model, same comments) on the library, golden files and
generated protocols."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.diagnostics import Sink
from dsl.formatter import expr_to_text, format_source
from dsl.build import Outcomes
from dsl.parser import parse, scan_comments

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "library").glob("*.pw"))
GOLDEN = sorted((ROOT / "tests" / "golden" / "format").glob("*.in.pw"))


# --- helpers --------------------------------------------------------------------


def _drop_spans(value):
    if isinstance(value, dict):
        return {k: _drop_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [_drop_spans(v) for v in value]
    return value


def model(source: str) -> list:
    """The parsed statements with every span removed."""
    sink = Sink("t.pw")
    syntax = parse(source, sink)
    assert not sink.has_errors, [d.message for d in sink.items]
    out = []
    for statement in syntax.statements:
        node = statement.node
        if isinstance(node, Outcomes):
            out.append({"outcomes": [name for name, _ in node.names]})
        else:
            out.append(_drop_spans(node.model_dump(mode="json")))
    return out


def comments(source: str) -> Counter:
    return Counter(c.text for c in scan_comments(source))


def fmt(source: str) -> str:
    text, diagnostics = format_source(source, "t.pw")
    assert text is not None, [(d.code, d.message, d.span.line) for d in diagnostics]
    return text


def check_properties(source: str) -> str:
    """Format ``source`` and assert the formatter's three properties."""
    once = fmt(source)
    assert fmt(once) == once, "not idempotent"
    assert model(once) == model(source), "the model changed"
    assert comments(once) == comments(source), "a comment was lost or changed"
    assert once.endswith("\n") and not once.endswith("\n\n")
    assert all(line == line.rstrip() for line in once.split("\n")), "trailing whitespace"
    return once


def expr_of(source_expr: str):
    syntax = parse(f"define x: {source_expr}\n", Sink())
    return syntax.statements[0].node.expr


# --- the library and golden files -----------------------------------------------


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_library_properties(path):
    check_properties(path.read_text(encoding="utf-8"))


def test_golden_files_exist():
    assert len(GOLDEN) >= 4


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name.removesuffix(".in.pw"))
def test_golden(path):
    expected = path.with_name(path.name.replace(".in.pw", ".out.pw")).read_text(encoding="utf-8")
    source = path.read_text(encoding="utf-8")
    assert check_properties(source) == expected
    assert fmt(expected) == expected


# --- syntax errors ----------------------------------------------------------------


@pytest.mark.parametrize("source", [
    "define x: a >=\n",
    "define ok: 1\ndefine x: (a and b\n",
    'define x "unclosed: 1\n',
    "protocol p:\n  colour red\n",
    "define x: 1\n  define y: 2\n define z: 3\n",
])
def test_syntax_error_is_not_rewritten(source):
    text, diagnostics = format_source(source, "bad.pw")
    assert text is None
    assert any(d.severity == "error" for d in diagnostics)
    assert all(d.file == "bad.pw" for d in diagnostics)


def test_indented_text_before_the_first_statement_is_refused():
    # No statement starts before column 1; the parser reports the line, so nothing is deleted.
    text, diagnostics = format_source("  define x: 1\ndefine y: 2\n")
    assert text is None
    assert [d.code for d in diagnostics] == ["PW107"]


def test_empty_and_comment_only_files():
    assert fmt("") == ""
    assert fmt("\n\n") == ""
    assert fmt("\n# a\n\n\n# b   \n\n") == "# a\n\n# b\n"


# --- expressions --------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("a >= 3", "a at least 3"),
    ("a > 3 and b < 2 or c <= 1 and d != 0", "a more than 3 and b less than 2 or c at most 1 and d is not 0"),
    ("a = b", "a is b"),
    ("a fewer than 2", "a less than 2"),
    ("((a and b)) or (c)", "a and b or c"),
    ("a and (b or c)", "a and (b or c)"),
    ("a and (b and c)", "a and (b and c)"),
    ("(a or b) or c", "a or b or c"),
    ("not (a and b)", "not (a and b)"),
    ("not a and b", "not a and b"),
    ("(not a) >= 1", "(not a) at least 1"),
    ("(a > 1) = true", "(a more than 1) is true"),
    ("a - (b - c) - d", "a - (b - c) - d"),
    ("a / (b * c)", "a / (b * c)"),
    ("(a + b) * -c", "(a + b) * -c"),
    ("- (a + b)", "-(a + b)"),
    ("a - - b", "a - -b"),
    ("count (a + b)", "count (a + b)"),
    ("count (count x)", "count (count x)"),
    ("total stay of admissions within 1 years", "total stay of admissions within 1 year"),
    ("latest value of tests where code in vs.hba1c", "latest value of tests where code in vs.hba1c"),
    ("x where s is (a + 1)", "x where s is (a + 1)"),
    ("x where s >= (-1)", "x where s at least (-1)"),
    ("x where not (s is a or t is b) and u is c", "x where not (s is a or t is b) and u is c"),
    ("x where (s is a and t is b) or u is c", "x where s is a and t is b or u is c"),
    ("x where s is a or (t is b or u is c)", "x where s is a or (t is b or u is c)"),
    ("x in the last (a + 1)", "x in the last (a + 1)"),
    ("x between 2020-01 and 2021 before 2 months ago", "x between 2020-01 and 2021 before 2 months ago"),
    ("a in the last £100", "a in the last £100"),
    ("percentile of a + b in practice", "percentile of a + b in practice"),
    ("count x is in the top 3% of practice", "count x is in the top 3% of practice"),
    ("items met in other.crit", "items met in other.crit"),
    ('"say \\"hi\\" \\\\ bye"', '"say \\"hi\\" \\\\ bye"'),
    ("0.10 + 12 GBP + 1 day", "0.10 + £12 + 1 day"),
    ("average count per 2 GBP of x", "average count per 2 GBP of x"),
    ("3 GBP ago", "3 GBP ago"),
])
def test_expr_to_text(source, expected):
    expr = expr_of(source)
    assert expr_to_text(expr) == expected
    assert model(f"define x: {expected}\n") == model(f"define x: {source}\n")


@pytest.mark.parametrize("source, expected", [
    # `and`/`or` right after a filter test would continue the filter.
    ("(count c where s is a) and b", "(count c where s is a) and b"),
    ("(x is count c where s is a) or b", "(x is count c where s is a) or b"),
    ("a and (x where s is b) and c", "a and (x where s is b) and c"),
    ("(not any c where s is a) and b", "(not any c where s is a) and b"),
    ("a and count c where s is b", "a and count c where s is b"),
    ("count c where s is a at least 4 and b", "count c where s is a at least 4 and b"),
    ("count c where s is a in the last 1 years and b", "count c where s is a in the last 1 year and b"),
    ("(count c where s is a) + 1 > 2", "count c where s is a + 1 more than 2"),
    ("((a and count c where s is b) or d) and e", "(a and (count c where s is b) or d) and e"),
])
def test_filters_are_closed_before_and_or(source, expected):
    assert expr_to_text(expr_of(source)) == expected
    assert model(f"define x: {expected}\n") == model(f"define x: {source}\n")


def test_expr_to_text_of_an_item_list_quotes_the_block():
    node = parse('define x:\n  any of:\n    "a": b > 1\n    c\n', Sink()).statements[0].node
    assert expr_to_text(node.expr) == 'any of:\n  "a": b more than 1\n  c'


# --- layout -------------------------------------------------------------------------


def test_definition_fits_in_100_columns_or_breaks():
    short = "define x: " + " + ".join(["abc"] * 10)
    assert fmt(short + "\n") == short + "\n"
    long = "define x: " + " + ".join(["abcdefgh"] * 10)
    assert len(long) > 100
    assert fmt(long + "\n") == "define x:\n  " + long.removeprefix("define x: ") + "\n"
    exactly = "define x: " + "a" * 90
    assert fmt("define x:\n    " + "a" * 90 + "\n") == exactly + "\n"


def test_runs_of_one_line_statements_stay_together():
    source = ('uses "a.pw"\n\n\nuses "b.pw" as bee\nparameter p = 1\n\nparameter q "Q" = 2 weeks\n'
              "outcomes a\noutcomes b, c\ndefine d: 1\ndefine e: 2\n")
    assert fmt(source) == ('uses "a.pw" as a\nuses "b.pw" as bee\n\nparameter p = 1\nparameter q "Q" = 2 weeks\n\n'
                           "outcomes a\noutcomes b, c\n\ndefine d: 1\n\ndefine e: 2\n")


def test_header_fields_in_fixed_order():
    source = 'protocol p:\n    description "D"\n    authors "A",   "B"\n    status active\n    version "1"\n'
    assert fmt(source) == 'protocol p:\n  version "1"\n  status active\n  authors "A", "B"\n  description "D"\n'


def test_crlf_and_tabs():
    source = "define x:\r\n\tall of:\r\n\t\ta  # c\r\n\t\tb\r\n"
    assert check_properties(source) == "define x:\n  all of:\n    a  # c\n    b\n"


# --- comments -----------------------------------------------------------------------


def test_own_line_comments_keep_their_place():
    source = ("# top\n\n\n# about x\ndefine x:\n    # before the list\n    all of:\n"
              "        a   # trailing a\n  # odd indent, before b\n        b\n\n# about y\n\n"
              "define y: 1\n# the end\n")
    assert check_properties(source) == (
        "# top\n\n# about x\ndefine x:\n  # before the list\n  all of:\n    a  # trailing a\n"
        "    # odd indent, before b\n    b\n\n# about y\n\ndefine y: 1\n# the end\n")


def test_comment_inside_a_body_keeps_it_on_its_own_line():
    source = "define x: # why\n  # because\n  a and b\n"
    assert check_properties(source) == "define x:  # why\n  # because\n  a and b\n"
    assert check_properties("define x: # why\n  a and b\n") == "define x: a and b  # why\n"


def test_two_trailing_comments_on_one_printed_line():
    source = 'parameter p = (1 # one\n  + 2) # two\n'
    assert check_properties(source) == "# one\nparameter p = 1 + 2  # two\n"


def test_doc_comments_stay_doc_and_others_do_not_become_doc():
    source = "## doc of x\ndefine x: 1\n  ## not doc: indented\ndefine y: 2\n## not doc: blank below\n\ndefine z: 3\n"
    once = check_properties(source)
    docs = [s.node.doc for s in parse(once, Sink()).statements]
    assert docs == ["doc of x", None, None]


def test_comments_inside_strings_are_not_comments():
    source = 'define x "a # b": "c # d" # real\n'
    assert check_properties(source) == 'define x "a # b": "c # d"  # real\n'


# --- generated protocols ------------------------------------------------------------

NAMES = ["frail", "age", "lookback", "minimum_age", "bmi", "smoker", "x1", "conditions.ltc_count"]
QUANTITIES = ["3", "0.10", "12 months", "1 year", "£100", "2 weeks", "65 years", "4", "7 days", "12 GBP"]
OPS = [">=", "at least", ">", "more than", "<=", "at most", "<", "less than", "fewer than",
       "=", "is", "!=", "is not"]
# Safe anywhere: nothing can follow and extend their filters.
QUERIES = ["count admissions in the last 12 months", "any admissions in the last lookback",
           "(count conditions where status is active)",
           "no conditions where status is active in the last 12 months",
           "count conditions where status is active and code in conditions.ltc in the last 1 year",
           "any conditions where not (status is resolved or code in vs) within 2 years"]
# A filter at the very end: only before a comparison word.
FILTERED = ["count conditions where status is active", "count admissions where cost > £100 or days >= 2"]
LABELS = ["Frail", 'say "hi"', "back\\slash", "a # not a comment", "", "A&E £100"]
COMMENTS = ["# note", "## doc-ish", "#", "#tight", '# has "quotes" and # more', "## another", "#!weird"]


def q(label: str) -> str:
    return '"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def broken_parens(draw, inner: str) -> str:
    """``(inner)`` run over lines (never back to column 1), maybe with a comment inside."""
    comment = draw(st.sampled_from(["", "  # in parens", "\n   ## own line in parens"]))
    return f"({inner}{comment}\n{' ' * draw(st.integers(1, 6))})"


@st.composite
def expressions(draw, depth=0):
    def joined(part, seps, deepest=1):
        n = draw(st.integers(1, 2 if depth <= deepest else 1))
        out = part()
        for _ in range(n - 1):
            out += f" {draw(st.sampled_from(seps))} {part()}"
        return out

    def primary():
        choice = draw(st.integers(0, 9 if depth < 2 else 6))
        if choice <= 2:
            return draw(st.sampled_from(NAMES))
        if choice <= 4:
            return draw(st.sampled_from(QUANTITIES))
        if choice <= 6:
            return draw(st.sampled_from(QUERIES))
        inner = draw(expressions(depth + 1))
        if draw(st.integers(0, 3)):
            return f"({inner})"
        # A parenthesis may run over lines (never back to column 1), with comments inside.
        return draw(broken_parens(inner))

    def unary():
        return ("-" if draw(st.integers(0, 9)) == 0 else "") + primary()

    def sum_():
        return joined(lambda: joined(unary, ["*", "/"], 0), ["+", "-"], 0)

    def comparison():
        kind = draw(st.integers(0, 5))
        if kind <= 2:
            return sum_()
        left = draw(st.sampled_from(FILTERED)) if kind == 5 else sum_()
        return f"{left} {draw(st.sampled_from(OPS))} {sum_()}"

    def not_():
        return ("not " if draw(st.integers(0, 5)) == 0 else "") + comparison()

    return joined(lambda: joined(not_, ["and"]), ["or"])


@st.composite
def item_lists(draw, depth):
    """(depth, text) lines of an item list block at ``depth``."""
    quantifier = draw(st.sampled_from(["all of:", "any of:", "none of:", "at least 2 of:",
                                       "at least minimum_age of:"]))
    lines = [(depth, quantifier)]
    for _ in range(draw(st.integers(1, 3 if depth < 2 else 2))):
        kind = draw(st.integers(0, 5 if depth < 3 else 3))
        label = q(draw(st.sampled_from(LABELS)))
        if kind == 0:
            lines.append((depth + 1, draw(st.sampled_from(NAMES))))
        elif kind <= 2:
            lines.append((depth + 1, f"{label}: {draw(expressions(1))}"))
        elif kind == 3:
            lines += [(depth + 1, f"{label}:"), (depth + 2, draw(expressions(1)))]
        else:
            lines.append((depth + 1, f"{label}:"))
            lines += draw(item_lists(depth + 2))
    return lines


@st.composite
def statements(draw):
    kind = draw(st.integers(0, 10))
    name = draw(st.sampled_from(["a", "b", "frailty", "eligible", "n2"]))
    label = draw(st.one_of(st.just(""), st.sampled_from(LABELS).map(lambda s: " " + q(s))))
    keyword = draw(st.sampled_from(["define", "criterion"]))
    if kind == 0:
        return [(0, f'uses "{draw(st.sampled_from(["lib/c.pw", "x.pw"]))}"' + draw(st.sampled_from(["", " as c"])))]
    if kind in (1, 10):
        value = draw(st.sampled_from(QUANTITIES) if kind == 1 else broken_parens(draw(expressions(1))))
        return [(0, f"parameter {name}{label} = {value}")]
    if kind == 2:
        return [(0, "outcomes " + ", ".join(draw(st.lists(st.sampled_from(NAMES[:4]), min_size=1, max_size=3))))]
    if kind <= 5:
        return [(0, f"{keyword} {name}{label}: {draw(expressions())}")]
    if kind <= 7:
        return [(0, f"{keyword} {name}{label}:"), (1, draw(expressions()))]
    return [(0, f"{keyword} {name}{label}:")] + draw(item_lists(1))


@st.composite
def protocols(draw):
    """Source text of a small valid protocol with random comments, blank lines and indentation."""
    width = draw(st.sampled_from([2, 4]))
    comment = st.sampled_from(COMMENTS)
    out: list[str] = []

    def noise(depth):
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                out.append(draw(st.sampled_from(["", "   "])))
            else:
                pad = draw(st.sampled_from([0, depth * width, depth * width + 1, 3]))
                out.append(" " * pad + draw(comment))

    for _ in range(draw(st.integers(1, 3))):
        noise(0)
        if draw(st.integers(0, 3)) == 0:
            out.append("## doc " + draw(st.sampled_from(["one", "two"])))
        lines = draw(statements())
        for i, (depth, text) in enumerate(lines):
            if i:
                noise(depth)
            trailing = draw(st.one_of(st.just(""), comment.map(lambda c: draw(st.sampled_from([" ", "   "])) + c)))
            out.append(" " * (depth * width) + text + trailing)
    noise(0)
    return "\n".join(out) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocols())
def test_generated_protocols(source):
    check_properties(source)


@st.composite
def sprinkled(draw):
    """A library or golden file with comments and blank lines strewn through it, maybe reindented:
    the block statements the generator above does not build."""
    lines = draw(st.sampled_from(LIBRARY + GOLDEN)).read_text(encoding="utf-8").split("\n")
    if draw(st.booleans()):
        lines = [line[:len(line) - len(line.lstrip())] * 2 + line.lstrip() for line in lines]
    out = []
    for line in lines:
        roll = draw(st.integers(0, 7))
        if roll == 0:
            out.append(" " * draw(st.integers(0, 6)) + draw(st.sampled_from(COMMENTS)))
        elif roll == 1:
            out.append("")
        out.append(line + (" " + draw(st.sampled_from(COMMENTS)) if roll == 2 and line.strip() else ""))
    return "\n".join(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sprinkled())
def test_sprinkled_library_files(source):
    check_properties(source)
