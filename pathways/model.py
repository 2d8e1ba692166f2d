"""The typed model of a protocol: frozen pydantic nodes, one per construct.

The parser builds these nodes directly (with an empty ``id``); the lowering
pass gives every node a stable id derived from the declaration it sits in
and its position inside it, so ids survive edits elsewhere in the file.
The JSON form round trips: ``Protocol.model_validate_json(p.model_dump_json())
== p``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class Node(BaseModel):
    """Base of every model node: frozen, strict about fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(Node):
    """A region of source text: 1-based lines and columns, 0-based offsets."""

    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    def shifted(self, lines: int, offset: int) -> "Span":
        """The same span in a text that has ``lines``/``offset`` more before it."""
        return Span(
            line=self.line + lines,
            column=self.column,
            end_line=self.end_line + lines,
            end_column=self.end_column,
            start=self.start + offset,
            end=self.end + offset,
        )


NOWHERE = Span(line=1, column=1, end_line=1, end_column=1)

UnitName = Literal["days", "weeks", "months", "years", "gbp", "count", "percent"]
CompareOp = Literal[">=", ">", "<", "<=", "=", "!="]
BinaryOp = Literal["and", "or", "+", "-", "*", "/"]


class Expr(Node):
    id: str = ""
    span: Span = NOWHERE


# --- literals ---------------------------------------------------------------


class Quantity(Expr):
    """A number with a unit: ``65 years``, ``£100``, ``3``, ``0.12``."""

    kind: Literal["quantity"] = "quantity"
    value: float
    unit: UnitName = "count"
    text: str = ""  # the number as written, so the formatter keeps 0.10 as 0.10
    # A pathway time written as a parameter (`every review_interval`): lowering
    # puts the parameter's default in value/unit/text, so readers that know
    # nothing of parameters still get a duration, and names the parameter here
    # (`alias.name` when imported) so that overrides can be applied
    # (engine.timings).
    parameter: str | None = None


class Text(Expr):
    kind: Literal["text"] = "text"
    value: str


class Boolean(Expr):
    kind: Literal["boolean"] = "boolean"
    value: bool


class DateLiteral(Expr):
    """A calendar date; ``precision`` records a date known only to the month or year."""

    kind: Literal["date"] = "date"
    value: str
    precision: Literal["day", "month", "year"] = "day"


class Ref(Expr):
    """A name: a definition, parameter, value set, record collection,
    attribute of the record, or ``alias.name`` in an imported protocol.

    ``target`` is filled by resolution with the id of what the name means.
    """

    kind: Literal["ref"] = "ref"
    name: str
    namespace: str | None = None
    target: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


#: A time written out (``3 months``) or naming a duration parameter
#: (``review_interval``). In a compiled pathway it is always a Quantity.
Timing = Annotated[Union[Quantity, Ref], Field(discriminator="kind")]


# --- operators --------------------------------------------------------------


class Not(Expr):
    kind: Literal["not"] = "not"
    operand: "AnyExpr"


class Negate(Expr):
    kind: Literal["negate"] = "negate"
    operand: "AnyExpr"


class Binary(Expr):
    kind: Literal["binary"] = "binary"
    op: BinaryOp
    left: "AnyExpr"
    right: "AnyExpr"


class Compare(Expr):
    kind: Literal["compare"] = "compare"
    op: CompareOp
    left: "AnyExpr"
    right: "AnyExpr"


class InValueSet(Expr):
    """``code in long_term_conditions`` inside a ``where`` filter."""

    kind: Literal["in_value_set"] = "in_value_set"
    attribute: str
    value_set: Ref


# --- queries over the record ------------------------------------------------


class Filter(Expr):
    """``conditions where status is active``: keep the items the test holds for.

    Names inside ``condition`` are attributes of one item (see
    ``pathways.schema``).
    """

    kind: Literal["filter"] = "filter"
    source: "AnyExpr"
    condition: "AnyExpr"


class Window(Expr):
    """Keep items whose date falls in a window relative to the as-of date.

    ``last``: the closed window [as-of − amount, as-of]; ``between``: [start, end];
    ``before``/``after``: strictly before or after ``start``.
    """

    kind: Literal["window"] = "window"
    source: "AnyExpr"
    mode: Literal["last", "between", "before", "after"]
    phrase: Literal["in the last", "within"] = "in the last"  # how a ``last`` window was written
    amount: "AnyExpr | None" = None
    start: "AnyExpr | None" = None
    end: "AnyExpr | None" = None


class Aggregate(Expr):
    """count / any / no / sum / min / max / latest / earliest / total stay."""

    kind: Literal["aggregate"] = "aggregate"
    op: Literal["count", "any", "no", "sum", "min", "max", "latest", "earliest", "total_stay"]
    source: "AnyExpr"
    attribute: str | None = None


class PerPeriod(Expr):
    """``lowest count per 3 months of visits in the last 12 months``.

    The windowed source is cut into consecutive periods ending on the as-of
    date; the result is the lowest, highest or average count per period.
    """

    kind: Literal["per_period"] = "per_period"
    op: Literal["lowest", "highest", "average"]
    period: Quantity
    source: "AnyExpr"


class Ago(Expr):
    """``6 months ago`` or ``stable_period ago``: the as-of date minus a
    duration, written out or a duration parameter."""

    kind: Literal["ago"] = "ago"
    amount: "Timing"


class Percentile(Expr):
    """A patient's percentile (0–100) of a value within a group of patients."""

    kind: Literal["percentile"] = "percentile"
    value: "AnyExpr"
    group: str


class InTop(Expr):
    """``gp_visits is in the top 3% of practice``: population-relative test."""

    kind: Literal["in_top"] = "in_top"
    value: "AnyExpr"
    percent: Quantity
    group: str


class Item(Node):
    """One labelled entry of an item list; the label is quoted in explanations."""

    id: str = ""
    span: Span = NOWHERE
    label: str
    expr: "AnyExpr"


class ItemList(Expr):
    """``all of`` / ``any of`` / ``none of`` / ``at least N of`` a list of items."""

    kind: Literal["item_list"] = "item_list"
    quantifier: Literal["all", "any", "none", "at_least"]
    minimum: "AnyExpr | None" = None
    items: tuple[Item, ...]


class ItemsMet(Expr):
    """``items met in published_criteria``: how many items of a list are true."""

    kind: Literal["items_met"] = "items_met"
    target: Ref


class PossibleLevels(Expr):
    """``possible higher levels of level``: the levels above the one assigned
    whose condition is unknown, which recording the missing data might reach."""

    kind: Literal["possible_levels"] = "possible_levels"
    target: Ref


AnyExpr = Annotated[
    Union[
        Quantity, Text, Boolean, DateLiteral, Ref, Not, Negate, Binary, Compare,
        InValueSet, Filter, Window, Aggregate, PerPeriod, Ago, Percentile, InTop,
        ItemList, ItemsMet, PossibleLevels,
    ],
    Field(discriminator="kind"),
]


# --- declarations -----------------------------------------------------------


class Decl(Node):
    id: str = ""
    span: Span = NOWHERE
    name: str
    label: str | None = None
    doc: str | None = None


class Header(Node):
    """The protocol's identity: what an auditor quotes."""

    span: Span = NOWHERE
    name: str
    version: str = ""
    title: str = ""
    status: str = "draft"  # draft, active or retired (checked by the resolver)
    authors: tuple[str, ...] = ()
    citation: str = ""
    description: str = ""
    doc: str | None = None  # the ``##`` comment above the header


class Use(Node):
    """``uses "castlefields.pw" as castlefields``."""

    span: Span = NOWHERE
    path: str
    alias: str
    protocol: "Protocol | None" = None


class Parameter(Decl):
    kind: Literal["parameter"] = "parameter"
    default: AnyExpr


class Code(Node):
    system: str
    code: str
    display: str = ""


class ValueSet(Decl):
    kind: Literal["value_set"] = "value_set"
    codes: tuple[Code, ...] = ()
    source_file: str | None = None


class Definition(Decl):
    """``define`` (any type) or ``criterion`` (must be true/false)."""

    kind: Literal["definition"] = "definition"
    criterion: bool = False
    expr: AnyExpr


class ScoreItem(Node):
    id: str = ""
    span: Span = NOWHERE
    label: str
    weight: float = 1.0
    expr: AnyExpr


class Score(Decl):
    """A weighted sum of the items that hold."""

    kind: Literal["score"] = "score"
    items: tuple[ScoreItem, ...]


class Band(Node):
    id: str = ""
    span: Span = NOWHERE
    name: str
    label: str | None = None
    op: CompareOp | None = None  # None: ``otherwise``
    threshold: AnyExpr | None = None


class Bands(Decl):
    """Named bands of a value; the first band whose test holds wins."""

    kind: Literal["bands"] = "bands"
    value: AnyExpr
    bands: tuple[Band, ...]


class Level(Node):
    id: str = ""
    span: Span = NOWHERE
    number: int
    label: str
    condition: AnyExpr | None = None  # None: the fallback


class Levels(Decl):
    """Ordered levels; first match wins; ``fallback`` when none holds."""

    kind: Literal["levels"] = "levels"
    levels: tuple[Level, ...]
    fallback: Level | None = None  # required; its absence is reported, not crashed on


PATHWAY_EVENTS = (
    "referred", "approached", "consented", "declined", "assessed", "plan_agreed",
    "reviewed", "admitted", "discharged", "exited", "died",
)


class Transition(Node):
    id: str = ""
    span: Span = NOWHERE
    trigger: Literal["event", "when", "after"]
    event: str | None = None  # one of PATHWAY_EVENTS (checked by the resolver)
    condition: AnyExpr | None = None
    delay: Timing | None = None  # a Quantity once compiled (see Quantity.parameter)
    target: str
    target_is_exit: bool = False


class Action(Node):
    """Something due in a step: once ``within`` a time of entering it, or ``every`` period."""

    id: str = ""
    span: Span = NOWHERE
    label: str
    timing: Literal["within", "every"]
    interval: Timing  # a Quantity once compiled (see Quantity.parameter)


class Step(Node):
    id: str = ""
    span: Span = NOWHERE
    name: str
    label: str | None = None
    actions: tuple[Action, ...] = ()
    transitions: tuple[Transition, ...] = ()


class Exit(Node):
    """A way out. With a trigger it applies from every step (the exit criteria)."""

    id: str = ""
    span: Span = NOWHERE
    name: str
    label: str | None = None
    event: str | None = None
    condition: AnyExpr | None = None


class Pathway(Decl):
    kind: Literal["pathway"] = "pathway"
    entry: AnyExpr | None = None
    steps: tuple[Step, ...]
    exits: tuple[Exit, ...] = ()



class PlanItem(Node):
    """A line of a care plan; ``{name}`` in the text is filled from the evaluation."""

    id: str = ""
    span: Span = NOWHERE
    text: str
    role: str | None = None
    condition: AnyExpr | None = None


class Section(Node):
    id: str = ""
    span: Span = NOWHERE
    section: str  # one of schema.SECTION_KINDS (checked by the resolver)
    label: str | None = None
    items: tuple[PlanItem, ...]


class CarePlan(Decl):
    kind: Literal["care_plan"] = "care_plan"
    pathway: str | None = None  # `name`, or `alias.name` for a pathway of an imported protocol
    sections: tuple[Section, ...]


class Fact(Node):
    """One line of a test patient, kept as written; ``dsl.facts`` reads it.

    ``verb`` is the first word (or number) of the line, ``args`` the rest."""

    span: Span = NOWHERE
    verb: str
    args: tuple[str, ...] = ()


class Expectation(Node):
    """``expect NAME is VALUE``; ``value`` is None for ``expect NAME is unknown``."""

    span: Span = NOWHERE
    outcome: str
    value: AnyExpr | None = None


class ReasonExpectation(Node):
    """``expect "LABEL" met`` / ``expect NAME not met`` / ``... unknown``: why, not only what."""

    span: Span = NOWHERE
    label: str | None = None  # a labelled item, found by its label
    name: str | None = None  # or a criterion by (dotted) name
    within: str | None = None  # ``in ALIAS``: which imported protocol the label is in
    state: Literal["met", "not_met", "unknown"]


class ListExpectation(Node):
    """``expect NAME includes 3`` / ``expect NAME does not include 2`` / ``expect NAME is empty``:
    what a list of levels (``possible higher levels of``) holds."""

    span: Span = NOWHERE
    outcome: str
    op: Literal["includes", "excludes", "empty"]
    level: int | None = None  # None for ``is empty``


class StepExpectation(Node):
    """``expect PATHWAY at STEP`` / ``expect PATHWAY at exit EXIT`` / ``expect not on PATHWAY``:
    where the test patient is on a pathway on the test's date."""

    span: Span = NOWHERE
    pathway: str  # dotted for an imported pathway
    at: Literal["step", "exit", "not_on"]
    name: str | None = None  # the step or exit; None for ``not on``


class Override(Node):
    span: Span = NOWHERE
    parameter: str
    value: AnyExpr


class ProtocolTest(Decl):
    """A synthetic patient with expected outcomes (``test "..."``).

    With ``shared`` it is instead a patient declared once for several tests
    (``patient NAME "description":``); ``name`` is then the patient's name.
    """

    kind: Literal["test"] = "test"
    as_of: str | None = None
    overrides: tuple[Override, ...] = ()
    patient: str | None = None  # the shared patient this test starts from
    facts: tuple[Fact, ...] = ()
    ranked_among: tuple[float, ...] = ()
    expectations: tuple[Expectation, ...] = ()
    reasons: tuple[ReasonExpectation, ...] = ()
    lists: tuple[ListExpectation, ...] = ()
    steps: tuple[StepExpectation, ...] = ()
    shared: bool = False


AnyDecl = Annotated[
    Union[Parameter, ValueSet, Definition, Score, Bands, Levels, Pathway, CarePlan, ProtocolTest],
    Field(discriminator="kind"),
]


class Protocol(Node):
    """A compiled protocol: header, imports, declarations in source order."""

    kind: Literal["protocol"] = "protocol"
    header: Header
    file: str = ""
    sha256: str = ""
    uses: tuple[Use, ...] = ()
    declarations: tuple[AnyDecl, ...] = ()
    outcomes: tuple[str, ...] = ()

    def get(self, name: str) -> AnyDecl | None:
        """The declaration called ``name`` (tests excepted), or None."""
        for decl in self.declarations:
            if decl.name == name and decl.kind != "test":
                return decl
        return None

    def find(self, dotted: str) -> AnyDecl | None:
        """The declaration called ``name`` here or ``alias.name`` in an import
        (``case_management.case_management``), or None."""
        alias, _, name = dotted.rpartition(".")
        if not alias:
            return self.get(name)
        use = next((u for u in self.uses if u.alias == alias), None)
        return use.protocol.get(name) if use is not None and use.protocol is not None else None

    def of_kind(self, kind: str) -> list:
        return [d for d in self.declarations if d.kind == kind]


for _cls in (Ago, Transition, Action, Not, Negate, Binary, Compare, Filter, Window, Aggregate, PerPeriod, Percentile,
             InTop, Item, ItemList, ItemsMet, PossibleLevels, Use, Protocol):
    _cls.model_rebuild()
