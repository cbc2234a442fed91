"""The `aiomq` command line, built on aiomq's public API alone (never `aiomq._internal`).

- `app`: the click command tree, with every command's options, help and examples.
- `runtime`: what every command shares: settings, brokers, a clean stop on Ctrl-C and SIGTERM.
- `admin`: what `aiomq topics` and `aiomq groups` do, the quiet logger, table output.
- `stream`: what `aiomq produce` and `aiomq consume` do; `stream_commands`: their options.
- `format`: parsing what a user types and rendering messages; pure functions.

`aiomq.cli.main` is the entry point: it checks that click and rich are installed first.
"""
