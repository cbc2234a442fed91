"""SaslAccounts: its defaults, its refusals, and the secrets it never shows."""

from __future__ import annotations

from typing import Any

import pytest

from aiomq import ConfigError
from aiomq._internal.sasl_server import Logins, Refused
from aiomq.testing import EmbeddedBroker, SaslAccounts


def accept_all(token: str) -> bool:
    return True


def test_users_alone_offer_the_three_password_mechanisms() -> None:
    accounts = SaslAccounts(users={"billing": "secret"})
    assert accounts.mechanisms == ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def test_a_token_check_alone_offers_oauthbearer() -> None:
    assert SaslAccounts(token_check=accept_all).mechanisms == ("OAUTHBEARER",)


def test_users_and_a_token_check_offer_all_four_mechanisms() -> None:
    accounts = SaslAccounts(users={"billing": "secret"}, token_check=accept_all)
    assert accounts.mechanisms == ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def test_listed_mechanisms_are_kept_in_their_order() -> None:
    accounts = SaslAccounts(users={"a": "b"}, mechanisms=["SCRAM-SHA-512", "PLAIN"])
    assert accounts.mechanisms == ("SCRAM-SHA-512", "PLAIN")


def test_the_accounts_do_not_change_when_the_callers_dict_does() -> None:
    users = {"billing": "secret"}
    accounts = SaslAccounts(users=users)
    users["intruder"] = "x"
    assert list(accounts.users) == ["billing"]
    with pytest.raises(TypeError):
        accounts.users["intruder"] = "x"  # type: ignore[index]


def test_the_repr_names_users_but_shows_no_password() -> None:
    text = repr(SaslAccounts(users={"billing": "hunter2-secret"}, token_check=accept_all))
    assert "billing" in text
    assert "hunter2-secret" not in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "needs users, a token_check, or both"),
        ({"users": [("billing", "secret")]}, "users maps user names to passwords"),
        ({"users": {"": "secret"}}, "user name must be a non-empty string"),
        ({"users": {"billing": ""}}, "'billing' needs a non-empty password"),
        ({"users": {"billing": 42}}, "'billing' needs a non-empty password"),
        ({"users": {"a": "b"}, "mechanisms": "PLAIN"}, "mechanisms is a list"),
        ({"users": {"a": "b"}, "mechanisms": []}, "mechanisms is empty"),
        ({"users": {"a": "b"}, "mechanisms": ["GSSAPI"]}, "does not offer 'GSSAPI'"),
        ({"users": {"a": "b"}, "mechanisms": ["PLAIN", "PLAIN"]}, "PLAIN more than once"),
        ({"users": {"a": "b"}, "mechanisms": ["OAUTHBEARER"]}, "OAUTHBEARER needs token_check"),
        ({"token_check": accept_all, "mechanisms": ["PLAIN"]}, "PLAIN checks passwords"),
        (
            {"users": {"a": "b"}, "token_check": accept_all, "mechanisms": ["PLAIN"]},
            "token_check is only used by OAUTHBEARER",
        ),
        ({"token_check": "secret-token"}, "token_check must be a function"),
    ],
)
def test_invalid_accounts_are_refused_with_a_sentence_to_act_on(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        SaslAccounts(**arguments)
    assert "secret-token" not in str(caught.value)


def test_a_password_scram_cannot_use_is_refused_without_showing_it() -> None:
    # SASLprep prohibits control characters such as U+0007.
    with pytest.raises(ConfigError, match="'billing' cannot be used with SCRAM-SHA-256") as caught:
        Logins(users={"billing": "bell\u0007"}, mechanisms=("SCRAM-SHA-256",), token_check=None)
    assert "bell" not in str(caught.value)


def test_sasl_and_an_advertised_address_are_refused_together() -> None:
    accounts = SaslAccounts(users={"a": "b"})
    with pytest.raises(ConfigError, match="either sasl or advertised_host"):
        EmbeddedBroker(sasl=accounts, advertised_port=9092)


def test_sasl_takes_sasl_accounts() -> None:
    with pytest.raises(ConfigError, match="SaslAccounts"):
        EmbeddedBroker(sasl={"billing": "secret"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"billing\0secret", "expected 3 tokens, got 2"),
        (b"\0\0secret", "username not specified"),
        (b"\0billing\0", "password not specified"),
        (b"shipping\0billing\0secret", "authorization id that is different from username"),
        (b"\0billing\0wrong", "Invalid username or password"),
        (b"\0nobody\0secret", "Invalid username or password"),
    ],
)
def test_plain_refuses_as_kafka_does(token: bytes, message: str) -> None:
    logins = Logins(users={"billing": "secret"}, mechanisms=("PLAIN",), token_check=None)
    with pytest.raises(Refused, match=message):
        logins.exchange("PLAIN").step(token)


def test_plain_accepts_an_authorization_id_equal_to_the_user() -> None:
    logins = Logins(users={"billing": "secret"}, mechanisms=("PLAIN",), token_check=None)
    assert logins.exchange("PLAIN").step(b"billing\0billing\0secret") == (b"", True)


@pytest.mark.parametrize(
    "token",
    [b"auth=Bearer good\x01\x01", b"n,,\x01host=x\x01\x01", b"n,,\x01auth=Bearer bad\x01\x01"],
    ids=["no-gs2-header", "no-bearer", "refused-token"],
)
def test_oauthbearer_refuses_malformed_or_refused_tokens(token: bytes) -> None:
    logins = Logins(users={}, mechanisms=("OAUTHBEARER",), token_check=lambda t: t == "good")
    with pytest.raises(Refused):
        logins.exchange("OAUTHBEARER").step(token)


def test_oauthbearer_counts_a_failing_check_as_a_refusal() -> None:
    def check(token: str) -> bool:
        raise RuntimeError("token service down")

    logins = Logins(users={}, mechanisms=("OAUTHBEARER",), token_check=check)
    with pytest.raises(Refused, match="bearer token was refused"):
        logins.exchange("OAUTHBEARER").step(b"n,,\x01auth=Bearer good\x01\x01")


def test_oauthbearer_accepts_a_good_token_with_extensions() -> None:
    logins = Logins(users={}, mechanisms=("OAUTHBEARER",), token_check=lambda t: t == "good")
    token = b"n,a=billing,\x01auth=Bearer good\x01traceId=42\x01\x01"
    assert logins.exchange("OAUTHBEARER").step(token) == (b"", True)
