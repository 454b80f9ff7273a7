"""The ``flask session`` command group: inspect and manage stored sessions."""

from __future__ import annotations

import collections.abc as cabc
import json
import typing as t

import click
from flask import current_app
from flask.cli import AppGroup

from .serialization import COOKIE_MEMBER
from .serialization import encode

if t.TYPE_CHECKING:
    from .stores.base import Store

session_cli = AppGroup("session", help="Inspect and manage stored sessions.")

_T = t.TypeVar("_T")


def _store() -> Store:
    extension = current_app.extensions.get("connect_session")
    if extension is None:
        raise click.ClickException("ConnectSession is not set up on this app")
    return t.cast("Store", extension.store)


def _run(operation: str, call: cabc.Callable[[], _T]) -> _T:
    """Run a store operation; a missing one or a failure is a clear error."""
    store = _store()
    try:
        return call()
    except NotImplementedError:
        raise click.ClickException(
            f"{type(store).__name__} cannot {operation} (the store does not implement it)"
        ) from None
    except Exception as exc:
        raise click.ClickException(f"{type(store).__name__}.{operation} failed: {exc!r}") from exc


@session_cli.command("count")
def count_command() -> None:
    """Print the number of live sessions."""
    click.echo(_run("length", lambda: _store().length()))


@session_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(as_json: bool) -> None:
    """List live sessions: id, expiry and size."""
    sessions = _run("all", lambda: _store().all())
    rows = [
        {
            "id": sid,
            "expires": (document.get(COOKIE_MEMBER) or {}).get("expires"),
            "size": len(encode(document)),
        }
        for sid, document in sorted(sessions.items())
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']}\t{row['expires'] or 'browser-session'}\t{row['size']} bytes")


@session_cli.command("show")
@click.argument("sid")
def show_command(sid: str) -> None:
    """Print the stored document of session SID."""
    document = _run("get", lambda: _store().get(sid))
    if document is None:
        raise click.ClickException(f"no session {sid!r}")
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@session_cli.command("delete")
@click.argument("sid")
def delete_command(sid: str) -> None:
    """Delete session SID."""
    _run("destroy", lambda: _store().destroy(sid))
    click.echo(f"deleted {sid}")


@session_cli.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(yes: bool) -> None:
    """Delete every session."""
    if not yes:
        click.confirm("Delete every stored session?", abort=True)
    _run("clear", lambda: _store().clear())
    click.echo("cleared")


@session_cli.command("prune")
def prune_command() -> None:
    """Remove expired sessions where the store does not do it by itself."""
    removed = _run("prune", lambda: _store().prune())
    click.echo(f"pruned {removed} expired session(s)")
