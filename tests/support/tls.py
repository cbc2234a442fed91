"""TLS for tests: a certificate authority made at test time, and a TLS terminator in front of
the embedded broker (which speaks plaintext only), advertised as the broker's address.

Fixtures:
    tls_broker: a broker reachable over TLS, with the files a client needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiomq.testing import EmbeddedBroker


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class CertificateAuthority:
    """A throw-away CA that signs server certificates for the names asked."""

    def __init__(self, directory: Path, name: str) -> None:
        self._directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}-ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, dns: list[str], ips: list[str]) -> tuple[Path, Path]:
        """Sign a server certificate; return (certificate file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file = self._directory / f"{stem}.pem"
        key_file = self._directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_file)
        return cert_file, key_file


class TLSProxy:
    """Accepts TLS connections and forwards their plaintext to a backend, in its own thread.

    It runs its own event loop, so it serves tests whatever loop they run on.
    """

    def __init__(self, port: int, backend: tuple[str, int], context: ssl.SSLContext) -> None:
        self.port = port
        self._backend = backend
        self._context = context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"tls-proxy-{port}", daemon=True)

    def __enter__(self) -> TLSProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self._context)
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._backend)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TLSBroker:
    """A broker behind TLS, and what a client needs to reach it (or to fail to)."""

    bootstrap_servers: str
    """The TLS address, also advertised by the broker in its metadata."""
    plaintext_servers: str
    """The broker's own plaintext address (its metadata still advertises the TLS one)."""
    ca_file: Path
    """The CA that signed the broker's certificate."""
    other_ca_file: Path
    """A CA that signed nothing the broker uses."""
    wrong_host_servers: str
    """A TLS address whose certificate names another host."""


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return context


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBroker]:
    """An embedded broker behind a TLS terminator, with a CA made for this test run."""
    directory = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority(directory, "aiomq-test")
    other = CertificateAuthority(directory, "aiomq-other")
    good = ca.issue("broker", dns=["localhost"], ips=["127.0.0.1"])
    wrong = ca.issue("elsewhere", dns=["elsewhere.invalid"], ips=[])
    tls_port, wrong_port = free_port(), free_port()
    with EmbeddedBroker(advertised_port=tls_port) as broker:
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        backend = (host, int(port))
        with (
            TLSProxy(tls_port, backend, _server_context(*good)),
            TLSProxy(wrong_port, backend, _server_context(*wrong)),
        ):
            yield TLSBroker(
                bootstrap_servers=f"127.0.0.1:{tls_port}",
                plaintext_servers=broker.bootstrap_servers,
                ca_file=ca.ca_file,
                other_ca_file=other.ca_file,
                wrong_host_servers=f"127.0.0.1:{wrong_port}",
            )
