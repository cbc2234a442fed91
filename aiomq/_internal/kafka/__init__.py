"""The seam: the one package of aiomq that names aiokafka's private parts.

aiokafka's public API (its consumer and producer, `aiokafka.errors`, `aiokafka.structs`)
does not offer everything aiomq does: the metadata request that does not create topics,
messages built straight from fetched records, a diagnosis of a failed connection. For
those, aiomq uses aiokafka's protocol classes, client, connections and fetcher, which
aiokafka may change in any release. They are named here and nowhere else:

- `errors`: the Kafka error codes aiomq acts on (`ErrorCode`), and the mapping of
  aiokafka's exceptions to aiomq's.
- `requests`: reading a response's nested entries by field name.
- `connect`: a `Dialer` as aiokafka's connection settings; a failed bootstrap diagnosed.
- `metadata`: the partitions of a topic, and the one loop that asks any broker.
- `record_hook`: the fetcher hook that builds `Message`s straight from record batches.
"""
