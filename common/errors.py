"""One exception root for skiplock; the docstring is the default message."""

from __future__ import annotations


class SkiplockError(Exception):
    """skiplock failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(SkiplockError):
    """A setting has a value skiplock cannot use."""


class DatabaseUnavailable(SkiplockError):
    """The database cannot be reached."""


class AddressInUse(ConfigError):
    """The address to listen on is taken by another process."""


class EmbeddedPostgresError(SkiplockError):
    """The embedded PostgreSQL could not be started."""
