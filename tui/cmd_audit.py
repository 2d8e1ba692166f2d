"""`pathways audit verify LOG`: check an audit log's hash chain."""

from __future__ import annotations

import sys

import click


@click.group()
def audit() -> None:
    """Work with audit logs of evaluations (see docs/service.md)."""


@audit.command()
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@click.option("--head", "expect_head", metavar="SHA256",
              help="The last hash recorded elsewhere earlier: also catches entries removed from the end.")
def verify(log: str, expect_head: str | None) -> None:
    """Check that no entry of LOG was edited, removed, inserted or moved. Exit 0 intact, 1 not."""
    from engine.audit import verify as check

    try:
        result = check(log, expect_head)
    except OSError as exc:
        raise click.ClickException(f"cannot read {log}: {exc.strerror or exc}") from None
    if result.ok:
        click.echo(f"{log}: {result.entries} entr{'y' if result.entries == 1 else 'ies'}, the chain is intact.")
        click.echo(f"last hash: {result.head} (keep it elsewhere and pass it to --head next time)")
        return
    click.echo(f"{log}: the log has been tampered with or damaged ({len(result.problems)} problem"
               f"{'s' if len(result.problems) != 1 else ''}):")
    for problem in result.problems[:50]:
        click.echo(f"  {problem}")
    if len(result.problems) > 50:
        click.echo(f"  ... and {len(result.problems) - 50} more")
    sys.exit(1)
