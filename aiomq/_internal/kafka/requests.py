"""Reading aiokafka's response structs by field name.

aiokafka decodes a response into a `Struct` whose top-level fields are attributes, but
whose arrays of entries come back as plain tuples, in the order of the version's
`Schema`. Reading them by position breaks silently when a version adds or moves a field
(a Metadata v0 topic entry has no `is_internal`, so its partitions come one place
earlier than in v1 and later). `entries` reads them by name instead: each entry becomes
a named tuple of its schema's fields, and so do the entries of the arrays inside it.

A field that only some versions have is read with a default, `getattr(entry, "timestamp",
-1)`, so that the code says which versions lack it.

`KafkaRequest` is the type of the requests themselves, whatever their API.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from aiokafka.protocol.api import Request
from aiokafka.protocol.types import Array, Schema

__all__ = ["KafkaRequest", "entries"]

KafkaRequest: TypeAlias = Request[Any]
"""A request of any API, as aiokafka's client sends it: at the newest version both the
broker and aiokafka know (`aiomq._internal.kafka.admin` builds the admin Client's)."""

_Reader = Callable[[Sequence[Any]], Any]
# Called through a variable: the field names are known only at run time.
_named_tuple: Callable[..., type[tuple[Any, ...]]] = namedtuple


def entries(struct: Any, name: str) -> list[Any]:
    """The entries of the array field `name` of a decoded response, read by field name.

    Args:
        struct: A decoded aiokafka response.
        name: The name of a field holding an array of structs, such as "topics".

    Returns:
        One named tuple per entry, with the field names of the entry's schema; the arrays
        of structs inside it are lists of named tuples too (`topic.partitions`). An
        absent (null) array gives [].
    """
    items = getattr(struct, name)
    if not items:
        return []
    read = _array_reader(struct.__class__, name)
    return [read(item) for item in items]


@functools.cache
def _array_reader(struct_class: Any, name: str) -> _Reader:
    """The reader of the entries of the array field `name` of `struct_class`."""
    return _reader(_element_schema(struct_class.SCHEMA, name))


def _element_schema(schema: Schema, name: str) -> Schema:
    try:
        field = schema.fields[schema.names.index(name)]
    except ValueError:
        raise KeyError(f"the response has no field {name!r}; it has {schema.names}") from None
    inner = field.array_of if isinstance(field, Array) else None
    if not isinstance(inner, Schema):
        raise TypeError(f"the field {name!r} is not an array of structs")
    return inner


@functools.cache
def _reader(schema: Schema) -> _Reader:
    """The function that reads one entry of `schema`, made once per schema.

    Schemas compare by identity, and aiokafka builds each once, at import.
    """
    row: Any = _named_tuple("Entry", schema.names, rename=True)
    nested = [
        (index, _reader(field.array_of))
        for index, field in enumerate(schema.fields)
        if isinstance(field, Array) and isinstance(field.array_of, Schema)
    ]
    make: _Reader = row._make
    if not nested:
        return make

    def read(item: Sequence[Any]) -> Any:
        values = list(item)
        for index, inner in nested:
            found = values[index]
            if found is not None:
                values[index] = [inner(value) for value in found]
        return make(values)

    return read
