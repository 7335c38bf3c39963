"""The output folder's lock: one `autoprec search` per output folder.

`<out>/autoprec.lock` holds the owner's pid, host and a heartbeat (UTC, ISO 8601) refreshed by a background
thread. A second search on the same folder is refused with a one-line error; a stale lock (its pid is dead on
this host, or its heartbeat is older than `stale_after` seconds) is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from autoprec.errors import UserError
from autoprec.model_io import writing

LOCK_NAME = "autoprec.lock"
HEARTBEAT_SECONDS = 5.0
STALE_AFTER = 60.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class OutputLock:
    """Held while a search writes into `folder`; `release()` (or the context manager) gives it back."""

    def __init__(self, folder: Path, stale_after: float = STALE_AFTER):
        self.path = Path(folder) / LOCK_NAME
        self.stale_after = stale_after
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex, "started": _now()}
        self._stop = threading.Event()
        self._acquire()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="autoprec-lock-heartbeat")
        self._thread.start()

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _acquire(self) -> None:
        for _ in range(50):
            try:
                with writing(self.path):
                    descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                if holder is None and _age(self.path) < 5.0:  # being written by its owner right now
                    time.sleep(0.1)
                    continue
                if holder is not None and not self._is_stale(holder):
                    raise UserError(
                        f"{self.path.parent} is in use by another autoprec search (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, alive at {holder.get('heartbeat')}); wait for it or use another --out"
                    ) from None
                self._take_over(holder)
                continue
            try:
                with writing(self.path), os.fdopen(descriptor, "w") as handle:
                    handle.write(json.dumps(self.owner | {"heartbeat": _now()}))
            except BaseException:
                self.path.unlink(missing_ok=True)  # e.g. a full disk: no empty lock left behind
                raise
            return
        raise UserError(f"{self.path}: cannot take over this stale lock; remove it if no search runs there")

    def _is_stale(self, holder: dict) -> bool:
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            return True
        try:
            beat = datetime.fromisoformat(holder["heartbeat"])
        except (KeyError, TypeError, ValueError):
            return True  # unreadable: a lock torn by a crash while it was being written
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        return (datetime.now(UTC) - beat).total_seconds() > self.stale_after

    def _take_over(self, holder: dict | None) -> None:
        """Move the stale lock aside atomically; put it back if another process replaced it meanwhile."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        if read_lock(aside) != holder:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)  # someone took it over first: give it back
        aside.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if read_lock(self.path, {}).get("token") != self.owner["token"]:
                return
            tmp = self.path.with_name(f".{LOCK_NAME}.{self.owner['token']}.tmp")
            try:
                tmp.write_text(json.dumps(self.owner | {"heartbeat": _now()}))
                os.replace(tmp, self.path)
            except OSError:  # a full disk: the lock goes stale by its heartbeat, which is what it should say
                tmp.unlink(missing_ok=True)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        self._thread.join()
        if read_lock(self.path, {}).get("token") == self.owner["token"]:
            self.path.unlink(missing_ok=True)


def read_lock(path: Path, default: dict | None = None) -> dict | None:
    """The lock's content; `default` if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
    return data if isinstance(data, dict) else default


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
