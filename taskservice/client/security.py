"""Where a client connects and how it proves itself: the address, a bearer token, TLS and mutual TLS."""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_ENV = "TASKSERVICE_ADDR"
TOKEN_ENV = "TASKSERVICE_TOKEN"
TLS_CA_ENV = "TASKSERVICE_TLS_CA"
CLIENT_CERT_ENV = "TASKSERVICE_CLIENT_CERT"
CLIENT_KEY_ENV = "TASKSERVICE_CLIENT_KEY"


def resolve_address(address: str | None) -> str:
    """The address to dial: the given one, else $TASKSERVICE_ADDR, else 127.0.0.1:50051."""
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


@dataclass(frozen=True)
class Security:
    """How a client proves itself and checks the server. Each field defaults to its environment variable.

    `tls_ca` (a PEM file) turns TLS on and is the CA that signed the server's certificate; `tls_cert` and
    `tls_key` add a client certificate for mutual TLS; `token` is sent as `authorization: Bearer <token>`.
    """

    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    @classmethod
    def resolve(cls, *, token: str | None, tls_ca: str | None, tls_cert: str | None, tls_key: str | None) -> Security:
        env = os.environ
        return cls(
            token=token or env.get(TOKEN_ENV) or None,
            tls_ca=tls_ca or env.get(TLS_CA_ENV) or None,
            tls_cert=tls_cert or env.get(CLIENT_CERT_ENV) or None,
            tls_key=tls_key or env.get(CLIENT_KEY_ENV) or None,
        )

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("a client certificate needs both tls_cert and tls_key")
        return grpc.ssl_channel_credentials(
            root_certificates=_read_file(self.tls_ca, "TLS CA") if self.tls_ca else None,
            private_key=_read_file(self.tls_key, "TLS key") if self.tls_key else None,
            certificate_chain=_read_file(self.tls_cert, "TLS certificate") if self.tls_cert else None,
        )

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from exc
