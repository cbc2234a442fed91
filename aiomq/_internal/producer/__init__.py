"""The Writer's machinery.

- `planner`: check a write call's messages, choose their partitions, group them.
- `engine`: per-partition queues, record batches, retries, settling each message once.
- `settings`: what the Writer hands the engine, and the counters it reads back.
"""
