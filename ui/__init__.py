"""The dashboard: static assets served by the API process under /ui/ (a client of the REST
API like any other). `vendor/` holds pinned browser builds of its libraries, copied from npm
by `make ui-vendor` (see vendoring.py); nothing is built on a user's machine."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
