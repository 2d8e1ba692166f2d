"""One focused test per construct of the language: compile a small protocol
and assert the model that comes out of it.

The examples are compiled from the library folder, so ``uses "conditions.pw"``
and friends resolve. docs/language.md explains each construct for clinical
leads; tests/test_docs.py checks the examples there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import Session, compile_file, compile_text
from dsl.diagnostics import render
from pathways import model as m
from pathways.walk import walk

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "library"
HEADER = 'protocol example:\n  version "1.0.0"\n\n'


def compiled(source: str, header: bool = True):
    return compile_text((HEADER if header else "") + source, "example.pw", LIBRARY)


def protocol(source: str, header: bool = True) -> m.Protocol:
    """The model of a protocol that must compile with no diagnostics at all."""
    result = compiled(source, header)
    problems = "\n\n".join(render(d, result.sources.get(d.file)) for d in result.diagnostics)
    assert result.diagnostics == [], problems
    assert result.protocol is not None
    return result.protocol


def expr(text: str) -> m.Expr:
    """The model of one expression, written as ``define example_value: <text>``."""
    decl = protocol(f"define example_value: {text}\n").get("example_value")
    assert isinstance(decl, m.Definition)
    return decl.expr


def codes(source: str, header: bool = True) -> list[str]:
    return [d.code for d in compiled(source, header).diagnostics]


def q(value: float, unit: str) -> tuple[float, str]:
    return (value, unit)


def qty(node: m.Expr) -> tuple[float, str]:
    assert isinstance(node, m.Quantity), node
    return (node.value, node.unit)


# --- header, comments, imports, outcomes ------------------------------------------


def test_header_fields():
    p = protocol('''protocol castlefields_local:
  version "2.1.0"
  title "Castlefields, as adopted locally"
  status active
  authors "Dr A Patel", "J Smith"
  source "Department of Health (2005)"
  description "Over 65 and three of eleven criteria."
''', header=False)
    h = p.header
    assert (h.name, h.version, h.title, h.status) == ("castlefields_local", "2.1.0",
                                                       "Castlefields, as adopted locally", "active")
    assert h.authors == ("Dr A Patel", "J Smith")
    assert h.citation == "Department of Health (2005)"
    assert h.description == "Over 65 and three of eleven criteria."


def test_status_defaults_to_draft_and_is_checked():
    assert protocol("", header=True).header.status == "draft"
    assert codes('protocol p:\n  version "1"\n  status live\n', header=False) == ["PW212"]
    assert codes('protocol p:\n  version "1"\n  owner "me"\n', header=False) == ["PW110"]
    assert codes('protocol p:\n  title "x"\n', header=False) == ["PW213"]
    assert codes('define x: 1\n', header=False) == ["PW210"]


def test_doc_comments_are_stored_in_decl_doc():
    p = protocol('''## The active long term conditions.
## Disorders only.
define active_conditions "Active": conditions where status is active

## Not attached: a blank line follows.

define plain: count falls
# an ordinary comment
define commented: count falls  # trailing comment
''')
    assert p.get("active_conditions").doc == "The active long term conditions.\nDisorders only."
    assert p.get("plain").doc is None
    assert p.get("commented").doc is None


def test_uses_resolves_and_names_get_import_targets():
    p = protocol('''uses "castlefields.pw" as castlefields
uses "evercare.pw"

criterion case_management: castlefields.eligible or evercare.eligible
''')
    assert [(u.path, u.alias) for u in p.uses] == [("castlefields.pw", "castlefields"), ("evercare.pw", "evercare")]
    assert p.uses[0].protocol is not None and p.uses[0].protocol.header.name == "castlefields"
    body = p.get("case_management").expr
    assert isinstance(body, m.Binary) and body.op == "or"
    assert (body.left.dotted, body.left.target) == ("castlefields.eligible", "import:castlefields:eligible")
    assert (body.right.namespace, body.right.name, body.right.target) == ("evercare", "eligible",
                                                                         "import:evercare:eligible")


@pytest.mark.parametrize("source, code", [
    ('define x: castlefields.eligible\n', "PW203"),
    ('uses "castlefields.pw" as castlefields\ndefine x: castlefields.eligable\n', "PW204"),
    ('uses "nothere.pw" as nothere\n', "PW600"),
    ('uses "conditions.pw" as c\nuses "evercare.pw" as c\n', "PW603"),
    ('uses "/etc/x.pw" as x\n', "PW604"),
    ('uses "conditions.txt" as c\n', "PW605"),
    ('uses "../x.pw" as x\n', "PW606"),
])
def test_import_mistakes(source, code):
    assert codes(source) == [code]


def test_outcomes_and_unused_warning():
    p = protocol("outcomes a, b\ncriterion a: lives_alone\ndefine b: count falls\n")
    assert p.outcomes == ("a", "b")
    assert codes("outcomes a\ncriterion a: lives_alone\ndefine b: count falls\n") == ["PW401"]
    assert codes("outcomes a, zz\ncriterion a: lives_alone\n") == ["PW206"]


# --- parameters and code lists ----------------------------------------------------


def test_parameters():
    p = protocol('''parameter minimum_age "Minimum age" = 65 years
parameter minimum_criteria = 3
parameter cost_limit "Monthly prescribing cost limit" = £100
parameter budget = 1200 GBP
parameter start = 2024-04-01
parameter service = "Community matrons"
parameter include_homes = true
''')
    age = p.get("minimum_age")
    assert isinstance(age, m.Parameter) and age.label == "Minimum age"
    assert qty(age.default) == q(65, "years")
    assert qty(p.get("minimum_criteria").default) == q(3, "count")
    assert qty(p.get("cost_limit").default) == q(100, "gbp")
    assert qty(p.get("budget").default) == q(1200, "gbp")
    assert p.get("start").default == m.DateLiteral(id="example.start/default", span=p.get("start").default.span,
                                                   value="2024-04-01", precision="day")
    assert p.get("service").default.value == "Community matrons"
    assert p.get("include_homes").default.value is True
    assert codes("parameter x = age\n") == ["PW320"]


def test_parameter_used_in_a_rule_gets_a_decl_target():
    p = protocol("parameter lookback = 12 months\ndefine n: count falls in the last lookback\n")
    window = p.get("n").expr.source
    assert isinstance(window, m.Window) and window.amount.target == "decl:lookback"


def test_inline_code_list():
    p = protocol('''codes copd "COPD":
  snomed 13645005 "Chronic obstructive lung disease"
  icd10 J44.9
  read H3... "COPD"
  local "COPD REG" "Practice register"
''')
    vs = p.get("copd")
    assert isinstance(vs, m.ValueSet) and vs.label == "COPD" and vs.source_file is None
    assert [(c.system, c.code, c.display) for c in vs.codes] == [
        ("snomed", "13645005", "Chronic obstructive lung disease"),
        ("icd10", "J44.9", ""),
        ("read", "H3...", "COPD"),
        ("local", "COPD REG", "Practice register"),
    ]


@pytest.mark.parametrize("system", ["snomed", "icd10", "dmd", "rxnorm", "loinc", "read", "ctv3", "local"])
def test_every_code_system_is_known(system):
    assert protocol(f'codes c:\n  {system} X123 "x"\n').get("c").codes[0].system == system


def test_unknown_code_system():
    assert codes('codes c:\n  snomd 123 "x"\n') == ["PW230"]


def test_csv_code_list_is_read():
    session = Session(root=LIBRARY)
    unit = session.compile_path(LIBRARY / "conditions.pw")
    assert not unit.sink.items
    loaded = unit.codes["long_term_conditions"]
    assert len(loaded) == 76
    assert (loaded[0].system, loaded[0].code, loaded[0].display) == ("snomed", "195967001", "Asthma")
    decl = session.lower(unit).get("long_term_conditions")
    assert isinstance(decl, m.ValueSet) and decl.source_file == "codes/long_term_conditions.csv"
    assert decl.label == "Long term conditions (QOF registers and the domain notes)"


def test_csv_codes_reach_the_compiled_model():
    decl = compile_file(LIBRARY / "conditions.pw").protocol.get("long_term_conditions")
    assert len(decl.codes) == 76


def test_csv_code_list_that_cannot_be_read():
    assert codes('codes c from "codes/missing.csv"\n') == ["PW231"]


def test_code_list_in_a_filter():
    p = protocol('uses "conditions.pw" as conditions\n'
                 'define copd: conditions where code in conditions.copd\n')
    f = p.get("copd").expr
    assert isinstance(f, m.Filter)
    assert isinstance(f.condition, m.InValueSet) and f.condition.attribute == "code"
    assert f.condition.value_set.target == "import:conditions:copd"


# --- definitions, logic, comparisons ---------------------------------------------


def test_define_and_criterion():
    p = protocol('define n "Falls": count falls\ncriterion c "Fell": n at least 1\n')
    n, c = p.get("n"), p.get("c")
    assert isinstance(n, m.Definition) and not n.criterion and n.label == "Falls"
    assert isinstance(c, m.Definition) and c.criterion
    assert c.expr.left.target == "decl:n"
    assert [d.kind for d in p.declarations] == ["definition", "definition"]


def test_criterion_must_be_true_or_false():
    assert codes("criterion c: count falls\n") == ["PW310"]


def test_declared_twice_and_circles():
    assert codes("define a: 1\ndefine a: 2\n") == ["PW202"]
    assert codes("define a: b\ndefine b: a\n") == ["PW205"]


@pytest.mark.parametrize("words, op", [
    ("at least", ">="), (">=", ">="), ("more than", ">"), (">", ">"), ("at most", "<="), ("<=", "<="),
    ("less than", "<"), ("fewer than", "<"), ("<", "<"), ("is", "="), ("=", "="), ("is not", "!="), ("!=", "!="),
])
def test_comparison_words_and_symbols(words, op):
    e = expr(f"count falls {words} 2")
    assert isinstance(e, m.Compare) and e.op == op
    assert isinstance(e.left, m.Aggregate) and qty(e.right) == q(2, "count")


def test_and_or_not_precedence():
    e = expr("not lives_alone and has_carer or age at least 80 years")
    assert isinstance(e, m.Binary) and e.op == "or"
    assert isinstance(e.left, m.Binary) and e.left.op == "and"
    assert isinstance(e.left.left, m.Not) and e.left.left.operand.name == "lives_alone"
    assert isinstance(e.right, m.Compare)


def test_not_applies_to_a_whole_comparison():
    e = expr("not count falls at least 2")
    assert isinstance(e, m.Not) and isinstance(e.operand, m.Compare)


def test_symbols_on_the_patient():
    e = expr("sex is female")
    assert (e.left.target, e.right.target) == ("patient:sex", "symbol:female")
    assert codes("define x: sex is femail\n") == ["PW302"]


@pytest.mark.parametrize("text, code", [
    ("lives_alone at least true", "PW307"),
    ("conditions at least 4", "PW306"),
    ("not age", "PW304"),
])
def test_comparison_mistakes(text, code):
    assert codes(f"define x: {text}\n") == [code]


# --- quantities, units, arithmetic ----------------------------------------------


@pytest.mark.parametrize("text, value, unit", [
    ("3", 3, "count"), ("0.5", 0.5, "count"),
    ("1 day", 1, "days"), ("90 days", 90, "days"),
    ("1 week", 1, "weeks"), ("4 weeks", 4, "weeks"),
    ("1 month", 1, "months"), ("6 months", 6, "months"),
    ("1 year", 1, "years"), ("65 years", 65, "years"),
    ("£100", 100, "gbp"), ("£12.50", 12.5, "gbp"), ("100 GBP", 100, "gbp"),
])
def test_quantities_and_units(text, value, unit):
    e = expr(text)
    assert qty(e) == q(value, unit)
    assert e.text == text.lstrip("£").split()[0]


def test_pounds_keep_the_digits_as_written():
    assert expr("£12.50").text == "12.50"


def test_age_needs_a_unit():
    result = compiled("criterion older: age at least 65\n")
    [d] = result.diagnostics
    assert d.code == "PW301" and d.message == "cannot compare a duration with a number"
    assert "`65 years`" in (d.help or "")
    assert isinstance(expr("age at least 65 years"), m.Compare)


@pytest.mark.parametrize("text", [
    "sum monthly_cost of medications more than 100",  # money against a count
    "age + £5",
    "age * age",
    "count falls in the last 12",
])
def test_unit_mistakes(text):
    assert codes(f"define x: {text}\n") == ["PW301"]


def test_arithmetic():
    e = expr("count admissions + count ae_attendances * 2")
    assert isinstance(e, m.Binary) and e.op == "+"
    assert isinstance(e.right, m.Binary) and e.right.op == "*"
    e = expr("(75 years - age) / 1 year")
    assert e.op == "/" and e.left.op == "-" and qty(e.right) == q(1, "years")
    assert qty(expr("-1")) == (-1, "count")  # a negative number is a value, not an operation
    assert isinstance(expr("-age"), m.Negate)
    e = expr("earliest onset of conditions - birth_date")
    assert e.op == "-" and e.left.op == "earliest"


def test_dates():
    e = expr("birth_date < 1950-01-01")
    assert isinstance(e.right, m.DateLiteral) and (e.right.value, e.right.precision) == ("1950-01-01", "day")
    e = expr("count falls after 2024-04")
    assert (e.source.start.value, e.source.start.precision) == ("2024-04", "month")
    assert codes("define x: 2023-02-29\n") == ["PW105"]


# --- item lists -------------------------------------------------------------------


def test_at_least_n_of_keeps_minimum_and_labels():
    p = protocol('''parameter minimum_criteria = 3
criterion published "Published criteria":
  at least minimum_criteria of:
    "four or more conditions": count conditions where status is active at least 4
    "lives alone": lives_alone
    "has a carer": has_carer
''')
    items = p.get("published").expr
    assert isinstance(items, m.ItemList) and items.quantifier == "at_least"
    assert isinstance(items.minimum, m.Ref) and items.minimum.target == "decl:minimum_criteria"
    assert [i.label for i in items.items] == ["four or more conditions", "lives alone", "has a carer"]
    assert isinstance(items.items[0].expr, m.Compare)
    assert items.items[1].id == "example.published/expr/items.1"


def test_at_least_a_number_of():
    items = protocol('criterion c:\n  at least 2 of:\n    "a": lives_alone\n    "b": has_carer\n').get("c").expr
    assert qty(items.minimum) == q(2, "count")


@pytest.mark.parametrize("word", ["all", "any", "none"])
def test_all_any_none_of(word):
    items = protocol(f'criterion c:\n  {word} of:\n    "a": lives_alone\n    "b": has_carer\n').get("c").expr
    assert isinstance(items, m.ItemList) and items.quantifier == word and items.minimum is None
    assert len(items.items) == 2


def test_items_that_name_a_definition_take_its_label():
    p = protocol('''criterion alone "Lives alone": lives_alone
criterion carer: has_carer
criterion c:
  any of:
    alone
    carer
''')
    items = p.get("c").expr.items
    assert [(i.label, i.expr.target) for i in items] == [("Lives alone", "decl:alone"), ("carer", "decl:carer")]


def test_nested_item_lists():
    p = protocol('''criterion c:
  any of:
    "old and alone":
      all of:
        "old": age at least 80 years
        "alone": lives_alone
    "no falls": no falls
''')
    outer = p.get("c").expr
    inner = outer.items[0].expr
    assert isinstance(inner, m.ItemList) and inner.quantifier == "all"
    assert [i.label for i in inner.items] == ["old", "alone"]
    assert outer.items[1].expr.op == "no"


def test_items_met_in():
    p = protocol('''criterion c:
  at least 1 of:
    "a": lives_alone
    "b": has_carer
define n: items met in c
''')
    e = p.get("n").expr
    assert isinstance(e, m.ItemsMet) and e.target.target == "decl:c"
    p = protocol('uses "castlefields.pw" as castlefields\n'
                 'define n: items met in castlefields.published_criteria\n')
    assert p.get("n").expr.target.target == "import:castlefields:published_criteria"
    assert codes("define a: 3\ndefine n: items met in a\n") == ["PW318"]


def test_item_list_lints():
    assert codes('criterion c:\n  at least 3 of:\n    "a": lives_alone\n    "b": has_carer\n') == ["PW402"]
    assert codes('criterion c:\n  at least 0 of:\n    "a": lives_alone\n') == ["PW403"]


# --- the record: queries ----------------------------------------------------------


@pytest.mark.parametrize("op", ["count", "any", "no"])
def test_count_any_no(op):
    e = expr(f"{op} falls")
    assert isinstance(e, m.Aggregate) and e.op == op and e.attribute is None
    assert e.source.target == "collection:falls"


@pytest.mark.parametrize("op, attribute, source", [
    ("sum", "monthly_cost", "medications"),
    ("min", "monthly_cost", "medications"),
    ("max", "length", "admissions"),
    ("latest", "date", "admissions"),
    ("earliest", "onset", "conditions"),
])
def test_attribute_aggregates(op, attribute, source):
    e = expr(f"{op} {attribute} of {source}")
    assert isinstance(e, m.Aggregate) and (e.op, e.attribute, e.source.name) == (op, attribute, source)


def test_total_stay():
    e = expr("total stay of admissions in the last 1 year more than 4 weeks")
    assert e.left.op == "total_stay" and isinstance(e.left.source, m.Window)
    assert qty(e.right) == q(4, "weeks")
    assert codes("define x: total stay of conditions\n") == ["PW312"]


def test_patient_facts_and_collections_get_targets():
    e = expr("age at least 65 years and lives_alone and practice is \"P81001\"")
    refs = [n for n in walk(e) if isinstance(n, m.Ref)]
    assert [r.target for r in refs] == ["patient:age", "patient:lives_alone", "patient:practice"]


def test_where_filter_attributes_and_symbols():
    e = expr("medications where status is active and duration at least 6 months")
    assert isinstance(e, m.Filter) and e.source.target == "collection:medications"
    cond = e.condition
    assert isinstance(cond, m.Binary) and cond.op == "and"
    assert (cond.left.left.target, cond.left.right.target) == ("attribute:status", "symbol:active")
    assert cond.right.left.target == "attribute:duration" and qty(cond.right.right) == q(6, "months")


def test_and_after_where_continues_the_filter():
    # `age` is read as an attribute of a condition: the mistake the docs warn about
    assert codes("define x: any conditions where status is active and age at least 65 years\n") == ["PW240"]
    # the ways out: finish the question, brackets, or a named definition
    e = expr("count conditions where status is active at least 1 and age at least 65 years")
    assert e.op == "and" and isinstance(e.left, m.Compare) and isinstance(e.left.left.source, m.Filter)
    e = expr("any (conditions where status is active) and age at least 65 years")
    assert e.op == "and" and isinstance(e.left.source, m.Filter)
    p = protocol("define active_conditions: conditions where status is active\n"
                 "criterion c: any active_conditions and age at least 65 years\n")
    assert p.get("c").expr.op == "and"


def test_where_after_a_comparison_reads_as_it_sounds():
    e = expr("count conditions where status is active at least 4")
    assert isinstance(e, m.Compare) and isinstance(e.left.source, m.Filter) and qty(e.right) == q(4, "count")


@pytest.mark.parametrize("text, code", [
    ("admissions where stay more than 14 days", "PW240"),
    ("medications where status is current", "PW302"),
    ("any lives_alone", "PW311"),
    ("sum status of medications", "PW313"),
])
def test_record_mistakes(text, code):
    assert codes(f"define x: {text}\n") == [code]


# --- time windows, ago ------------------------------------------------------------


def test_in_the_last_window():
    e = expr("count admissions in the last 12 months")
    w = e.source
    assert isinstance(w, m.Window) and w.mode == "last" and qty(w.amount) == q(12, "months")
    assert w.source.target == "collection:admissions" and w.start is None and w.end is None


def test_within_is_in_the_last():
    w = expr("any emergency_admissions within 90 days").source
    assert w.mode == "last" and qty(w.amount) == q(90, "days")


def test_between_before_after():
    w = expr("count emergency_admissions between 2023-11-01 and 2024-02-29").source
    assert (w.mode, w.start.value, w.end.value) == ("between", "2023-11-01", "2024-02-29")
    w = expr("count falls before 12 months ago").source
    assert w.mode == "before" and isinstance(w.start, m.Ago) and qty(w.start.amount) == q(12, "months")
    w = expr("count falls after 2024-04").source
    assert w.mode == "after" and w.start.value == "2024-04"


def test_ago():
    e = expr("6 months ago")
    assert isinstance(e, m.Ago) and qty(e.amount) == q(6, "months")
    assert codes("define x: 6 ago\n") == ["PW301"]


def test_window_after_a_filter():
    w = expr("any life_events where event is bereavement in the last 6 months").source
    assert isinstance(w, m.Window) and isinstance(w.source, m.Filter)
    assert w.source.condition.right.target == "symbol:bereavement"


# --- rates per period, population-relative terms ---------------------------------


@pytest.mark.parametrize("op", ["lowest", "highest", "average"])
def test_rate_per_period(op):
    e = expr(f"{op} count per 3 months of social_work_visits in the last 12 months")
    assert isinstance(e, m.PerPeriod) and e.op == op and qty(e.period) == q(3, "months")
    assert isinstance(e.source, m.Window) and qty(e.source.amount) == q(12, "months")


def test_rate_per_period_needs_a_window():
    assert codes("define x: lowest count per 3 months of social_work_visits\n") == ["PW314"]


def test_in_the_top():
    e = expr("count gp_consultations in the last 12 months is in the top 3% of practice")
    assert isinstance(e, m.InTop) and e.group == "practice" and qty(e.percent) == q(3, "percent")
    assert isinstance(e.value, m.Aggregate)
    assert expr("age is in the top 10% of population").group == "population"
    assert codes("define x: age is in the top 150% of practice\n") == ["PW317"]
    assert codes("define x: age is in the top 3% of ward\n") == ["PW315"]


def test_percentile():
    e = expr("percentile of count gp_consultations in the last 12 months in practice")
    assert isinstance(e, m.Percentile) and e.group == "practice" and isinstance(e.value, m.Aggregate)


# --- scores, bands, levels --------------------------------------------------------


def test_score_items_and_weights():
    p = protocol('''criterion recent_falls "Two or more falls": count falls in the last 12 months at least 2
score frailty "Frailty":
  "lives alone" weight 2: lives_alone
  "four or more medicines": count medications where status is active at least 4
  recent_falls weight 1.5
''')
    s = p.get("frailty")
    assert isinstance(s, m.Score) and s.label == "Frailty"
    assert [(i.label, i.weight) for i in s.items] == [("lives alone", 2.0), ("four or more medicines", 1.0),
                                                     ("Two or more falls", 1.5)]
    assert codes('score s:\n  "falls": count falls\n') == ["PW300"]


def test_bands():
    p = protocol('''define n: count falls in the last 12 months
bands falls_band "Falls" of n:
  none "None": is 0
  few "Few": at most 2
  many: otherwise
criterion lots: falls_band is many
''')
    b = p.get("falls_band")
    assert isinstance(b, m.Bands) and b.value.target == "decl:n"
    assert [(x.name, x.label, x.op) for x in b.bands] == [("none", "None", "="), ("few", "Few", "<="),
                                                         ("many", None, None)]
    assert qty(b.bands[1].threshold) == q(2, "count") and b.bands[2].threshold is None
    assert p.get("lots").expr.right.target == "symbol:many"


def test_band_lints():
    base = "define n: count falls\n"
    assert codes(base + "bands b of n:\n  x: at most 5\n  y: at most 3\n  z: otherwise\n") == ["PW406"]
    assert codes(base + "bands b of n:\n  z: otherwise\n  x: at most 5\n") == ["PW405"]
    assert codes("bands b of lives_alone:\n  x: otherwise\n") == ["PW330"]


def test_levels_first_match_and_otherwise():
    p = protocol('''levels need "Need":
  level 2 "High": age at least 80 years
  level 1 "Some": lives_alone
  otherwise level 0 "None"
criterion high: need is 2
''')
    lv = p.get("need")
    assert isinstance(lv, m.Levels)
    assert [(x.number, x.label) for x in lv.levels] == [(2, "High"), (1, "Some")]
    assert lv.fallback is not None and (lv.fallback.number, lv.fallback.label, lv.fallback.condition) == (0, "None",
                                                                                                         None)


@pytest.mark.parametrize("body, code", [
    ('  level 2 "a": lives_alone\n', "PW341"),
    ('  level 2 "a": lives_alone\n  level 2 "b": has_carer\n  otherwise level 0 "n"\n', "PW340"),
    ('  level 2 "a": lives_alone\n  otherwise level 0 "n"\n  level 1 "b": has_carer\n', "PW121"),
    ('  level 2 "a": lives_alone\n  otherwise level 0 "n"\n  otherwise level 1 "m"\n', "PW120"),
    ('  level 2 "a": lives_alone\n  level 1 "b": lives_alone\n  otherwise level 0 "n"\n', "PW404"),
])
def test_level_mistakes(body, code):
    assert codes("levels lv:\n" + body) == [code]


# --- pathways ---------------------------------------------------------------------

PATHWAY = '''criterion stable: no emergency_admissions in the last 12 months
pathway case_management "Case management":
  entry when age at least 65 years
  step identified "Identified":
    due "Approach the patient" within 14 days
    on approached go to monitoring
    on declined go to exit declined
    after 28 days go to exit no_response
  step monitoring "Monitoring":
    due "Review the care plan" every 3 months
    on reviewed go to monitoring
    when stable go to exit stable
  exit declined "Declined"
  exit no_response "No response"
  exit stable "Stable"
  exit died "Died": on died
  exit unstable "Very unwell": when count emergency_admissions in the last 1 month at least 3
'''


def test_pathway_steps_actions_transitions_exits():
    pw = protocol(PATHWAY).get("case_management")
    assert isinstance(pw, m.Pathway) and pw.label == "Case management"
    assert isinstance(pw.entry, m.Compare)
    assert [s.name for s in pw.steps] == ["identified", "monitoring"]
    first, second = pw.steps
    assert [(a.label, a.timing, qty(a.interval)) for a in first.actions] == [
        ("Approach the patient", "within", (14, "days"))]
    assert [(a.timing, qty(a.interval)) for a in second.actions] == [("every", (3, "months"))]
    assert [(t.trigger, t.event, t.target, t.target_is_exit) for t in first.transitions] == [
        ("event", "approached", "monitoring", False),
        ("event", "declined", "declined", True),
        ("after", None, "no_response", True),
    ]
    assert qty(first.transitions[2].delay) == q(28, "days")
    when = second.transitions[1]
    assert (when.trigger, when.target, when.target_is_exit) == ("when", "stable", True)
    assert when.condition.target == "decl:stable"
    exits = {e.name: e for e in pw.exits}
    assert (exits["declined"].event, exits["declined"].condition) == (None, None)
    assert exits["died"].event == "died"
    assert isinstance(exits["unstable"].condition, m.Compare)


def test_pathway_state_graph():
    from pathways.graphs import START, state_graph
    g = state_graph(protocol(PATHWAY).get("case_management"))
    edges = {(u, v, d["trigger"]) for u, v, d in g.edges(data=True)}
    assert (START, "identified", "entry") in edges
    assert ("identified", "exit:no_response", "after") in edges
    assert ("monitoring", "exit:died", "event") in edges  # an exit with its own trigger applies from every step
    assert ("identified", "exit:unstable", "when") in edges


@pytest.mark.parametrize("body, expected", [
    ('  step a:\n    on reviewd go to exit done\n  exit done: on died\n', ["PW505"]),
    ('  step a:\n    on reviewed go to b\n  exit done: on died\n', ["PW504"]),
    ('  step a:\n    on reviewed go to a\n  exit done "Done"\n', ["PW502"]),
    ('  step a:\n    on reviewed go to exit done\n  step b:\n    on reviewed go to exit done\n  exit done "Done"\n',
     ["PW501"]),
    ('  step a:\n    when lives_alone go to b\n  step b:\n    when has_carer go to a\n  exit d: on died\n',
     ["PW503"]),
    ('  step a:\n    on died go to exit d\n  step a:\n    on died go to exit d\n  exit d "D"\n', ["PW506"]),
    ('  exit d "D"\n', ["PW507"]),
    ('  entry when lives_alone\n  entry when has_carer\n  step a:\n    on died go to exit d\n  exit d "D"\n',
     ["PW122"]),
    ('  step a:\n    due "x" within 14\n    on died go to exit d\n  exit d "D"\n', ["PW301"]),
])
def test_pathway_checks(body, expected):
    assert codes('pathway p "P":\n' + body) == expected


def test_every_pathway_event_is_accepted():
    lines = "".join(f"    on {event} go to exit done\n" for event in m.PATHWAY_EVENTS)
    pw = protocol(f'pathway p:\n  step a:\n{lines}  exit done "Done"\n').get("p")
    assert [t.event for t in pw.steps[0].transitions] == list(m.PATHWAY_EVENTS)


# --- care plans ---------------------------------------------------------------------


def test_care_plan_sections_roles_conditions_interpolation():
    p = protocol('''uses "castlefields.pw" as castlefields
define n "Medicines": count medications where status is active
pathway cm:
  step a:
    on died go to exit d
  exit d "Died"
care plan plan "Personalised care plan" for cm:
  objectives "Health objectives":
    "Avoid admissions"
    "Take my {n} medicines; {castlefields.criteria_met} criteria met" by "patient" when lives_alone
  needs:
    "Assessment" by "community matron"
  self_care:
    "x"
  agencies:
    "x" when has_carer
  preventive:
    "x"
  contingency:
    "x"
  review:
    "x"
''')
    plan = p.get("plan")
    assert isinstance(plan, m.CarePlan) and plan.pathway == "cm" and plan.label == "Personalised care plan"
    assert [s.section for s in plan.sections] == ["objectives", "needs", "self_care", "agencies", "preventive",
                                                  "contingency", "review"]
    objectives = plan.sections[0]
    assert objectives.label == "Health objectives" and plan.sections[1].label is None
    plain, full = objectives.items
    assert (plain.text, plain.role, plain.condition) == ("Avoid admissions", None, None)
    assert full.text == "Take my {n} medicines; {castlefields.criteria_met} criteria met"
    assert full.role == "patient" and full.condition.target == "patient:lives_alone"
    assert plan.sections[1].items[0].role == "community matron"


@pytest.mark.parametrize("body, code", [
    ('care plan c:\n  objectives:\n    "{nothing_here}"\n', "PW201"),
    ('care plan c:\n  goals:\n    "x"\n', "PW251"),
    ('care plan c:\n  needs:\n    "x"\n  needs:\n    "y"\n', "PW252"),
    ('care plan c for nowhere:\n  needs:\n    "x"\n', "PW250"),
    ('care plan c:\n  needs:\n    "x" when count falls\n', "PW300"),
])
def test_care_plan_mistakes(body, code):
    assert codes(body) == [code]


# --- protocol tests -------------------------------------------------------------------


def test_test_block_parts():
    p = protocol('''uses "castlefields.pw" as castlefields
parameter minimum_age = 65 years
criterion older: age at least minimum_age
test "a 70-year-old who fell":
  as of 2024-01-01
  with minimum_age = 70 years
  with castlefields.cost_limit = £150
  patient:
    born 1954-01-01
    lives alone
    fall 2023-11-02
    medication "salbutamol" £4.50 monthly
  expect older is true
  expect castlefields.eligible is false
''')
    assert p.get("a 70-year-old who fell") is None  # tests live in a namespace of their own
    t = next(d for d in p.of_kind("test") if d.name == "a 70-year-old who fell")
    assert isinstance(t, m.ProtocolTest) and t.kind == "test"
    assert t.as_of == "2024-01-01"
    assert [(o.parameter, qty(o.value)) for o in t.overrides] == [("minimum_age", (70, "years")),
                                                                  ("castlefields.cost_limit", (150, "gbp"))]
    assert [(f.verb, f.args) for f in t.facts] == [
        ("born", ("1954-01-01",)), ("lives", ("alone",)), ("fall", ("2023-11-02",)),
        ("medication", ('"salbutamol"', "£4.50", "monthly")),
    ]
    assert [(e.outcome, e.value.value) for e in t.expectations] == [("older", True),
                                                                    ("castlefields.eligible", False)]


@pytest.mark.parametrize("body, code", [
    ('test "t":\n  with older = true\n  expect older is true\n', "PW260"),
    ('test "t":\n  with minimum_age = 70\n  expect older is true\n', "PW301"),
    ('test "t":\n  expect older is 1\n', "PW300"),
    ('test "t":\n  expect nothing is 1\n', "PW201"),
])
def test_test_block_mistakes(body, code):
    source = "parameter minimum_age = 65 years\ncriterion older: age at least minimum_age\n" + body
    assert codes(source) == [code]


# --- the library: every protocol compiles, and its JSON form round trips ---------------------

LIBRARY_FILES = sorted(LIBRARY.glob("*.pw"))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=[p.name for p in LIBRARY_FILES])
def test_library_protocol_round_trips_through_json(path):
    result = compile_file(path)
    assert result.diagnostics == []
    p = result.protocol
    assert p is not None
    again = m.Protocol.model_validate_json(p.model_dump_json())
    assert again == p
    assert again.model_dump_json() == p.model_dump_json()


def test_the_library_uses_every_declaration_kind_but_score_and_bands():
    kinds = {d.kind for path in LIBRARY_FILES for d in compile_file(path).protocol.declarations}
    assert kinds >= {"parameter", "value_set", "definition", "levels", "pathway", "care_plan", "test"}


# --- problems found while writing the reference, now fixed ----------------------------


def test_header_doc_comment_is_kept():
    p = protocol('## What this protocol is for.\nprotocol p:\n  version "1"\n', header=False)
    assert "What this protocol is for." in p.model_dump_json()


def test_impossible_as_of_date_is_reported():
    assert codes('test "t":\n  as of 2024-02-30\n') == ["PW105"]


def test_a_test_description_may_repeat_a_definition_name():
    assert codes('criterion older: age at least 65 years\ntest "older":\n  expect older is true\n') == []


@pytest.mark.parametrize("source", ["criterion female: sex is female\n",
                                    "define active: conditions where status is active\n"])
def test_a_definition_may_share_a_symbol_name(source):
    assert codes(source) == []


def test_rate_per_period_with_where_after_the_window():
    assert codes('define x: lowest count per 3 months of social_work_visits in the last 12 months '
                 'where code is "x"\n') == []
