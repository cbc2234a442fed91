"""In-process Kafka cluster for tests, backed by librdkafka's mock cluster.

librdkafka ships a mock Kafka cluster (``rdkafka_mock.h``) that speaks enough of the
wire protocol for real clients, including aiokafka, to produce and consume against it.
It also lets a test inject faults that are hard to provoke on a real cluster: take a
broker down, move a partition leader, or make the next N requests of a given kind fail.

The mock API is not exposed by the confluent-kafka Python bindings, so this module
reaches it through :mod:`ctypes`, using the librdkafka shared library bundled inside
the confluent-kafka wheel. Loading that exact file means we share the very copy that
``confluent_kafka.cimpl`` already uses, rather than a possibly different system one.

Typical use::

    def test_something(mock_cluster: MockCluster) -> None:
        mock_cluster.create_topic("orders", partitions=3, replication_factor=3)
        producer = AIOKafkaProducer(bootstrap_servers=mock_cluster.bootstrap_servers)
        ...

The root ``tests/conftest.py`` loads this module with
``pytest_plugins = ["tests.support.mock_cluster"]`` so the ``mock_cluster`` fixture is
available everywhere.
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import functools
import importlib.util
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import pytest

__all__ = [
    "ApiKey",
    "ErrorCode",
    "MockCluster",
    "MockClusterError",
    "MockRequest",
    "find_librdkafka",
    "mock_cluster",
]

DEFAULT_BROKER_COUNT: Final = 3

# rd_kafka_type_t: the handle only exists for the mock cluster's book keeping, it never
# talks to a broker itself, and a producer handle is the cheapest kind to create.
_RD_KAFKA_PRODUCER: Final = 0
# rd_kafka_conf_res_t RD_KAFKA_CONF_OK.
_RD_KAFKA_CONF_OK: Final = 0
# librdkafka copies at most this many bytes of error text into caller-supplied buffers.
_ERRSTR_SIZE: Final = 512
# The owning handle has no bootstrap.servers on purpose and would log a notice-level
# CONFWARN about it on every test; warnings and errors (the mock's own) still show.
_DEFAULT_CONFIG: Final[Mapping[str, str]] = {"log_level": "4"}


class ApiKey(enum.IntEnum):
    """Kafka protocol request types (``ApiKey``) that tests inject errors for."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    API_VERSIONS = 18
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28


class ErrorCode(enum.IntEnum):
    """Kafka protocol error codes, plus librdkafka-internal codes the mock understands."""

    # Not a wire error: the mock broker reacts to it by dropping the client connection,
    # which is how a test simulates a network failure on one specific request.
    TRANSPORT = -195
    NO_ERROR = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    ILLEGAL_GENERATION = 22
    UNKNOWN_MEMBER_ID = 25
    REBALANCE_IN_PROGRESS = 27
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    CONCURRENT_TRANSACTIONS = 51
    KAFKA_STORAGE_ERROR = 56
    PRODUCER_FENCED = 90


class MockClusterError(RuntimeError):
    """Raised when librdkafka rejects a mock cluster operation."""


@dataclasses.dataclass(frozen=True)
class MockRequest:
    """A request received by the mock cluster while request tracking was on.

    Attributes:
        broker_id: Broker that received the request.
        api_key: Request type; compare with :class:`ApiKey`.
        timestamp_us: Arrival time in microseconds on librdkafka's monotonic clock;
            only differences between two requests are meaningful.
    """

    broker_id: int
    api_key: int
    timestamp_us: int


def find_librdkafka() -> Path:
    """Locate the librdkafka shared library bundled with the confluent-kafka wheel.

    The wheel's repair step (auditwheel/delocate) renames the library with a content
    hash, so the file name is discovered with a glob instead of being spelled out.

    Returns:
        Path of the bundled librdkafka shared library.

    Raises:
        MockClusterError: If confluent-kafka is not installed or bundles no librdkafka.
    """
    # find_spec instead of an import: we only need the install location, and this keeps
    # the confluent-kafka extension module from being loaded just to find a path.
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or not spec.submodule_search_locations:
        raise MockClusterError("confluent-kafka is not installed; it provides librdkafka")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    patterns = (
        # Linux wheels (auditwheel): site-packages/confluent_kafka.libs/
        (package_dir.parent / "confluent_kafka.libs", "librdkafka*.so*"),
        # macOS wheels (delocate): site-packages/confluent_kafka/.dylibs/
        (package_dir / ".dylibs", "librdkafka*.dylib"),
    )
    for directory, pattern in patterns:
        # Sorted so the choice is deterministic should a broken install leave two copies.
        matches = sorted(directory.glob(pattern))
        if matches:
            return matches[0]
    raise MockClusterError(f"no bundled librdkafka found near {package_dir}")


@functools.cache
def _librdkafka() -> ctypes.CDLL:
    """Load librdkafka once and declare the prototype of every function we call.

    Without explicit ``argtypes``/``restype`` ctypes assumes ``int`` everywhere, which
    truncates 64-bit pointers and would crash (or worse, corrupt memory) on use.

    Returns:
        The loaded library with typed function prototypes.
    """
    lib = ctypes.CDLL(str(find_librdkafka()))
    vp, char_p = ctypes.c_void_p, ctypes.c_char_p
    i16, i32, size_t = ctypes.c_int16, ctypes.c_int32, ctypes.c_size_t
    # Enums (rd_kafka_type_t, rd_kafka_resp_err_t, rd_kafka_conf_res_t) are C ints.
    err_t = ctypes.c_int

    def declare(name: str, restype: object, *argtypes: object) -> None:
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = list(argtypes)

    declare("rd_kafka_conf_new", vp)
    declare("rd_kafka_conf_destroy", None, vp)
    declare("rd_kafka_conf_set", ctypes.c_int, vp, char_p, char_p, char_p, size_t)
    declare("rd_kafka_new", vp, ctypes.c_int, vp, char_p, size_t)
    declare("rd_kafka_destroy", None, vp)
    declare("rd_kafka_err2str", char_p, err_t)
    declare("rd_kafka_mock_cluster_new", vp, vp, ctypes.c_int)
    declare("rd_kafka_mock_cluster_destroy", None, vp)
    declare("rd_kafka_mock_cluster_bootstraps", char_p, vp)
    declare("rd_kafka_mock_topic_create", err_t, vp, char_p, ctypes.c_int, ctypes.c_int)
    declare("rd_kafka_mock_broker_set_down", err_t, vp, i32)
    declare("rd_kafka_mock_broker_set_up", err_t, vp, i32)
    declare("rd_kafka_mock_broker_set_rtt", err_t, vp, i32, ctypes.c_int)
    declare("rd_kafka_mock_partition_set_leader", err_t, vp, char_p, i32, i32)
    declare("rd_kafka_mock_partition_set_follower", err_t, vp, char_p, i32, i32)
    declare("rd_kafka_mock_coordinator_set", err_t, vp, char_p, char_p, i32)
    declare("rd_kafka_mock_clear_request_errors", None, vp, i16)
    declare("rd_kafka_mock_group_initial_rebalance_delay_ms", None, vp, i32)
    declare("rd_kafka_mock_start_request_tracking", None, vp)
    declare("rd_kafka_mock_stop_request_tracking", None, vp)
    declare("rd_kafka_mock_clear_requests", None, vp)
    declare("rd_kafka_mock_get_requests", ctypes.POINTER(vp), vp, ctypes.POINTER(size_t))
    declare("rd_kafka_mock_request_id", i32, vp)
    declare("rd_kafka_mock_request_api_key", i16, vp)
    declare("rd_kafka_mock_request_timestamp", ctypes.c_int64, vp)
    declare("rd_kafka_mock_request_destroy_array", None, ctypes.POINTER(vp), size_t)
    # Variadic functions: only the fixed parameters get argtypes; each call passes the
    # variadic part as explicit ctypes instances so the C default promotions are exact.
    declare("rd_kafka_mock_push_request_errors", None, vp, i16, size_t)
    declare("rd_kafka_mock_broker_push_request_error_rtts", err_t, vp, i32, i16, size_t)
    if hasattr(lib, "rd_kafka_mock_push_request_errors_array"):
        declare(
            "rd_kafka_mock_push_request_errors_array",
            None,
            vp,
            i16,
            size_t,
            ctypes.POINTER(err_t),
        )
    return lib


def _err2str(lib: ctypes.CDLL, err: int) -> str:
    """Return librdkafka's human-readable text for an ``rd_kafka_resp_err_t``."""
    text: bytes | None = lib.rd_kafka_err2str(err)
    return text.decode(errors="replace") if text else f"error {err}"


class MockCluster:
    """A librdkafka mock Kafka cluster listening on localhost.

    Brokers get ids ``1..broker_count`` and listen on ephemeral ports on 127.0.0.1.
    The cluster runs on a librdkafka background thread, so it keeps serving while the
    test's event loop is busy; every method here is a short blocking call into that
    thread and is safe to call from async tests.

    Topics are auto-created on first use (with 4 partitions in librdkafka 2.16), but tests
    should call :meth:`create_topic` to control partition count and replication factor.

    Attributes:
        bootstrap_servers: Comma-separated ``host:port`` list for Kafka clients.
        broker_ids: Ids of the cluster's brokers, ``(1, ..., broker_count)``.
    """

    bootstrap_servers: str
    broker_ids: tuple[int, ...]

    def __init__(
        self,
        broker_count: int = DEFAULT_BROKER_COUNT,
        *,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Start a mock cluster.

        Args:
            broker_count: Number of brokers to start.
            config: Extra librdkafka configuration for the owning handle, e.g.
                ``{"log_level": "7", "debug": "mock"}`` to see the mock's own logs.

        Raises:
            ValueError: If ``broker_count`` is not positive.
            MockClusterError: If librdkafka cannot create the handle or the cluster.
        """
        if broker_count < 1:
            raise ValueError(f"broker_count must be positive, got {broker_count}")
        self._lib = _librdkafka()
        self._lock = threading.Lock()
        rk, mcluster = self._create(broker_count, {**_DEFAULT_CONFIG, **(config or {})})
        self._rk: int | None = rk
        self._mcluster: int | None = mcluster
        # If a test forgets close(), still tear the cluster down when the object is
        # collected or, at the latest, at interpreter exit (finalize registers atexit),
        # so librdkafka's threads and listening sockets are always released.
        self._finalizer = weakref.finalize(self, _destroy, self._lib, rk, mcluster)
        bootstraps: bytes | None = self._lib.rd_kafka_mock_cluster_bootstraps(mcluster)
        if not bootstraps:
            self.close()
            raise MockClusterError("mock cluster reported no bootstrap servers")
        self.bootstrap_servers = bootstraps.decode()
        self.broker_ids = tuple(range(1, broker_count + 1))

    def _create(self, broker_count: int, config: Mapping[str, str]) -> tuple[int, int]:
        """Create the owning rd_kafka_t handle and the mock cluster on it.

        Returns:
            The ``(rd_kafka_t *, rd_kafka_mock_cluster_t *)`` pointers.

        Raises:
            MockClusterError: If any librdkafka call fails.
        """
        lib = self._lib
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        conf: int | None = lib.rd_kafka_conf_new()
        if not conf:
            raise MockClusterError("rd_kafka_conf_new failed")
        for name, value in config.items():
            res = lib.rd_kafka_conf_set(conf, name.encode(), value.encode(), errstr, _ERRSTR_SIZE)
            if res != _RD_KAFKA_CONF_OK:
                lib.rd_kafka_conf_destroy(conf)
                raise MockClusterError(
                    f"invalid librdkafka config {name}={value!r}: {errstr.value.decode()}"
                )
        # On success rd_kafka_new takes ownership of conf; on failure it stays ours.
        rk: int | None = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR_SIZE)
        if not rk:
            lib.rd_kafka_conf_destroy(conf)
            raise MockClusterError(f"rd_kafka_new failed: {errstr.value.decode()}")
        mcluster: int | None = lib.rd_kafka_mock_cluster_new(rk, broker_count)
        if not mcluster:
            lib.rd_kafka_destroy(rk)
            raise MockClusterError(f"rd_kafka_mock_cluster_new({broker_count}) failed")
        return rk, mcluster

    def __enter__(self) -> Self:
        """Return the already started cluster."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the cluster."""
        self.close()

    def __repr__(self) -> str:
        """Describe the cluster for test failure output."""
        state = "closed" if self.closed else "running"
        return f"<MockCluster {state} brokers={len(self.broker_ids)} {self.bootstrap_servers}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._mcluster is None

    def close(self) -> None:
        """Destroy the mock cluster, then its owning handle. Safe to call repeatedly.

        Clients still connected see their connections drop. ``rd_kafka_destroy`` joins
        all of librdkafka's threads, so nothing is left running afterwards.
        """
        with self._lock:
            if self._mcluster is None:
                return
            self._mcluster = None
            self._rk = None
        # finalize() runs _destroy exactly once and detaches the atexit hook.
        self._finalizer()

    def _handle(self) -> int:
        """Return the live cluster pointer, refusing use after close (a use-after-free)."""
        mcluster = self._mcluster
        if mcluster is None:
            raise MockClusterError("mock cluster is closed")
        return mcluster

    def _check(self, err: int, what: str) -> None:
        """Raise :class:`MockClusterError` for a nonzero ``rd_kafka_resp_err_t``."""
        if err != ErrorCode.NO_ERROR:
            raise MockClusterError(f"{what} failed: {_err2str(self._lib, err)} ({err})")

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1) -> None:
        """Create a topic, with partition leaders spread round-robin over the brokers.

        Args:
            name: Topic name.
            partitions: Number of partitions.
            replication_factor: Replicas per partition; at most the broker count.

        Raises:
            MockClusterError: If the topic exists already or the arguments are invalid.
        """
        err = self._lib.rd_kafka_mock_topic_create(
            self._handle(), name.encode(), partitions, replication_factor
        )
        self._check(
            err,
            f"creating topic {name!r} (partitions={partitions}, "
            f"replication_factor={replication_factor})",
        )

    def broker_down(self, broker_id: int) -> None:
        """Disconnect a broker's clients and refuse new connections.

        This does not move partition leadership: partitions led by the broker are
        unavailable until :meth:`broker_up` or :meth:`set_partition_leader`.

        Args:
            broker_id: Broker to take down, or -1 for all brokers.

        Raises:
            MockClusterError: If the broker does not exist.
        """
        self._check(
            self._lib.rd_kafka_mock_broker_set_down(self._handle(), broker_id),
            f"taking broker {broker_id} down",
        )

    def broker_up(self, broker_id: int) -> None:
        """Let a broker accept connections again.

        Args:
            broker_id: Broker to bring up, or -1 for all brokers.

        Raises:
            MockClusterError: If the broker does not exist.
        """
        self._check(
            self._lib.rd_kafka_mock_broker_set_up(self._handle(), broker_id),
            f"bringing broker {broker_id} up",
        )

    def set_broker_rtt(self, broker_id: int, rtt_ms: int) -> None:
        """Delay every response of a broker by ``rtt_ms`` milliseconds.

        Args:
            broker_id: Broker to slow down, or -1 for all brokers.
            rtt_ms: Added round-trip time; 0 removes the delay.

        Raises:
            MockClusterError: If the broker does not exist.
        """
        self._check(
            self._lib.rd_kafka_mock_broker_set_rtt(self._handle(), broker_id, rtt_ms),
            f"setting rtt of broker {broker_id}",
        )

    def push_request_errors(self, api_key: int, *errors: int) -> None:
        """Make the next ``len(errors)`` requests of type ``api_key`` fail, in order.

        The errors are cluster-wide: whichever broker receives the next matching request
        answers with the first error, and so on. :attr:`ErrorCode.TRANSPORT` makes the
        broker drop the connection instead of answering.

        Args:
            api_key: Request type, e.g. :attr:`ApiKey.PRODUCE`.
            *errors: Error codes, e.g. :attr:`ErrorCode.NOT_LEADER_OR_FOLLOWER`.
        """
        if not errors:
            return
        mcluster = self._handle()
        if hasattr(self._lib, "rd_kafka_mock_push_request_errors_array"):
            array = (ctypes.c_int * len(errors))(*errors)
            self._lib.rd_kafka_mock_push_request_errors_array(mcluster, api_key, len(errors), array)
        else:
            # Older librdkafka: the variadic form reads each error as an int (the
            # promoted type of an enum), so pass exactly that.
            self._lib.rd_kafka_mock_push_request_errors(
                mcluster, api_key, len(errors), *(ctypes.c_int(e) for e in errors)
            )

    def broker_push_request_error_rtts(
        self, broker_id: int, api_key: int, *errors_and_rtts: tuple[int, int]
    ) -> None:
        """Queue per-broker ``(error, rtt_ms)`` answers for the next requests of a type.

        Unlike :meth:`push_request_errors` this targets one broker and can also delay
        the answer (use error 0 for a slow success). Broker errors take precedence over
        cluster-wide ones.

        Args:
            broker_id: Broker that answers.
            api_key: Request type, e.g. :attr:`ApiKey.PRODUCE`.
            *errors_and_rtts: ``(error_code, rtt_ms)`` pairs, applied in order.

        Raises:
            MockClusterError: If the broker does not exist.
        """
        if not errors_and_rtts:
            return
        varargs = [ctypes.c_int(v) for pair in errors_and_rtts for v in pair]
        err = self._lib.rd_kafka_mock_broker_push_request_error_rtts(
            self._handle(), broker_id, api_key, len(errors_and_rtts), *varargs
        )
        self._check(err, f"pushing request errors on broker {broker_id}")

    def clear_request_errors(self, api_key: int) -> None:
        """Drop the cluster-wide errors still queued for ``api_key``.

        Args:
            api_key: Request type, e.g. :attr:`ApiKey.PRODUCE`.
        """
        self._lib.rd_kafka_mock_clear_request_errors(self._handle(), api_key)

    def set_partition_leader(self, topic: str, partition: int, broker_id: int) -> None:
        """Move a partition's leadership to ``broker_id``.

        Clients are not told: they find out from the ``NOT_LEADER_OR_FOLLOWER`` answers
        of the old leader and refresh their metadata. The topic is created if missing.

        Args:
            topic: Topic name.
            partition: Partition number.
            broker_id: New leader, or -1 to leave the partition leaderless.

        Raises:
            MockClusterError: If librdkafka rejects the change.
        """
        self._check(
            self._lib.rd_kafka_mock_partition_set_leader(
                self._handle(), topic.encode(), partition, broker_id
            ),
            f"setting leader of {topic!r}[{partition}] to broker {broker_id}",
        )

    def set_partition_follower(self, topic: str, partition: int, broker_id: int) -> None:
        """Set the preferred read replica (KIP-392) that consumers are redirected to.

        Args:
            topic: Topic name.
            partition: Partition number.
            broker_id: Follower broker; it need not exist.

        Raises:
            MockClusterError: If librdkafka rejects the change.
        """
        self._check(
            self._lib.rd_kafka_mock_partition_set_follower(
                self._handle(), topic.encode(), partition, broker_id
            ),
            f"setting follower of {topic!r}[{partition}] to broker {broker_id}",
        )

    def set_group_coordinator(self, group_id: str, broker_id: int) -> None:
        """Pin a consumer group's coordinator to ``broker_id``.

        Args:
            group_id: Consumer group id.
            broker_id: Coordinator broker; it need not exist.

        Raises:
            MockClusterError: If librdkafka rejects the change.
        """
        self._check(
            self._lib.rd_kafka_mock_coordinator_set(
                self._handle(), b"group", group_id.encode(), broker_id
            ),
            f"setting coordinator of group {group_id!r} to broker {broker_id}",
        )

    def set_group_initial_rebalance_delay_ms(self, delay_ms: int) -> None:
        """Set the cluster's ``group.initial.rebalance.delay.ms``.

        The mock, like a real broker, waits 3 s by default before completing the first
        rebalance of a new consumer group; set 0 to make group consumers start fast.

        Args:
            delay_ms: Delay in milliseconds.
        """
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._handle(), delay_ms)

    def start_request_tracking(self) -> None:
        """Start recording every request the brokers receive, see :meth:`requests`.

        Tracking lets a test prove that a client really retried (e.g. three Produce
        requests for one message after two injected errors), not just that it succeeded.
        """
        self._lib.rd_kafka_mock_start_request_tracking(self._handle())

    def stop_request_tracking(self) -> None:
        """Stop recording requests; those already recorded are kept."""
        self._lib.rd_kafka_mock_stop_request_tracking(self._handle())

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        self._lib.rd_kafka_mock_clear_requests(self._handle())

    def requests(self, api_key: int | None = None) -> list[MockRequest]:
        """Return the requests recorded since tracking started, oldest first.

        Args:
            api_key: Only return requests of this type, e.g. :attr:`ApiKey.PRODUCE`.

        Returns:
            The recorded requests.
        """
        lib = self._lib
        count = ctypes.c_size_t(0)
        array = lib.rd_kafka_mock_get_requests(self._handle(), ctypes.byref(count))
        if not array:
            return []
        try:
            recorded = [
                MockRequest(
                    broker_id=lib.rd_kafka_mock_request_id(array[i]),
                    api_key=lib.rd_kafka_mock_request_api_key(array[i]),
                    timestamp_us=lib.rd_kafka_mock_request_timestamp(array[i]),
                )
                for i in range(count.value)
            ]
        finally:
            # The array and every element in it are copies owned by the caller.
            lib.rd_kafka_mock_request_destroy_array(array, count.value)
        return [r for r in recorded if api_key is None or r.api_key == api_key]


def _destroy(lib: ctypes.CDLL, rk: int, mcluster: int) -> None:
    """Tear down a mock cluster and its owning handle, in that order.

    A module-level function rather than a method so that the ``weakref.finalize``
    callback holds no reference to the :class:`MockCluster` it cleans up after.
    """
    # The cluster runs on the handle's resources, so it must go first; destroying
    # the handle then joins every librdkafka thread, leaving nothing behind that
    # could keep the process alive or fire after the test.
    lib.rd_kafka_mock_cluster_destroy(mcluster)
    lib.rd_kafka_destroy(rk)


@pytest.fixture
def mock_cluster() -> Iterator[MockCluster]:
    """Yield a running 3-broker :class:`MockCluster`, closed after the test."""
    with MockCluster(DEFAULT_BROKER_COUNT) as cluster:
        yield cluster
