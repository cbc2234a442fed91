"""The seam: the one package of aiomq that names aiokafka's private parts.

aiokafka's public API (its consumer and producer, `aiokafka.errors`, `aiokafka.structs`)
does not offer everything aiomq does: its own record batches and produce requests, the
metadata request that does not create topics, messages built straight from fetched
records. For those, aiomq uses aiokafka's protocol classes, record encoder, client and
fetcher, which aiokafka may change in any release. They are named here and nowhere else:

- `errors`: the Kafka error codes aiomq acts on (`ErrorCode`), and the mapping of
  aiokafka's exceptions to aiomq's.
- `requests`: reading a response's nested entries by field name.
- `connect`: a `Dialer` as aiokafka's connection settings; a failed bootstrap diagnosed.
- `metadata`: the partitions of a topic, and the one loop that asks any broker.
- `produce`: encoding a record batch, sending it in a produce request, reading the answer.
- `client`: aiokafka's cluster client behind the operations the Writer and the admin
  Client need.
- `admin`: the admin requests, including the versions aiokafka lacks, and the decoding of
  a group member's assignment.
- `record_hook`: the fetcher hook that builds `Message`s straight from record batches.
- `consumer`: the parts of aiokafka's consumer a Reader reaches beyond its public API.
- `transaction`: the transaction protocol's requests, one function each, including the
  versions aiokafka lacks (InitProducerId v3, TxnOffsetCommit v3).

Importing the package checks that each private part listed in `INTERNALS` (in
`internals`) is there, with
the shape aiomq expects, so that an aiokafka outside the supported range fails at import,
with an `ImportError` naming its version and the part, rather than mid-write.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any, Final

from aiomq._internal.kafka.internals import INTERNALS, Internal

__all__ = ["INTERNALS", "SUPPORTED_AIOKAFKA", "Internal", "check"]

SUPPORTED_AIOKAFKA: Final = ">=0.14,<0.15"
"""The aiokafka versions aiomq is tested with, as in its package requirements."""


def check(internals: Iterable[Internal] = INTERNALS) -> None:
    """Check that the installed aiokafka has every part in `internals`, with its shape.

    Raises:
        ImportError: A part is missing or has another shape; the message names the
            installed aiokafka version, each such part and what aiomq uses it for.
    """
    problems = [
        f"{internal.part} {problem} (aiomq uses it for {internal.used_for})"
        for internal in internals
        if (problem := _problem(internal)) is not None
    ]
    if problems:
        raise ImportError(
            f"aiomq cannot use aiokafka {_installed()}: "
            + "; ".join(problems)
            + f". aiomq supports aiokafka{SUPPORTED_AIOKAFKA}.",
            name="aiokafka",
        )


def _installed() -> str:
    try:
        return version("aiokafka")
    except Exception:  # pragma: no cover - aiokafka importable without its metadata
        return str(getattr(importlib.import_module("aiokafka"), "__version__", "(unknown)"))


def _problem(internal: Internal) -> str | None:
    """What is wrong with `internal` in the installed aiokafka, or None."""
    try:
        found: Any = importlib.import_module(internal.module)
    except ImportError:
        return "is missing: its module cannot be imported"
    for step in internal.name.split("."):
        found = getattr(found, step, _MISSING)
        if found is _MISSING:
            return "is missing"
    for problem in (
        _missing_attrs(found, internal.attrs),
        _missing_params(found, internal.params),
        _missing_sets(found, internal.sets),
        _missing_response_fields(found, internal.response_fields),
        _failed_probe(found, internal.probe),
    ):
        if problem is not None:
            return problem
    return None


_MISSING: Final = object()


def _missing_attrs(found: Any, attrs: tuple[str, ...]) -> str | None:
    missing = [attr for attr in attrs if not hasattr(found, attr)]
    return f"lacks {', '.join(missing)}" if missing else None


def _missing_params(found: Any, params: tuple[str, ...]) -> str | None:
    if not params:
        return None
    try:
        signature = inspect.signature(found)
    except (TypeError, ValueError):
        return "has a signature that cannot be read"
    missing = [param for param in params if param not in signature.parameters]
    return f"takes no parameter {', '.join(missing)}" if missing else None


def _missing_sets(found: Any, names: tuple[str, ...]) -> str | None:
    if not names:
        return None
    # Unwrapped, so that a wrapper (the record hook's among them) does not hide the code.
    code = getattr(inspect.unwrap(found.__init__), "__code__", None)
    if code is None:
        return "has a constructor whose code cannot be read"
    missing = [name for name in names if name not in code.co_names]
    return f"no longer sets {', '.join(missing)}" if missing else None


def _missing_response_fields(found: Any, fields: tuple[str, ...]) -> str | None:
    if not fields:
        return None
    versions = getattr(found, "_CLASSES", None)
    if not versions:
        return "lists no versions (_CLASSES)"
    for request in versions:
        schema = getattr(getattr(request, "RESPONSE_TYPE", None), "SCHEMA", None)
        if schema is None:
            return f"v{request.API_VERSION} has no RESPONSE_TYPE.SCHEMA"
        missing = [field for field in fields if not _schema_has(schema, field)]
        if missing:
            return f"v{request.API_VERSION} answers without {', '.join(missing)}"
    return None


def _schema_has(schema: Any, path: str) -> bool:
    """Tell whether `schema` has the field `path`, dotted through arrays of fields."""
    head, _, rest = path.partition(".")
    names = getattr(schema, "names", ())
    if head not in names:
        return False
    if not rest:
        return True
    field = schema.fields[names.index(head)]
    return _schema_has(getattr(field, "array_of", field), rest)


def _failed_probe(found: Any, probe: Callable[[Any], object] | None) -> str | None:
    if probe is None:
        return None
    try:
        probe(found)
    except Exception as exc:
        return f"does not behave as expected: {exc}"
    return None


check()
