"""Shared fixtures for the aiomq test suite."""

from __future__ import annotations

pytest_plugins = ["tests.support.brokers", "tests.support.mock_cluster", "tests.support.tls"]
