"""The `aiomq` command line: Kafka topics, producing, consuming, consumer groups and
dead-letter topics.

Installed as the `aiomq` console script (and runnable as `python -m aiomq`) with the `cli`
extra: `pip install 'aiomq[cli]'`. Commands follow kcat and Kafka's own tools:

```text
aiomq topics create|list|describe|alter|delete ...
aiomq produce TOPIC [FILE]        one message per line (-K key separator, -H headers)
aiomq consume TOPIC               plain values, --format 'kcat %k %s\\n', or --json
aiomq groups list|describe|reset-offsets|delete ...
aiomq dlq show|replay TOPIC       the dead-letter topics of Reader.process
aiomq broker                      an embedded broker in the foreground
```

The brokers come from `--bootstrap-server`/`-b` (before or after the command name) or
the `AIOMQ_BOOTSTRAP_SERVERS` environment variable. `aiomq COMMAND --help` shows every
option with examples; docs/cli.md has a session for each command.

Exit status: 0 on success; 1 when Kafka refused or failed (one `error: ...` line on
stderr, never a traceback); 2 for a usage error; 130 when Ctrl-C interrupted the work,
after a clean stop (a consumer's commits are flushed, a producer's summary says what was
written); 143 after the same clean stop on SIGTERM. `aiomq broker` exits 0 on Ctrl-C or
SIGTERM, its normal ways to stop.

The command tree itself lives in `aiomq._cli`, built on aiomq's public API alone, so
that this module imports without click: `main()` checks for it first.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_INSTALL_HINT = "error: the aiomq command line needs click and rich: pip install 'aiomq[cli]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `aiomq` command line and return its exit status.

    Args:
        argv: The arguments after the program name. Default: `sys.argv[1:]`.

    Returns:
        0, 1, 2, 130 or 143, as the module docstring says.
    """
    try:
        import click  # noqa: F401 - only checking that the extra is installed
        import rich  # noqa: F401
    except ImportError:
        print(_INSTALL_HINT, file=sys.stderr)
        return 1
    from click.exceptions import Abort, ClickException

    from aiomq._cli.app import cli
    from aiomq._cli.runtime import Interrupted, Terminated
    from aiomq.errors import Error

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="aiomq", standalone_mode=False)
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except (Interrupted, Abort, KeyboardInterrupt):
        # Commands clean up before raising Interrupted; click turns a KeyboardInterrupt
        # outside them into Abort.
        return 130
    except Terminated:
        return 143
    except Error as exc:
        _error(str(exc))
        return 1
    except OSError as exc:
        _error(f"{exc.filename}: {exc}" if exc.filename is not None else str(exc))
        return 1
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    # One line: a multi-line message (a broker's output, say) keeps its first line.
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"error: {first}", file=sys.stderr)
