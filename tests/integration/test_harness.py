"""The test harness's own promises: external-broker tests are counted, never silently passed."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_tests_needing_an_external_broker_are_counted_with_their_reasons(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOMQ_BOOTSTRAP_SERVERS", raising=False)
    pytester.makeconftest('pytest_plugins = ["tests.support.brokers"]')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.external_broker("timestamp look-ups")
        def test_needs_kafka():
            raise AssertionError("must not run without an external broker")

        @pytest.mark.external_broker("timestamp look-ups")
        def test_needs_kafka_too():
            raise AssertionError("must not run without an external broker")

        @pytest.mark.external_broker("SASL")
        def test_needs_sasl():
            raise AssertionError("must not run without an external broker")

        def test_runs_everywhere():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*3 test(s) did not run: no external broker*",
            "*1 x SASL*",
            "*2 x timestamp look-ups*",
        ]
    )


def test_an_external_broker_marker_without_a_reason_is_an_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIOMQ_BOOTSTRAP_SERVERS", raising=False)
    pytester.makeconftest('pytest_plugins = ["tests.support.brokers"]')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.external_broker
        def test_without_reason():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*external_broker needs a reason*"])
