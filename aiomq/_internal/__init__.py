"""Machinery behind aiomq's public modules; nothing in this package is public API."""
