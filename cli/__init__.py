"""skiplock: a distributed task scheduler on PostgreSQL."""

from skiplock.common.version import __version__

__all__ = ["__version__"]
