"""``kubetrail certs``: development certificates and token hashes."""

from __future__ import annotations

import sys

import click

from .options import handle_errors


@click.group()
def certs() -> None:
    """Certificates and credentials for the collector."""


@certs.command()
@click.option(
    "--out", "out_dir", default="certs", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--cluster", default="dev", show_default=True, help="Client certificate CN/SAN.")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Server certificate DNS name or IP (repeatable) [default: localhost, 127.0.0.1, ::1].",
)
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1))
@handle_errors
def dev(out_dir: str, cluster: str, hosts: tuple[str, ...], days: int) -> None:
    """Write a dev CA, a server certificate and a client certificate for CLUSTER (not for
    production)."""
    from ..certs import write_dev_certs

    paths = write_dev_certs(
        out_dir, cluster=cluster, hosts=hosts or ("localhost", "127.0.0.1", "::1"), days=days
    )
    for label, path in (
        ("CA", paths.ca),
        ("server certificate", paths.server),
        ("server key", paths.server_key),
        ("client certificate", paths.client),
        ("client key", paths.client_key),
    ):
        click.echo(f"{label + ':':20} {path}")
    click.echo(
        f"serve:   kubetrail serve --tls-cert {paths.server} --tls-key {paths.server_key} "
        f"--client-ca {paths.ca}"
    )


@certs.command("hash-token")
@click.argument("token", required=False)
def hash_token_command(token: str | None) -> None:
    """Print the SHA-256 of TOKEN (or of the first line of stdin) for `token_sha256`."""
    from ..web.auth import hash_token

    value = token if token is not None else sys.stdin.readline().strip()
    if not value:
        raise click.UsageError("no token given")
    click.echo(hash_token(value))


@certs.command("new-token")
def new_token_command() -> None:
    """Print a new random token and its SHA-256 (put the hash in the config)."""
    from ..web.auth import hash_token, new_token

    token = new_token()
    click.echo(f"token:        {token}")
    click.echo(f"token_sha256: {hash_token(token)}")


@certs.command("hash-password")
@click.argument("password", required=False)
def hash_password_command(password: str | None) -> None:
    """Print the scrypt hash of PASSWORD (or of the first line of stdin) for a web user's
    `password_hash`."""
    from ..web.passwords import hash_password

    value = password if password is not None else sys.stdin.readline().rstrip("\n")
    if not value:
        raise click.UsageError("no password given")
    click.echo(hash_password(value))
