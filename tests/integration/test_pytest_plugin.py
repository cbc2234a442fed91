"""The `kafka_broker` fixture that installing aiomq gives every pytest suite."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_kafka_broker_fixture_reaches_a_users_suite_through_the_entry_point(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        from aiokafka import AIOKafkaProducer

        def test_produce(kafka_broker):
            async def produce():
                producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
                await producer.start()
                try:
                    return await producer.send_and_wait("user-suite", b"hello")
                finally:
                    await producer.stop()

            assert asyncio.run(produce()).offset == 0

        def test_same_broker_for_the_session(kafka_broker):
            assert kafka_broker.running
        """
    )
    # A subprocess, so that only the installed entry point can have provided the fixture.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
