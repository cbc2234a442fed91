"""The aiomq exception tree.

Every error aiomq raises on purpose is an `aiomq.Error`; the exceptions of the client
library underneath never reach the caller, they are translated and chained with
`raise ... from`. Some classes also inherit a builtin, so that code which knows nothing
of aiomq can still catch them sensibly:

```text
Error
├── ConfigError(ValueError)          a setting or argument is invalid
├── InvalidMessageError(ValueError)  a message cannot be written as given
├── ClosedError(RuntimeError)        the object was closed, or was never opened
├── BackgroundTaskError(RuntimeError)  a background task of the object failed
├── RequestTimeoutError(TimeoutError)  a request got no answer in time
├── BrokerConnectionError(ConnectionError)  no broker could be reached
│   └── TLSError                     the TLS handshake failed, or one side lacks TLS
├── AuthenticationError              SASL authentication was refused
├── BrokerError                      a broker answered with a Kafka error code
│   ├── UnknownTopicOrPartitionError   (code 3)
│   └── MessageTooLargeError           (code 10, or refused before sending)
├── WriteErrors                      some messages of one write failed; per message
├── CommitError                      offsets could not be committed
├── ProcessingError                  a handler of `Reader.process` failed for good
├── TransactionError                 a transaction could not be used, committed or aborted
│   └── ProducerFencedError          a newer writer with the same transactional id took over
└── GroupNotEmptyError               a group still has members where none may remain
```

Cancellation (`asyncio.CancelledError`, anyio's cancel scopes) is never wrapped: it is
not an `Exception`, and aiomq lets it pass through untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiomq.message import Message

__all__ = [
    "AuthenticationError",
    "BackgroundTaskError",
    "BrokerConnectionError",
    "BrokerError",
    "ClosedError",
    "CommitError",
    "ConfigError",
    "Error",
    "GroupNotEmptyError",
    "InvalidMessageError",
    "MessageTooLargeError",
    "ProcessingError",
    "ProducerFencedError",
    "RequestTimeoutError",
    "TLSError",
    "TransactionError",
    "UnknownTopicOrPartitionError",
    "WriteErrors",
]


class Error(Exception):
    """The root of every exception raised by aiomq."""


class ConfigError(Error, ValueError):
    """A setting or argument is invalid, alone or in combination with another.

    The message names the field and says how to fix it.
    """


class InvalidMessageError(Error, ValueError):
    """A message cannot be written as given: a wrong type, or a missing or conflicting topic.

    Nothing of the call that raised it was written.
    """


class ClosedError(Error, RuntimeError):
    """The reader, writer or client was used after `aclose()`, or before it was opened."""


class BackgroundTaskError(Error, RuntimeError):
    """A background task of a reader or writer failed (a bug, not a broker's answer).

    Readers run a commit flusher and a lag updater; writers run a sender per partition
    and the async-mode completions.

    The object no longer does all it promised: its next call and its `aclose()` raise
    this error, whose `__cause__` is the task's exception, and the failure is logged (as
    `background_task_failed` by a reader, `writer_failed` by a writer).
    """


class RequestTimeoutError(Error, TimeoutError):
    """A request to the cluster got no answer within its time limit."""


class BrokerConnectionError(Error, ConnectionError):
    """No connection could be made to any of the brokers tried.

    Attributes:
        brokers: The `host:port` addresses that were tried, in order.
    """

    def __init__(self, message: str, *, brokers: Sequence[str] = ()) -> None:
        self.brokers: tuple[str, ...] = tuple(brokers)
        if self.brokers:
            message = f"{message} (brokers tried: {', '.join(self.brokers)})"
        super().__init__(message)


class TLSError(BrokerConnectionError):
    """A TLS connection could not be made: the certificate was refused, or one side speaks
    TLS and the other does not. The message names the broker and the reason."""


class AuthenticationError(Error):
    """The broker refused SASL authentication. The message names the mechanism and the
    user, never the secret.

    Attributes:
        mechanism: The SASL mechanism tried, such as "SCRAM-SHA-512".
        username: The user name tried, when the mechanism has one.
    """

    def __init__(self, message: str, *, mechanism: str, username: str | None = None) -> None:
        self.mechanism = mechanism
        self.username = username
        super().__init__(message)


def _describe_target(topic: str | None, partition: int | None) -> str:
    if topic is None:
        return ""
    if partition is None or partition < 0:
        return f" for topic {topic!r}"
    return f" for topic {topic!r} partition {partition}"


class BrokerError(Error):
    """A broker refused a request with a Kafka error code.

    Attributes:
        code: The Kafka protocol error code (for example 6 for NOT_LEADER_OR_FOLLOWER).
        name: The error's protocol name.
        retriable: Whether the same request may succeed if sent again later.
        topic: The topic the request was about, when known.
        partition: The partition the request was about, when known.
    """

    def __init__(
        self,
        code: int,
        name: str,
        *,
        retriable: bool = False,
        topic: str | None = None,
        partition: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.code = code
        self.name = name
        self.retriable = retriable
        self.topic = topic
        self.partition = partition
        kind = "retriable" if retriable else "not retriable"
        message = f"{name} (Kafka error {code}, {kind}){_describe_target(topic, partition)}"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)


class UnknownTopicOrPartitionError(BrokerError):
    """The topic, or the partition of it, does not exist on the cluster."""

    def __init__(
        self,
        *,
        topic: str | None = None,
        partition: int | None = None,
        retriable: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(
            3,
            "UNKNOWN_TOPIC_OR_PARTITION",
            retriable=retriable,
            topic=topic,
            partition=partition,
            detail=detail,
        )


class MessageTooLargeError(BrokerError):
    """A message is larger than the client or the broker accepts.

    Attributes:
        size: The size of the message in bytes, when known.
        limit: The limit it exceeded in bytes, when known.
    """

    def __init__(
        self,
        *,
        size: int | None = None,
        limit: int | None = None,
        topic: str | None = None,
        partition: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.size = size
        self.limit = limit
        if detail is None and size is not None and limit is not None:
            detail = f"the message takes {size} bytes and the limit is {limit} bytes"
        super().__init__(10, "MESSAGE_TOO_LARGE", topic=topic, partition=partition, detail=detail)


class WriteErrors(Error):
    """Some messages of one `write_messages` call were not written.

    The lists are aligned with the call's messages, so the caller knows exactly which
    messages reached the broker and which did not.

    Attributes:
        errors: For each message, the error that stopped it, or None if it was written.
        written: For each message, the written message (with partition and offset), or None.
    """

    def __init__(self, errors: Sequence[Error | None], written: Sequence[Message | None]) -> None:
        self.errors: list[Error | None] = list(errors)
        self.written: list[Message | None] = list(written)
        failed = [e for e in self.errors if e is not None]
        first = failed[0] if failed else None
        super().__init__(
            f"{len(failed)} of {len(self.errors)} messages were not written; first error: {first}"
        )

    def __len__(self) -> int:
        return sum(1 for e in self.errors if e is not None)


class CommitError(Error):
    """Offsets could not be committed to the consumer group.

    The messages themselves are not lost: `messages` holds those the failed commit was
    for (when the commit came from reading them), and they will be read again by whichever
    member owns their partition next, from the last committed offset.

    Attributes:
        offsets: The `(topic, partition) -> next offset` commits that failed.
        messages: The messages whose commit failed, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        offsets: dict[tuple[str, int], int] | None = None,
        messages: Sequence[Message] = (),
    ) -> None:
        self.offsets: dict[tuple[str, int], int] = dict(offsets or {})
        self.messages: list[Message] = list(messages)
        super().__init__(message)


class ProcessingError(Error):
    """A message could not be processed by `Reader.process`: its handler failed on every
    attempt and there is no dead-letter topic, or writing it to the dead-letter topic
    failed too.

    `process` stopped taking new messages, let those running finish and committed what
    had finished before raising; this message and every later one of its partition are
    read again by whoever reads the partition next. The handler's (or the dead-letter
    write's) exception is the `__cause__`.

    Attributes:
        message: The message that failed.
        attempts: How many times its handler ran.
    """

    def __init__(self, text: str, *, message: Message, attempts: int) -> None:
        self.message = message
        self.attempts = attempts
        super().__init__(text)


class TransactionError(Error):
    """A transactional writer's transaction could not be begun, written to, committed or
    aborted, or the writer was used against the rules of transactions.

    The message names the transactional id and the step that failed; a broker's refusal is
    the exception's `__cause__`. When raised while committing, the transaction was aborted
    unless the message says its outcome is unknown.

    Attributes:
        transactional_id: The writer's transactional id.
        step: What the writer was doing, such as "committing the transaction".
    """

    def __init__(self, message: str, *, transactional_id: str, step: str) -> None:
        self.transactional_id = transactional_id
        self.step = step
        super().__init__(message)


class ProducerFencedError(TransactionError):
    """A newer writer with the same transactional id has started, and this one may no
    longer write or commit.

    Kafka allows one live producer per transactional id: opening a second one fences the
    first and aborts its open transaction. A fenced writer refuses every later write and
    transaction; close it. The usual cause is a second instance of a service started with
    the same transactional id, or an instance thought dead that was only paused.
    """


class GroupNotEmptyError(Error):
    """The consumer group still has active members, and the operation needs it inactive.

    Attributes:
        group_id: The group.
        state: The group's state as the coordinator reported it (for example "Stable").
    """

    def __init__(self, message: str, *, group_id: str, state: str) -> None:
        self.group_id = group_id
        self.state = state
        super().__init__(message)
