"""Server TLS credentials from PEM files: TLS with --tls-cert/--tls-key, mutual TLS with --tls-client-ca."""

from __future__ import annotations

from pathlib import Path

import grpc

from taskservice.server.settings import Settings


class TLSConfigError(Exception):
    """A TLS file is missing, unreadable or not PEM."""


def _read_pem(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise TLSConfigError(f"the {what} {path} is not a PEM file")
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """None without --tls-cert (plaintext); with --tls-client-ca, clients must present a certificate it signed."""
    if not settings.tls_cert:
        return None
    cert = _read_pem(settings.tls_cert, "TLS certificate (--tls-cert)")
    key = _read_pem(settings.tls_key, "TLS private key (--tls-key)")
    client_ca = _read_pem(settings.tls_client_ca, "client CA (--tls-client-ca)") if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
