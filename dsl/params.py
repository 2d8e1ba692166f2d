"""Overriding parameters: a caller, a test or the command line changes a
threshold without editing the protocol.

Values are written as in the language (``12 months``, ``£150``, ``2``), so
the same unit rules apply: ``minimum_age=65`` is refused with the same help
as in a protocol (write ``65 years``).
"""

from __future__ import annotations

from pathways import model as m
from pathways import schema

from .diagnostics import Diagnostic, Sink, did_you_mean
from .parser import parse
from .syntax_errors import date_like
from .typecheck import Checker
from .unit import Unit


def parse_value(text: str, what: str) -> tuple[m.Expr | None, list[Diagnostic]]:
    """Read one literal value (number with unit, money, date, text, true/false)."""
    sink = Sink(what)
    syntax = parse(f"parameter value = {text}\n", sink)
    date = date_like(text, 0)
    # a slip the parser recognised (`12 monts`: did you mean `months`?) or a date written
    # another way (`01/05/2024`) says more than the list of what a value can be
    specific = date[2] if date else next((d.help for d in sink.items
                                          if d.help and d.help.startswith("did you mean")), None)
    if sink.items or not syntax.statements:
        return None, [Diagnostic(code="PW700", severity="error", file=what,
                                 message=f"{text!r} is not a value ({what})", help=specific or _VALUES)]
    value = syntax.statements[0].node.default
    if not isinstance(value, (m.Quantity, m.Text, m.Boolean, m.DateLiteral)):
        return None, [Diagnostic(code="PW700", severity="error", file=what,
                                 message=f"{text!r} is not a plain value ({what})", help=specific or _VALUES)]
    return value, []


_VALUES = "write e.g. `3`, `12 months`, `£100`, `2024-04-01`, `true` or text in double quotes"


def _type(value: m.Expr) -> schema.Type:
    return Checker(Unit(file="", source="", sink=Sink())).expr(value)


def override(protocol: m.Protocol, values: dict[str, str]) -> tuple[m.Protocol | None, list[Diagnostic]]:
    """A copy of ``protocol`` with parameter defaults replaced.

    Keys are parameter names, or ``alias.name`` for a parameter of an
    imported protocol. Returns (None, diagnostics) if any key or value is wrong.

    >>> from dsl.compiler import compile_text
    >>> p = compile_text('protocol p:\\n  version "1"\\nparameter window = 12 months\\n').protocol
    >>> q, problems = override(p, {"window": "24 months"})
    >>> q.get("window").default.value, problems
    (24.0, [])
    >>> _, problems = override(p, {"window": "24"})
    >>> problems[0].message
    'parameter `window` is a duration; 24 is a number'
    """
    problems: list[Diagnostic] = []
    by_alias: dict[str, dict[str, str]] = {}
    local: dict[str, m.Expr] = {}
    for key, text in values.items():
        alias, _, name = key.rpartition(".")
        if alias:
            by_alias.setdefault(alias, {})[name] = text
            continue
        decl = protocol.get(name)
        if not isinstance(decl, m.Parameter):
            params = [d.name for d in protocol.declarations if isinstance(d, m.Parameter)]
            problems.append(Diagnostic(code="PW701", severity="error", file=protocol.file,
                                       message=f"`{protocol.header.name}` has no parameter `{name}`",
                                       help=did_you_mean(name, params) or f"parameters: {', '.join(params) or 'none'}"))
            continue
        value, errs = parse_value(text, f"parameter {key}")
        problems.extend(errs)
        if value is None:
            continue
        want, got = _type(decl.default), _type(value)
        if want != got:
            hint = None
            if isinstance(value, m.Quantity) and want.detail == "duration" and value.unit == "count":
                hint = f"write the unit, e.g. `{text} months` or `{text} years`"
            elif isinstance(value, m.Quantity) and want.detail == "gbp" and value.unit == "count":
                hint = f"write the amount in pounds: `£{text}`"
            problems.append(Diagnostic(code="PW702", severity="error", file=protocol.file, span=decl.span,
                                       message=f"parameter `{key}` is {_article(want)}; {text} is {_article(got)}",
                                       help=hint))
            continue
        local[name] = value.model_copy(update={"id": decl.default.id, "span": decl.default.span})
    uses = []
    for use in protocol.uses:
        inner = by_alias.pop(use.alias, None)
        if inner and use.protocol is not None:
            replaced, errs = override(use.protocol, inner)
            problems.extend(errs)
            use = use.model_copy(update={"protocol": replaced})
        uses.append(use)
    for alias in by_alias:
        problems.append(Diagnostic(code="PW703", severity="error", file=protocol.file,
                                   message=f"`{protocol.header.name}` imports nothing called `{alias}`",
                                   help=did_you_mean(alias, [u.alias for u in protocol.uses])))
    if problems:
        return None, problems
    decls = tuple(d.model_copy(update={"default": local[d.name]}) if d.name in local else d
                  for d in protocol.declarations)
    return protocol.model_copy(update={"declarations": decls, "uses": tuple(uses)}), []


def _article(t: schema.Type) -> str:
    text = str(t)
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"
