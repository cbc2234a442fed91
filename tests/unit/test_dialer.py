"""Dialer settings: validation, secrets kept out of sight, and the connection settings derived."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

import aiomq
from aiomq._internal.kafka.connect import connection_options


def test_no_dialer_means_plaintext() -> None:
    assert connection_options(None) == {"security_protocol": "PLAINTEXT"}


def test_tls_alone_means_ssl() -> None:
    context = ssl.create_default_context()
    options = connection_options(aiomq.Dialer(tls=context))
    assert options == {"security_protocol": "SSL", "ssl_context": context}


@pytest.mark.parametrize(
    ("mechanism", "name"),
    [
        (aiomq.Plain, "PLAIN"),
        (aiomq.ScramSha256, "SCRAM-SHA-256"),
        (aiomq.ScramSha512, "SCRAM-SHA-512"),
    ],
)
def test_each_password_mechanism_maps_to_its_sasl_settings(
    mechanism: type[aiomq.Plain | aiomq.ScramSha256 | aiomq.ScramSha512], name: str
) -> None:
    sasl = mechanism(username="billing", password="s3cret")
    plain = connection_options(aiomq.Dialer(sasl=sasl))
    assert plain == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": name,
        "sasl_plain_username": "billing",
        "sasl_plain_password": "s3cret",
    }
    tls = connection_options(aiomq.Dialer(sasl=sasl, tls=ssl.create_default_context()))
    assert tls["security_protocol"] == "SASL_SSL"


async def test_oauthbearer_asks_the_token_provider() -> None:
    async def provide() -> str:
        return "token-123"

    options = connection_options(aiomq.Dialer(sasl=aiomq.OAuthBearer(token_provider=provide)))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert await options["sasl_oauth_token_provider"].token() == "token-123"


def test_secrets_never_appear_in_a_repr_or_str() -> None:
    for mechanism in (aiomq.Plain, aiomq.ScramSha256, aiomq.ScramSha512):
        sasl = mechanism(username="billing", password="hunter2")
        dialer = aiomq.Dialer(sasl=sasl)
        writer = aiomq.Writer(brokers=["b:9092"], dialer=dialer)
        for text in (repr(sasl), str(sasl), repr(dialer), repr(writer.config), repr(writer)):
            assert "hunter2" not in text
        assert "billing" in repr(dialer)


def test_a_missing_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(aiomq.ConfigError, match="billing") as caught:
        aiomq.ScramSha512(username="billing", password="")
    assert "password" in str(caught.value)


def test_a_password_of_the_wrong_type_is_not_echoed() -> None:
    with pytest.raises(aiomq.ConfigError) as caught:
        aiomq.Plain(username="billing", password=1234567)  # type: ignore[arg-type]
    assert "1234567" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"client_id": ""}, "client_id"),
        ({"tls": "yes"}, "tls"),
        ({"sasl": ("user", "pass")}, "sasl"),
    ],
)
def test_invalid_dialer_settings_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(aiomq.ConfigError, match=field):
        aiomq.Dialer(**options)  # type: ignore[arg-type]


def test_tls_context_verifies_by_default() -> None:
    context = aiomq.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_tls_context_can_turn_verification_off_for_test_brokers() -> None:
    context = aiomq.tls_context(verify=False)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_tls_context_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(aiomq.ConfigError, match=r"nope\.pem"):
        aiomq.tls_context(ca_file=missing)


def test_a_key_without_a_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(aiomq.ConfigError, match="cert_file"):
        aiomq.tls_context(key_file=tmp_path / "client.key")


def test_the_dialers_client_id_applies_unless_the_client_sets_its_own() -> None:
    dialer = aiomq.Dialer(client_id="billing-service")
    assert aiomq.WriterConfig(brokers=["b:1"], dialer=dialer).effective_client_id == (
        "billing-service"
    )
    own = aiomq.ReaderConfig(brokers=["b:1"], topic="t", dialer=dialer, client_id="mine")
    assert own.effective_client_id == "mine"
    assert aiomq.WriterConfig(brokers=["b:1"]).effective_client_id == "aiomq"
