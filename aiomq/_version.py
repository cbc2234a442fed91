"""The version of this source tree; the installed distribution's metadata is read first."""

__version__ = "0.1.0.dev0"
