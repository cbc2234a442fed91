"""OpenTelemetry traces and metrics for Writers and Readers (the `aiomq[otel]` extra).

Nothing here is imported until a Writer or Reader asks for tracing, so a process without
the extra never loads OpenTelemetry; a Writer or Reader without tracing holds None
where it would hold a `WriterTelemetry` or `ReaderTelemetry`, and pays one comparison
per call.

Spans follow the OpenTelemetry messaging semantic conventions for Kafka, as of
semantic conventions 1.37 (`SEMCONV_VERSION`):

- a `write_messages` call is one PRODUCER span, `send {topic}`, and the W3C trace context
  of that span goes into the headers of each message that carries none yet;
- a message handled by `Reader.process`, the group handler or `transform` is one
  CONSUMER span, `process {topic}`, and one returned by `read_message` or
  `fetch_message` is a CONSUMER span `receive {topic}`; the parent of either is the
  context extracted from the message's headers, so that one trace runs from the writing
  service to the reading one.

Metrics: counters and histograms recorded per batch, commit and handled message, and
observable counters and gauges read from `stats()` at collection time (consumer lag per
partition among them). Attributes name the client id, topic, partition and group.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from aiomq._internal import registry
from aiomq.message import Header, Message

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider


__all__ = [
    "SEMCONV_VERSION",
    "ReaderTelemetry",
    "WriterTelemetry",
    "Telemetry",
    "configure",
    "enabled",
    "providers",
    "telemetry",
]

SEMCONV_VERSION: Final = "1.37.0"
"""The version of the OpenTelemetry semantic conventions the spans and metrics follow."""

_SCOPE: Final = "aiomq"
_OBSERVED_KEYS: Final = (
    "messaging.system",
    "messaging.client.id",
    "messaging.consumer.group.name",
)
_TRACEPARENT: Final = "traceparent"
_MISSING_EXTRA: Final = "tracing needs OpenTelemetry: pip install 'aiomq[otel]'"


def _load() -> Any:
    """Import OpenTelemetry's API, or say which extra installs it."""
    try:
        import opentelemetry.metrics
        import opentelemetry.propagate
        import opentelemetry.trace
    except ImportError as exc:  # pragma: no cover - the extra is in the test environment
        from aiomq.errors import ConfigError

        raise ConfigError(_MISSING_EXTRA) from exc
    return opentelemetry


class _HeaderGetter:
    """Reads a propagation field from a message's headers (the last of a name wins)."""

    def get(self, carrier: Sequence[Header], key: str) -> list[str] | None:
        found = [v.decode("latin-1") for name, v in carrier if name.lower() == key]
        return found[-1:] or None

    def keys(self, carrier: Sequence[Header]) -> list[str]:
        return [name for name, _ in carrier]


_GETTER: Final = _HeaderGetter()


class Telemetry:
    """The tracer, the meter and the instruments of one pair of providers.

    Args:
        tracer_provider: The provider of the tracer; None for OpenTelemetry's global one.
        meter_provider: The provider of the meter; None for OpenTelemetry's global one.
    """

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        otel = _load()
        try:
            __version__ = metadata.version("aiomq")
        except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
            __version__ = "unknown"

        self.otel = otel
        self.tracer: Tracer = otel.trace.get_tracer(
            _SCOPE, __version__, tracer_provider, schema_url=_schema_url()
        )
        meter: Meter = otel.metrics.get_meter(
            _SCOPE, __version__, meter_provider, schema_url=_schema_url()
        )
        self._lock = threading.Lock()
        self._observed: weakref.WeakKeyDictionary[
            Any, tuple[str, asyncio.AbstractEventLoop, dict[str, Any]]
        ] = weakref.WeakKeyDictionary()
        self._instances = 0
        self._snapshot_cache: tuple[float, int, list[tuple[str, Any, dict[str, Any]]]] | None = None
        self.sent = meter.create_counter(
            "messaging.client.sent.messages", "{message}", "Messages acknowledged by the broker."
        )
        self.sent_bytes = meter.create_counter(
            "aiomq.client.sent.bytes", "By", "Key, value and header bytes of those messages."
        )
        self.send_failed = meter.create_counter(
            "aiomq.client.send.errors", "{message}", "Messages that failed for good."
        )
        self.send_retries = meter.create_counter(
            "aiomq.client.send.retries", "{request}", "Produce requests sent again."
        )
        self.batch_size = meter.create_histogram(
            "aiomq.client.batch.messages", "{message}", "Messages per acknowledged batch."
        )
        self.send_duration = meter.create_histogram(
            "messaging.client.operation.duration",
            "s",
            "Seconds from a batch's first message being queued to its acknowledgement "
            "(messaging.operation.name send), or of a commit (commit).",
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration", "s", "Seconds a handler took over one message."
        )
        meter.create_observable_counter(
            "messaging.client.consumed.messages",
            [self._consumed],
            "{message}",
            "Messages a reader returned to its caller.",
        )
        meter.create_observable_counter(
            "aiomq.client.consumed.bytes",
            [self._consumed_bytes],
            "By",
            "Key and value bytes of the messages returned.",
        )
        meter.create_observable_counter(
            "aiomq.consumer.rebalances",
            [self._rebalances],
            "{rebalance}",
            "Partition assignments a group reader received.",
        )
        meter.create_observable_gauge(
            "aiomq.consumer.lag",
            [self._lag],
            "{message}",
            "Messages between a reader's position and the partition's high water mark.",
        )
        meter.create_observable_gauge(
            "aiomq.client.queued.messages",
            [self._queued],
            "{message}",
            "Messages a writer accepted and has not settled yet.",
        )

    # -- observable instruments, read at collection time ------------------------------------

    def observe(self, owner: Any, kind: str, attributes: dict[str, Any]) -> None:
        """Observe `owner.stats()` at collection time (a Writer or Reader, on the running
        loop), with these attributes and an `aiomq.instance` that tells it apart."""
        with self._lock:
            self._instances += 1
            self._observed[owner] = (
                kind,
                asyncio.get_running_loop(),
                {**attributes, "aiomq.instance": f"{kind}-{self._instances}"},
            )
            self._snapshot_cache = None

    def forget(self, owner: Any) -> None:
        """Stop observing an object: it closed."""
        with self._lock:
            self._observed.pop(owner, None)
            self._snapshot_cache = None

    def _snapshots(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """`(kind, stats, attributes)` of every observed object, read on its own event loop.

        The SDK collects from a thread of its own, and `stats()` must not race with the
        loop that changes what it reads: from another thread, the loop takes the
        snapshots and this waits for them (at most `_READ_TIMEOUT`). One collection asks
        every instrument in turn, so the snapshots of one moment serve them all.
        """
        now = time.monotonic()
        thread = threading.get_ident()
        cached = self._snapshot_cache
        if cached is not None and now - cached[0] < _CACHE_SECONDS and cached[1] == thread:
            return cached[2]
        with self._lock:
            entries = list(self._observed.items())
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, str, dict[str, Any]]]] = {}
        for owner, (kind, loop, attributes) in entries:
            by_loop.setdefault(loop, []).append((owner, kind, attributes))
        found: list[tuple[str, Any, dict[str, Any]]] = []
        for loop, owners in by_loop.items():
            found += _read_on(loop, owners)
        self._snapshot_cache = (now, thread, found)
        return found

    def _of(self, kind: str) -> list[tuple[Any, dict[str, Any]]]:
        return [(stats, attributes) for k, stats, attributes in self._snapshots() if k == kind]

    def _consumed(self, options: CallbackOptions) -> Iterable[Observation]:
        make = self.otel.metrics.Observation
        return [make(stats.messages, attributes) for stats, attributes in self._of("reader")]

    def _consumed_bytes(self, options: CallbackOptions) -> Iterable[Observation]:
        make = self.otel.metrics.Observation
        return [make(stats.bytes, attributes) for stats, attributes in self._of("reader")]

    def _rebalances(self, options: CallbackOptions) -> Iterable[Observation]:
        make = self.otel.metrics.Observation
        return [make(stats.rebalances, attributes) for stats, attributes in self._of("reader")]

    def _lag(self, options: CallbackOptions) -> Iterable[Observation]:
        make = self.otel.metrics.Observation
        return [
            make(
                part.lag,
                {
                    **attributes,
                    "messaging.destination.name": part.topic,
                    "messaging.destination.partition.id": str(part.partition),
                },
            )
            for stats, attributes in self._of("reader")
            for part in stats.partitions
            if part.lag >= 0
        ]

    def _queued(self, options: CallbackOptions) -> Iterable[Observation]:
        make = self.otel.metrics.Observation
        return [make(stats.queued, attributes) for stats, attributes in self._of("writer")]


_READ_TIMEOUT: Final = 5.0
_CACHE_SECONDS: Final = 0.5


def _read_on(
    loop: asyncio.AbstractEventLoop, owners: list[tuple[Any, str, dict[str, Any]]]
) -> list[tuple[str, Any, dict[str, Any]]]:
    """Read the stats of objects of one event loop, on that loop unless it is not running."""

    def read() -> list[tuple[str, Any, dict[str, Any]]]:
        return [(kind, owner.stats(), attributes) for owner, kind, attributes in owners]

    return registry.read_on(loop, read, _READ_TIMEOUT) or []  # None: the loop is busy


def _schema_url() -> str:
    return f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"


_default: Telemetry | None = None
_on = False
_providers: tuple[Any, Any] = (None, None)


def configure(
    on: bool, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> None:
    """Switch tracing on or off for every Writer and Reader opened from now on that does
    not choose for itself, with these providers (None: OpenTelemetry's global ones)."""
    global _default, _on, _providers
    if on:
        _load()
    if (tracer_provider, meter_provider) != _providers:
        _default = None
        _providers = (tracer_provider, meter_provider)
    _on = on


def providers() -> tuple[Any, Any]:
    """The tracer and meter providers configured (None: OpenTelemetry's global ones)."""
    return _providers


def enabled(choice: bool | None) -> bool:
    """Whether an object with this `tracing` setting traces."""
    return _on if choice is None else choice


def telemetry() -> Telemetry:
    """The instruments of the configured providers, made once."""
    global _default
    if _default is None:
        _default = Telemetry(*_providers)
    return _default


def _base_attributes(client_id: str, brokers: Sequence[str]) -> dict[str, Any]:
    """The attributes every span of one client carries: system, client id, first broker."""
    host, _, port = brokers[0].rpartition(":")
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.client.id": client_id,
        "server.address": host or brokers[0],
    }
    if port.isdigit():
        attributes["server.port"] = int(port)
    return attributes


def _key_attribute(key: bytes | None) -> str | None:
    """A key's string form, when it has an unambiguous one (UTF-8 text)."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Forgettable:
    """Shared by both: leaving the observable metrics when the object closes."""

    _hub: Telemetry

    def forget(self, owner: Any) -> None:
        """The object closed: its stats are no longer observed."""
        self._hub.forget(owner)


class WriterTelemetry(_Forgettable):
    """What a traced Writer records.

    Args:
        hub: The instruments.
        writer: The writer (kept weakly, for its stats).
        client_id: Its client id.
        brokers: Its bootstrap addresses.
    """

    def __init__(self, hub: Telemetry, writer: Any, client_id: str, brokers: Sequence[str]) -> None:
        self._hub = hub
        self._tracer = hub.tracer
        self._otel = hub.otel
        self._base = _base_attributes(client_id, brokers)
        hub.observe(
            writer, "writer", {"messaging.system": "kafka", "messaging.client.id": client_id}
        )

    @contextmanager
    def send(
        self, messages: Sequence[Message], default_topic: str | None
    ) -> Iterator[tuple[Span, list[Message]]]:
        """One `send` span around a write call; yields it and the messages, each carrying
        the span's trace context in a `traceparent` header (unless it has one already).

        The span records the exception the body raises, and sets its status to error.
        """
        topics = {m.topic or default_topic for m in messages}
        topic = topics.pop() if len(topics) == 1 else None
        attributes: dict[str, Any] = {
            **self._base,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
        }
        if topic:
            attributes["messaging.destination.name"] = topic
        if len(messages) > 1:
            attributes["messaging.batch.message_count"] = len(messages)
        elif messages:
            key = _key_attribute(messages[0].key)
            if key is not None:
                attributes["messaging.kafka.message.key"] = key
            if messages[0].value is None:
                attributes["messaging.kafka.message.tombstone"] = True
        trace = self._otel.trace
        span = self._tracer.start_span(
            f"send {topic}" if topic else "send",
            kind=trace.SpanKind.PRODUCER,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        self._otel.propagate.inject(carrier, context=trace.set_span_in_context(span))
        added = [(name, value.encode("latin-1")) for name, value in carrier.items()]
        stamped = [_with_context(m, added) for m in messages]
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            try:
                yield span, stamped
            except BaseException as exc:
                _record_error(self._otel, span, exc)
                raise

    def written(self, span: Span, written: Sequence[Message]) -> None:
        """Add where a single written message landed to its span."""
        if len(written) == 1 and written[0].offset >= 0:
            span.set_attribute("messaging.destination.partition.id", str(written[0].partition))
            span.set_attribute("messaging.kafka.offset", written[0].offset)

    # -- the engine's observer ----------------------------------------------------------------

    def batch_written(
        self, topic: str, partition: int, count: int, nbytes: int, seconds: float
    ) -> None:
        attributes = {
            **self._base,
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(partition),
        }
        hub = self._hub
        hub.sent.add(count, attributes)
        hub.sent_bytes.add(nbytes, attributes)
        hub.batch_size.record(count, attributes)
        hub.send_duration.record(seconds, {**attributes, "messaging.operation.name": "send"})

    def batch_failed(self, topic: str, partition: int, count: int, error: BaseException) -> None:
        self._hub.send_failed.add(
            count,
            {
                **self._base,
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
                "error.type": type(error).__qualname__,
            },
        )

    def batch_retried(self, topic: str, partition: int) -> None:
        self._hub.send_retries.add(
            1,
            {
                **self._base,
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
            },
        )


class ReaderTelemetry(_Forgettable):
    """What a traced Reader records.

    Args:
        hub: The instruments.
        reader: The reader (kept weakly, for its stats).
        client_id: Its client id.
        group_id: Its consumer group, or None.
        brokers: Its bootstrap addresses.
    """

    def __init__(
        self,
        hub: Telemetry,
        reader: Any,
        client_id: str,
        group_id: str | None,
        brokers: Sequence[str],
    ) -> None:
        self._hub = hub
        self._tracer = hub.tracer
        self._otel = hub.otel
        self._base = _base_attributes(client_id, brokers)
        if group_id is not None:
            self._base["messaging.consumer.group.name"] = group_id
        hub.observe(
            reader, "reader", {key: self._base[key] for key in _OBSERVED_KEYS if key in self._base}
        )

    def _attributes(self, message: Message, operation: str) -> dict[str, Any]:
        attributes = {
            **self._base,
            "messaging.operation.name": operation,
            "messaging.operation.type": operation,
            "messaging.destination.name": message.topic,
            "messaging.destination.partition.id": str(message.partition),
            "messaging.kafka.offset": message.offset,
        }
        key = _key_attribute(message.key)
        if key is not None:
            attributes["messaging.kafka.message.key"] = key
        if message.value is None:
            attributes["messaging.kafka.message.tombstone"] = True
        return attributes

    def received(self, message: Message) -> None:
        """A `receive` span for a message returned to the caller, child of its context."""
        trace = self._otel.trace
        span = self._tracer.start_span(
            f"receive {message.topic}",
            context=extract(self._otel, message),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._attributes(message, "receive"),
        )
        span.end()

    def start_process(self, message: Message) -> Span:
        """A `process` span for a message a group handler's claim hands over, child of the
        context extracted from it; the caller ends it. It is not made current: the
        handler's code runs between two steps of the claim's iteration."""
        return self._tracer.start_span(
            f"process {message.topic}",
            context=extract(self._otel, message),
            kind=self._otel.trace.SpanKind.CONSUMER,
            attributes=self._attributes(message, "process"),
        )

    @contextmanager
    def process(self, message: Message) -> Iterator[Span]:
        """A `process` span around the handling of one message, child of the context
        extracted from it; records the exception the body raises, and its duration."""
        trace = self._otel.trace
        attributes = self._attributes(message, "process")
        span = self._tracer.start_span(
            f"process {message.topic}",
            context=extract(self._otel, message),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        started = time.monotonic()
        error: str | None = None
        with trace.use_span(span, end_on_exit=True, record_exception=False):
            try:
                yield span
            except BaseException as exc:
                error = type(exc).__qualname__
                _record_error(self._otel, span, exc)
                raise
            finally:
                metric_attributes = {
                    key: attributes[key]
                    for key in (
                        "messaging.system",
                        "messaging.client.id",
                        "messaging.destination.name",
                        "messaging.destination.partition.id",
                        "messaging.operation.name",
                    )
                }
                if "messaging.consumer.group.name" in attributes:
                    metric_attributes["messaging.consumer.group.name"] = attributes[
                        "messaging.consumer.group.name"
                    ]
                if error is not None:
                    metric_attributes["error.type"] = error
                self._hub.process_duration.record(time.monotonic() - started, metric_attributes)

    def committed(self, seconds: float, error: BaseException | None) -> None:
        """Record one commit's duration."""
        attributes = {**self._base, "messaging.operation.name": "commit"}
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
        self._hub.send_duration.record(seconds, attributes)


def extract(otel: Any, message: Message) -> Context | None:
    """The trace context a message carries in its headers, if any."""
    if not message.headers:
        return None
    context: Context = otel.propagate.extract(message.headers, getter=_GETTER)
    return context


def _with_context(message: Message, added: list[Header]) -> Message:
    """`message` with the trace context headers, unless it carries a `traceparent`."""
    if not added:
        return message
    headers = message.headers
    if any(name.lower() == _TRACEPARENT for name, _ in headers):
        return message
    return message._replace(headers=[*headers, *added])


def _record_error(otel: Any, span: Span, exc: BaseException) -> None:
    if isinstance(exc, Exception):
        span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, str(exc) or None))


def outputs_in_context(outputs: list[Message], source: Message) -> list[Message]:
    """Outputs written while a `process` span is current carry its trace context (for
    `transform`), so that the trace goes on through the next topic. An output that
    copied its input's trace context (its headers) gets the span's instead; one that
    carries a context of its own keeps it."""
    carrier: dict[str, str] = {}
    _load().propagate.inject(carrier)
    added = [(name, value.encode("latin-1")) for name, value in carrier.items()]
    if not added:
        return outputs
    inherited = {value for name, value in source.headers if name.lower() == _TRACEPARENT}
    names = {name for name, _ in added}
    stamped = []
    for output in outputs:
        own = [v for name, v in output.headers if name.lower() == _TRACEPARENT]
        if own and not set(own) <= inherited:
            stamped.append(output)
            continue
        kept = [(name, v) for name, v in output.headers if name.lower() not in names]
        stamped.append(output._replace(headers=[*kept, *added]))
    return stamped
