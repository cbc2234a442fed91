"""OpenTelemetry traces and metrics for aiomq's Writers and Readers (`pip install 'aiomq[otel]'`).

Off by default. Switch it on for one object with `tracing=True`, or for every Writer and
Reader opened afterwards with `instrument()`:

```python
import aiomq

aiomq.otel.instrument()  # OpenTelemetry's global tracer and meter providers

async with aiomq.Writer(brokers=brokers, topic="orders") as w:  # traced
    await w.write_messages(aiomq.Message(value=b"..."))
```

What is recorded (OpenTelemetry messaging semantic conventions, `SEMCONV_VERSION`):

- `send {topic}` (PRODUCER): one span per `write_messages` call, with the topic, the
  batch size, and for a single message its key, partition and offset. Each message that
  carries no `traceparent` header gets the span's W3C trace context in its headers.
- `process {topic}` (CONSUMER): one span per message that `Reader.process`, the group
  handler or `transform` handles (per attempt, with `process`), child of the context in the
  message's headers, so that one trace runs from the writing service to the reading one.
  An exception sets the span's status to error and is recorded on it.
- `receive {topic}` (CONSUMER): one span per message `read_message` or `fetch_message`
  returns, child of the same context.
- Metrics: messages and bytes sent and consumed, send errors and retries, messages per
  batch, send and commit durations (`messaging.client.operation.duration`), handler
  durations (`messaging.process.duration`), rebalances, and consumer lag per partition,
  with the client id, topic, partition and group as attributes.

With tracing off a Writer or Reader makes one comparison per call and nothing more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiomq._internal import telemetry
from aiomq._internal.telemetry import SEMCONV_VERSION

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["SEMCONV_VERSION", "instrument", "uninstrument"]


def instrument(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Trace every Writer and Reader opened from now on whose `tracing` is None.

    Args:
        tracer_provider: Where spans go; None for OpenTelemetry's global provider.
        meter_provider: Where metrics go; None for OpenTelemetry's global provider.

    Raises:
        ConfigError: OpenTelemetry is not installed (`pip install 'aiomq[otel]'`).
    """
    telemetry.configure(True, tracer_provider, meter_provider)


def uninstrument() -> None:
    """Stop tracing the Writers and Readers opened from now on whose `tracing` is None.

    Objects opened before keep what they had, and those opened with `tracing=True` still
    use the providers given to `instrument()`.
    """
    telemetry.configure(False, *telemetry.providers())
