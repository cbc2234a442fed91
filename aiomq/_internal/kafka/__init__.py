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
- `client`: aiokafka's cluster client behind the operations the Writer needs.
- `record_hook`: the fetcher hook that builds `Message`s straight from record batches.
"""
