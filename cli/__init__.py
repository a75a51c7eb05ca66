"""skiplock: a distributed task scheduler on PostgreSQL."""

__version__ = "0.1.0"
