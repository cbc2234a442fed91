"""Moved to `aiomq._internal.kafka.connect`; kept until every importer has moved there."""

from __future__ import annotations

from aiomq._internal.kafka.connect import connection_options as connection_options
from aiomq._internal.kafka.connect import diagnose_bootstrap as diagnose_bootstrap
from aiomq._internal.kafka.connect import open_client as open_client

__all__ = ["connection_options", "diagnose_bootstrap", "open_client"]
