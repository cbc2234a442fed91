"""`python -m aiomq`: the `aiomq` command line (see `aiomq.cli`)."""

from __future__ import annotations

from aiomq.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
