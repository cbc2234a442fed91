"""The `aiomq` command line, built on aiomq's public API alone (never `aiomq._internal`).

- `app`: the click command tree, with every command's options, help and examples.
- `runtime`: what every command shares: settings, brokers, a clean stop on Ctrl-C and SIGTERM,
  the live progress count.
- `admin`: what `aiomq topics` and `aiomq groups` do, the quiet logger, table output.
- `stream`: what `aiomq produce` and `aiomq consume` do; `stream_commands`: their options.
- `dlq`: what `aiomq dlq show` and `aiomq dlq replay` do; `dlq_commands`: their options;
  `dead_letter`: a dead letter's headers taken apart, as rows and JSON lines; pure.
- `format`: parsing what a user types and rendering messages; pure functions.

`aiomq.cli.main` is the entry point: it checks that click and rich are installed first.
"""
