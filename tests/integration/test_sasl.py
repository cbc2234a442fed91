"""SASL logins, against the embedded broker's SASL front and checked against librdkafka.

Each mechanism is tried with good credentials (a message written and read back), a wrong
secret, an unknown user and a broker that does not offer it. aiomq and confluent-kafka
(librdkafka's own SASL client) must reach the same outcome, so the tests prove the front
refuses and accepts as a Kafka broker does, not only that aiomq agrees with itself. With
compose.yaml's SASL listener, the same logins are held to Apache Kafka itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import pytest
import structlog

import aiomq
from aiomq.testing import EmbeddedBroker, SaslAccounts
from tests.support.sasl_clients import Login, Outcome, aiomq_outcome, librdkafka_outcome

USER = "billing"
PASSWORD = "billing-secret"
TOKEN = "token-of-billing"
PASSWORD_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ALL_MECHANISMS = [*PASSWORD_MECHANISMS, "OAUTHBEARER"]


def token_check(token: str) -> bool:
    return token == TOKEN


def accounts(mechanisms: list[str]) -> SaslAccounts:
    oauth = "OAUTHBEARER" in mechanisms
    return SaslAccounts(
        users={USER: PASSWORD, "shipping": "shipping-secret"},
        mechanisms=mechanisms,
        token_check=token_check if oauth else None,
    )


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(sasl=accounts(ALL_MECHANISMS)) as broker:
        yield broker


async def same_outcome(servers: str, login: Login) -> Outcome:
    """Both clients' outcome, asserted equal."""
    ours = await aiomq_outcome(servers, login)
    theirs = await asyncio.to_thread(librdkafka_outcome, servers, login)
    assert ours == theirs, f"aiomq: {ours}, librdkafka: {theirs}"
    return ours


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
async def test_good_credentials_log_in_and_round_trip_a_message_with_both_clients(
    sasl_broker: EmbeddedBroker, mechanism: str
) -> None:
    secret = TOKEN if mechanism == "OAUTHBEARER" else PASSWORD
    login = Login(mechanism, USER if mechanism != "OAUTHBEARER" else "", secret)
    assert await same_outcome(sasl_broker.bootstrap_servers, login) == "authenticated"


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
async def test_a_wrong_secret_is_refused_by_both_clients(
    sasl_broker: EmbeddedBroker, mechanism: str
) -> None:
    if mechanism == "OAUTHBEARER":
        login = Login(mechanism, "", "a-forged-token")
    else:
        # Another user's password: right for someone, wrong for this user.
        login = Login(mechanism, USER, "shipping-secret")
    assert await same_outcome(sasl_broker.bootstrap_servers, login) == "bad credentials"


@pytest.mark.parametrize("mechanism", PASSWORD_MECHANISMS)
async def test_an_unknown_user_is_refused_by_both_clients(
    sasl_broker: EmbeddedBroker, mechanism: str
) -> None:
    login = Login(mechanism, "nobody", PASSWORD)
    assert await same_outcome(sasl_broker.bootstrap_servers, login) == "bad credentials"


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
async def test_a_mechanism_the_broker_does_not_offer_is_refused_by_both_clients(
    mechanism: str,
) -> None:
    others = [m for m in ALL_MECHANISMS if m != mechanism]
    secret = TOKEN if mechanism == "OAUTHBEARER" else PASSWORD
    login = Login(mechanism, USER if mechanism != "OAUTHBEARER" else "", secret)
    async with EmbeddedBroker(sasl=accounts(others)) as broker:
        assert await same_outcome(broker.bootstrap_servers, login) == "bad mechanism"


async def test_the_writer_error_names_mechanism_and_user_but_not_the_secret(
    sasl_broker: EmbeddedBroker, topic: str
) -> None:
    dialer = aiomq.Dialer(sasl=aiomq.ScramSha512(username=USER, password="wrong-secret"))
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(aiomq.AuthenticationError) as caught,
    ):
        async with aiomq.Writer(
            brokers=[sasl_broker.bootstrap_servers], topic=topic, dialer=dialer
        ):
            pass
    assert "SCRAM-SHA-512" in str(caught.value)
    assert USER in str(caught.value)
    assert caught.value.username == USER
    # The front's own log lines are captured too: they name the user, never a secret.
    assert any(e.get("event") == "sasl_login_refused" and e.get("user") == USER for e in logs)
    assert "wrong-secret" not in str(caught.value) + repr(caught.value) + str(logs)


MECHANISMS: list[Callable[[str, str], aiomq.SaslMechanism]] = [
    lambda user, password: aiomq.Plain(username=user, password=password),
    lambda user, password: aiomq.ScramSha256(username=user, password=password),
    lambda user, password: aiomq.ScramSha512(username=user, password=password),
]


@pytest.mark.parametrize("make", MECHANISMS, ids=PASSWORD_MECHANISMS)
async def test_a_broker_without_sasl_gives_a_clear_error_naming_mechanism_and_user(
    bootstrap_servers: str, topic: str, make: Callable[[str, str], aiomq.SaslMechanism]
) -> None:
    if os.environ.get("AIOMQ_BOOTSTRAP_SERVERS"):
        pytest.skip("the plaintext listener of an external broker may accept SASL")
    sasl = make(USER, "hunter2-secret")
    writer = aiomq.Writer(
        brokers=[bootstrap_servers], topic=topic, dialer=aiomq.Dialer(sasl=sasl, timeout=5.0)
    )
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(aiomq.AuthenticationError) as caught,
    ):
        await writer.__aenter__()
    message = str(caught.value)
    assert sasl.mechanism_name in message
    assert USER in message
    assert caught.value.username == USER
    assert "hunter2-secret" not in message + repr(caught.value) + str(logs)


def _kafka_sasl_listener() -> tuple[str, str, str]:
    servers = os.environ.get("AIOMQ_SASL_BOOTSTRAP_SERVERS")
    user = os.environ.get("AIOMQ_SASL_USERNAME")
    password = os.environ.get("AIOMQ_SASL_PASSWORD")
    if not (servers and user and password):
        pytest.fail(
            "this test needs AIOMQ_SASL_BOOTSTRAP_SERVERS, AIOMQ_SASL_USERNAME and "
            "AIOMQ_SASL_PASSWORD (compose.yaml: localhost:9094, aiomq, aiomq-secret)"
        )
    return servers.split(",")[0], user, password


@pytest.mark.external_broker(
    "holds the SASL front to Apache Kafka: the same logins, the same outcomes"
)
async def test_apache_kafka_gives_the_outcomes_the_front_gives() -> None:
    servers, user, password = _kafka_sasl_listener()
    for mechanism in PASSWORD_MECHANISMS:
        assert await same_outcome(servers, Login(mechanism, user, password)) == "authenticated"
        wrong = Login(mechanism, user, password + "-wrong")
        assert await same_outcome(servers, wrong) == "bad credentials"
        unknown = Login(mechanism, user + "-unknown", password)
        assert await same_outcome(servers, unknown) == "bad credentials"
    # compose.yaml's listener offers no OAUTHBEARER.
    oauth = Login("OAUTHBEARER", "", TOKEN)
    assert await same_outcome(servers, oauth) == "bad mechanism"
