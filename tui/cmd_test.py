"""`pathways test [PATH...]`: run the tests written in protocols (docs/testing.md)."""

from __future__ import annotations

import sys

import click

#: Exit statuses, as pytest's: all passed, some failed, errors in the tests themselves, none found.
EXIT_PASSED, EXIT_FAILED, EXIT_ERRORS, EXIT_NONE = 0, 1, 2, 5


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--coverage", "show_coverage", is_flag=True,
              help="Also show which criterion items, levels and bands the tests saw true, false and unknown.")
@click.option("-k", "keyword", metavar="TEXT", help="Run only the tests whose description contains TEXT.")
def test(paths: tuple[str, ...], show_coverage: bool, keyword: str | None) -> None:
    """Run the tests in the protocols PATH... (files or folders; default: the current folder).

    Exit 0 when all pass, 1 when some fail, 2 when a test cannot run (its
    protocol does not compile, it has no date...), 5 when there are none.
    """
    from engine.protocol_tests import coverage, discover, run_test

    cases = discover(list(paths) or ["."])
    if keyword:
        cases = [c for c in cases if keyword.lower() in c.name.lower() or c.error is not None]
    if not cases:
        click.echo("no tests found" + (f" matching {keyword!r}" if keyword else ""))
        click.echo("0 passed, 0 failed")
        sys.exit(EXIT_NONE)
    outcomes = []
    for case in cases:
        outcome = run_test(case)
        outcomes.append(outcome)
        click.echo(f"{case.id} {outcome.status.upper()}")
        if outcome.status == "error":
            click.echo(_indent(outcome.message))
        elif outcome.status == "failed":
            for check in outcome.failures:
                for line in check.lines():
                    click.echo(f"  {line}")
            if outcome.explanation:
                click.echo("  why:")
                click.echo(_indent(outcome.explanation, 4))
    passed = sum(o.status == "passed" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    errors = sum(o.status == "error" for o in outcomes)
    if show_coverage:
        click.echo("")
        click.echo(coverage(outcomes).table())
    click.echo(f"{passed} passed, {failed} failed" + (f", {errors} error{'s' if errors != 1 else ''}"
                                                      if errors else ""))
    sys.exit(EXIT_ERRORS if errors else EXIT_FAILED if failed else EXIT_PASSED)


def _indent(text: str, by: int = 2) -> str:
    return "\n".join((" " * by + line) if line else "" for line in text.splitlines())
test.__test__ = False  # a click command named `test`, not a pytest test
