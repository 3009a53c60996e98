"""``logsight kibana import|list``: logsight's data views, saved searches and dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from logsight.cli.common import json_option, print_json, print_table
from logsight.kibana import KibanaError, import_objects, load_objects


@click.group()
def kibana() -> None:
    """Kibana saved objects (data views, saved searches, dashboards)."""


def _load(paths: tuple[Path, ...]) -> list[dict[str, Any]]:
    try:
        return load_objects(list(paths) or None)
    except (ValueError, FileNotFoundError) as e:
        raise click.BadParameter(str(e), param_hint="--objects") from None


@kibana.command("list")
@click.option("--objects", "paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="NDJSON file or directory (default: the kibana/ folder).")
@json_option
def list_(paths: tuple[Path, ...], as_json: bool) -> None:
    """Show the saved objects that 'import' uploads."""
    rows = [{"type": o["type"], "id": o["id"],
             "title": o["attributes"].get("title") or o["attributes"].get("name")}
            for o in _load(paths)]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["type", "id", "title"])


@kibana.command("import")
@click.option("--kibana-url", "url", envvar="KIBANA_URL", default=None,
              help="Kibana base URL, e.g. http://localhost:5601 (env KIBANA_URL); required. "
                   "Named apart from --url, which is the cluster everywhere else.")
@click.option("--url", "old_url", hidden=True, default=None,
              help="The old name of --kibana-url (still accepted).")
@click.option("--api-key", envvar="KIBANA_API_KEY", default=None,
              help="Encoded API key (env KIBANA_API_KEY).")
@click.option("--username", envvar="KIBANA_USERNAME", default=None,
              help="Basic auth user (env KIBANA_USERNAME).")
@click.option("--password", envvar="KIBANA_PASSWORD", default=None,
              help="Basic auth password (env KIBANA_PASSWORD).")
@click.option("--space", envvar="KIBANA_SPACE", default=None, help="Kibana space id.")
@click.option("--ca-certs", envvar="KIBANA_CA_CERTS", default=None,
              type=click.Path(exists=True, dir_okay=False), help="CA bundle for https.")
@click.option("--insecure", is_flag=True, help="Do not verify the TLS certificate.")
@click.option("--objects", "paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="NDJSON file or directory (default: the kibana/ folder).")
@json_option
def import_(url: str | None, old_url: str | None, api_key: str | None, username: str | None,
            password: str | None, space: str | None, ca_certs: str | None, insecure: bool,
            paths: tuple[Path, ...], as_json: bool) -> None:
    """Import (overwrite) the saved objects through Kibana's saved-objects API. Idempotent."""
    url = old_url or url
    if not url:
        raise click.UsageError("give Kibana's URL: --kibana-url URL (or env KIBANA_URL)")
    if password is not None and username is None:
        raise click.BadParameter("--password needs --username", param_hint="--password")
    objects = _load(paths)
    verify: bool | str = False if insecure else (ca_certs or True)
    try:
        result = import_objects(url, objects, api_key=api_key, username=username,
                                password=password, space=space, verify=verify)
    except ValueError as e:
        hint = "--space" if "space id" in str(e) else "--kibana-url"
        raise click.BadParameter(str(e), param_hint=hint) from None
    except KibanaError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        print_json({"success": result.success, "successCount": result.success_count,
                    "errors": result.errors})
    else:
        click.echo(f"imported {result.success_count} of {len(objects)} object(s) into {url}")
        for line in result.error_lines():
            click.echo(f"  error: {line}", err=True)
    if not result.success:
        raise SystemExit(1)
