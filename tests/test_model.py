"""Promises of the compiled model: stable unique ids, spans, JSON round trip, graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import compile_file, compile_text
from pathways import graphs
from pathways import model as m
from pathways.walk import walk

LIBRARY = Path(__file__).resolve().parent.parent / "library"
FILES = sorted(p.name for p in LIBRARY.glob("*.pw"))


def _ids(protocol: m.Protocol) -> dict[str, m.Node]:
    out = {}
    for decl in protocol.declarations:
        for node in walk(decl):
            if "id" in type(node).model_fields:
                assert node.id, node
                assert node.id not in out, f"duplicate id {node.id}"
                out[node.id] = node
    return out


@pytest.mark.parametrize("name", FILES)
def test_every_node_has_a_unique_id_and_a_span(name):
    protocol = compile_file(LIBRARY / name).protocol
    assert protocol is not None
    for node_id, node in _ids(protocol).items():
        assert node_id.startswith(f"{protocol.header.name}.")
        if isinstance(node, (m.Expr, m.Decl, m.Item, m.Step, m.Transition, m.Level)):
            assert node.span != m.NOWHERE, node_id


@pytest.mark.parametrize("name", FILES)
def test_json_round_trip(name):
    protocol = compile_file(LIBRARY / name).protocol
    assert m.Protocol.model_validate_json(protocol.model_dump_json()) == protocol


def test_ids_survive_edits_to_other_declarations():
    source = (LIBRARY / "castlefields.pw").read_text()
    before = compile_text(source, "castlefields.pw", base_dir=LIBRARY).protocol
    edited = source.replace('parameter lookback "Look-back window for hospital use" = 12 months',
                            '## A new note\nparameter lookback "Look-back window" = 24 months\n\n'
                            'define extra "An extra definition": age at least 80 years')
    after = compile_text(edited, "castlefields.pw", base_dir=LIBRARY).protocol
    assert after is not None
    ids_before = {i for i in _ids(before) if not i.startswith(("castlefields.lookback", "castlefields.extra"))}
    ids_after = set(_ids(after))
    assert ids_before <= ids_after
    item = after.get("published_criteria").expr.items[2]
    assert item.id == "castlefields.published_criteria/expr/items.2"
    assert item.label == "two or more hospital admissions in the past 12 months"


def test_references_carry_their_targets():
    protocol = compile_file(LIBRARY / "ltc_pyramid.pw").protocol
    targets = {n.dotted: n.target for n in walk(protocol.get("level")) if isinstance(n, m.Ref)}
    assert targets["castlefields.eligible"] == "import:castlefields:eligible"
    assert targets["complex_needs"] == "decl:complex_needs"
    filt = protocol.get("active_ltcs").expr
    assert isinstance(filt, m.Filter)
    assert filt.source.target == "collection:conditions"
    status = filt.condition.right
    assert (status.left.target, status.right.target) == ("attribute:status", "symbol:active")


def test_items_naming_a_definition_take_its_label():
    protocol = compile_file(LIBRARY / "evercare.pw").protocol
    labels = [i.label for i in protocol.get("nominated").expr.items]
    assert labels[1] == "Recent falls: more than 2 falls in 2 months"


def test_graph_views_are_derived_from_the_model():
    protocol = compile_file(LIBRARY / "ltc_pyramid.pw").protocol
    deps = graphs.dependency_graph(protocol.declarations)
    assert deps.has_edge("level", "complex_needs") and deps.has_edge("ltc_count", "active_ltcs")
    assert graphs.definition_cycles(deps) == []
    pathway = compile_file(LIBRARY / "case_management.pw").protocol.get("case_management")
    states = graphs.state_graph(pathway)
    assert graphs.unreachable_steps(states) == [] and graphs.steps_without_exit(states) == []
    assert states.has_edge("approached", "exit:no_response")
    assert all(states.has_edge(s.name, "exit:died") for s in pathway.steps)
    plan = graphs.care_plan_graph(compile_file(LIBRARY / "case_management_plan.pw").protocol.get("case_management_plan"))
    assert plan.has_edge("case_management_plan", "case_management_plan/contingency")
    assert any(v == "has_copd" for _, v in plan.edges())
