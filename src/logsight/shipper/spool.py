"""The on-disk spool: append-only NDJSON segments plus a cursor, replayed oldest first.

Layout of a spool directory::

    lock               flock'ed by the one process that owns the spool
    000000000001.ndjson  segments; each record is two lines (``_bulk`` action, source)
    000000000002.ndjson
    cursor.json        {"segment": "000000000001.ndjson", "offset": 12345}

Records are appended, never rewritten. The cursor names the first byte not yet delivered; it is
replaced atomically (write to a temporary file, rename) after the cluster acknowledged a batch,
so a crash between the acknowledgement and the cursor write re-sends that batch, which the
cluster answers with 409 (``create`` of an existing ``_id``): at-least-once, without
duplicates. A segment whose last record was cut short by a crash is read up to its last whole
record.

fsync policy (``fsync``):

* ``"batch"`` (default): each appended batch is flushed and fsync'ed before ``append``
  returns, and so is every cursor update: what the spool acknowledged survives a power loss.
* ``"never"``: flushed to the OS only (survives the process, not the machine).
* ``"always"``: like ``"batch"``, and the directory is fsync'ed when segments are created or
  removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

FsyncPolicy = Literal["batch", "never", "always"]
_SEG_SUFFIX = ".ndjson"
_CURSOR_BYTES = 160  # every cursor.json has this size (+ newline): rewritable in place
_abandoned: list[IO[bytes]] = []  # writers given up in a forked child (see Spool.abandon)


class SpoolLocked(RuntimeError):
    """Another process owns this spool directory."""


@dataclass(frozen=True, eq=False)
class ReadToken:
    segment: str
    offset: int  # offset just after the last record read
    records: int
    nbytes: int
    generation: int


class Spool:
    """Single-owner, append-only spool. Not thread-safe: the shipper serialises access."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        max_bytes: int = 1024 * 1024 * 1024,
        fsync: FsyncPolicy = "batch",
    ) -> None:
        if fsync not in ("batch", "never", "always"):
            raise ValueError(f"fsync must be 'batch', 'never' or 'always', not {fsync!r}")
        if segment_bytes <= 0 or max_bytes <= 0:
            raise ValueError("segment_bytes and max_bytes must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            raise SpoolLocked(f"spool {self.directory} is in use by another process") from e
        self._writer: IO[bytes] | None = None
        self._writer_name: str | None = None
        self._read: tuple[str, int] | None = None  # None: at the durable cursor
        self._gen = 0
        self._out_records = 0
        self._outstanding: deque[list[Any]] = deque()  # [token, delivered], in read order
        self._again: deque[ReadToken] = deque()  # reads whose send failed: to send again
        self._exhausted: dict[str, int] = {}  # old segments read to their last whole record
        self.cursor_dirty = False  # the cursor in memory is ahead of the one on disk
        cursor = self._load_cursor()
        self._segments = self._list_segments()
        # drop segments older than the cursor (already delivered, deletion was interrupted)
        if cursor is not None:
            for name in [s for s in self._segments if s < cursor[0]]:
                self._unlink(name)
        self._cursor = cursor if cursor and cursor[0] in self._segments else None
        if not (self.directory / "cursor.json").exists():
            # made now, while there is room: on a full disk it can still be overwritten in
            # place (see _save_cursor)
            self._save_cursor(None, 0)
        self.pending_records = 0
        self.pending_bytes = 0
        for name in self._segments:
            start = self._cursor[1] if self._cursor and self._cursor[0] == name else 0
            size, lines = _count(self.directory / name, start)
            self.pending_bytes += size
            self.pending_records += lines // 2

    # -- paths / cursor -------------------------------------------------------------------
    def _list_segments(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*" + _SEG_SUFFIX))

    def _load_cursor(self) -> tuple[str, int] | None:
        try:
            data = json.loads((self.directory / "cursor.json").read_text())
            if data.get("segment") is None:  # written in place: "nothing to resume"
                return None
            return str(data["segment"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _save_cursor(self, segment: str | None, offset: int) -> None:
        """Persist the cursor. On a full disk the atomic replace (a new file) cannot be
        written, so the cursor is overwritten in place instead: every cursor file has the
        same padded size, which needs no new block. If even that fails, the cursor stays in
        memory (``cursor_dirty``) and is written with the next commit: a crash meanwhile
        re-sends from the last saved cursor (answered 409), never loses anything."""
        path = self.directory / "cursor.json"
        data = json.dumps({"segment": segment, "offset": offset}).encode().ljust(
            _CURSOR_BYTES) + b"\n"
        tmp = self.directory / "cursor.json.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync != "never":
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY)
            except OSError:
                self.cursor_dirty = True
                return
            try:
                if os.fstat(fd).st_size != len(data) or os.pwrite(fd, data, 0) != len(data):
                    self.cursor_dirty = True
                    return
                if self.fsync != "never":
                    os.fsync(fd)
            except OSError:
                self.cursor_dirty = True
                return
            finally:
                os.close(fd)
        self.cursor_dirty = False

    def _unlink(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)
        if name in self._segments:
            self._segments.remove(name)
        if self.fsync == "always":
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- writing --------------------------------------------------------------------------
    def _new_segment(self) -> IO[bytes]:
        if self._writer is not None:
            self._writer.close()
        last = int(self._segments[-1].split(".")[0]) if self._segments else 0
        name = f"{last + 1:012d}{_SEG_SUFFIX}"
        # a fresh segment per process start: never append after another run's torn record
        self._writer = open(self.directory / name, "ab")  # noqa: SIM115  # kept open for appends
        self._writer_name = name
        self._segments.append(name)
        if self.fsync == "always":
            self._sync_dir()
        return self._writer

    def append(self, records: Sequence[bytes]) -> int:
        """Append whole records (each ``action\\nsource\\n``); returns how many were taken
        (fewer than given when the spool is full)."""
        if not records:
            return 0
        room = self.max_bytes - self.pending_bytes
        take: list[bytes] = []
        size = 0
        for r in records:
            if size + len(r) > room:
                break
            take.append(r)
            size += len(r)
        if not take:
            return 0
        w = self._writer
        if w is None or w.tell() >= self.segment_bytes:
            w = self._new_segment()
        name = self._writer_name
        start = w.tell()
        try:
            w.write(b"".join(take))
            w.flush()
            if self.fsync != "never":
                os.fsync(w.fileno())
        except OSError:
            self._undo_append(w, name, start)
            raise
        self.pending_bytes += size
        self.pending_records += len(take)
        return len(take)

    def _undo_append(self, w: IO[bytes], name: str | None, start: int) -> None:
        """A failed append (disk full) leaves nothing behind: the part of the batch that
        reached the file is cut off again (which also frees its space), and a segment left
        empty is removed rather than kept (or replaced by a new empty one on every try)."""
        self._writer = None
        self._writer_name = None
        with contextlib.suppress(OSError):
            w.close()  # may fail flushing the rest of the buffer: cut off below anyway
        if name is None:
            return
        path = self.directory / name
        try:
            if start == 0:
                path.unlink(missing_ok=True)
                if name in self._segments:
                    self._segments.remove(name)
                return
            os.truncate(path, start)
        except OSError:
            return  # the reader stops at the last whole record of a torn segment
        # the segment ends with a whole record again: later appends may continue it
        with contextlib.suppress(OSError):
            self._writer = open(path, "ab")  # noqa: SIM115  # kept open for appends
            self._writer_name = name

    # -- reading --------------------------------------------------------------------------
    # Several senders may read ahead (each read hands out the next records); the durable
    # cursor only moves over a contiguous prefix of acknowledged reads, so a crash re-sends
    # from the oldest unacknowledged record (the cluster answers 409 for those already
    # stored). A failed send hands its own read out again (:meth:`retry`), in its place: the
    # reads that succeeded stand, so one process never sends a record twice. :meth:`rewind`
    # (restart from the cursor; reads handed out before it are stale, their commits ignored)
    # is for a caller that lost track of its reads.
    def _position(self) -> tuple[str, int] | None:
        if self._read is not None:
            return self._read
        if not self._segments:
            return None
        if self._cursor is not None and self._cursor[0] == self._segments[0]:
            return self._cursor
        return self._segments[0], 0

    def read(self, max_records: int, max_bytes: int) -> tuple[list[bytes], ReadToken | None]:
        """The next unread records (from one segment); pass the token to :meth:`commit` once
        the cluster has them, or to :meth:`retry` if sending them failed (they are read again
        first, the other reads in flight stand)."""
        while self._again:
            token = self._again.popleft()
            if token.generation != self._gen:
                continue
            return self._reread(token), token
        while (pos := self._position()) is not None:
            name, start = pos
            records: list[bytes] = []
            nbytes = 0
            with open(self.directory / name, "rb") as f:
                f.seek(start)
                while len(records) < max_records and nbytes < max_bytes:
                    action = f.readline()
                    if not action.endswith(b"\n"):
                        break
                    source = f.readline()
                    if not source.endswith(b"\n"):
                        break  # torn record (crash mid-write): stop before it
                    records.append(action + source)
                    nbytes += len(action) + len(source)
            if records:
                token = ReadToken(name, start + nbytes, len(records), nbytes, self._gen)
                self._read = (name, start + nbytes)
                self._outstanding.append([token, False])
                self._out_records += len(records)
                return records, token
            if name == self._writer_name:
                self._settle()
                return [], None  # everything written so far has been handed out
            # an older segment read to its end (a torn tail is left behind): go to the next
            self._exhausted[name] = start
            i = self._segments.index(name)
            if i + 1 >= len(self._segments):
                self._read = None
                self._gc()
                self._settle()
                return [], None
            # on to the next segment; no _settle() here: the segments after this one may
            # hold unread records (settling here hid them from the senders and from flush)
            self._read = (self._segments[i + 1], 0)
        return [], None

    def _reread(self, token: ReadToken) -> list[bytes]:
        records: list[bytes] = []
        with open(self.directory / token.segment, "rb") as f:
            f.seek(token.offset - token.nbytes)
            for _ in range(token.records):
                action = f.readline()
                records.append(action + f.readline())
        return records

    def retry(self, token: ReadToken) -> None:
        """Sending the records of ``token`` failed: hand them out again (before any new read),
        in their place in the read order, so the reads that did succeed stay delivered and
        nothing is sent twice by this process."""
        if token.generation == self._gen and any(e[0] is token for e in self._outstanding):
            self._again.append(token)

    def _settle(self) -> None:
        # nothing left to read: what is pending is exactly what is in flight (repairs counts
        # estimated at start-up from a torn segment)
        self.pending_records = self._out_records

    @property
    def unread(self) -> bool:
        """Records remain that no sender has been handed yet (or has to send again)."""
        return bool(self._again) or self.pending_records > self._out_records

    def current(self, token: ReadToken) -> bool:
        """Whether ``token`` is still to be committed (not made stale by a rewind)."""
        return token.generation == self._gen

    def commit(self, token: ReadToken) -> None:
        """Mark the records of ``token`` delivered; the durable cursor moves once every
        earlier read is delivered too."""
        if token.generation != self._gen:
            return  # read before a rewind: those records are being read again
        for entry in self._outstanding:
            if entry[0] is token:
                entry[1] = True
                break
        moved = False
        while self._outstanding and self._outstanding[0][1]:
            done: ReadToken = self._outstanding.popleft()[0]
            self._out_records -= done.records
            self.pending_bytes = max(0, self.pending_bytes - done.nbytes)
            self.pending_records = max(0, self.pending_records - done.records)
            self._cursor = (done.segment, done.offset)
            moved = True
        if moved or self.cursor_dirty:
            self._gc()
            if self._cursor is not None:
                self._save_cursor(*self._cursor)

    def rewind(self) -> None:
        """Forget reads not yet committed: the next read starts at the durable cursor."""
        self._gen += 1
        self._again.clear()
        self._outstanding.clear()
        self._out_records = 0
        self._read = None
        self._exhausted.clear()

    @property
    def in_flight(self) -> int:
        """Reads handed out and not yet committed (or made stale by a rewind)."""
        return len(self._outstanding)

    def _gc(self) -> None:
        """Delete fully delivered segments from the front."""
        while self._segments:
            name = self._segments[0]
            if self._cursor is not None and self._cursor[0] != name:
                if self._cursor[0] in self._segments:  # older than the cursor: delivered
                    end = self._exhausted.pop(name, None)
                    if end is not None:  # a torn tail was counted as pending at start-up
                        path = self.directory / name
                        size = path.stat().st_size if path.exists() else end
                        self.pending_bytes = max(0, self.pending_bytes - (size - end))
                    self._unlink(name)
                    continue
                self._cursor = None
            offset = self._cursor[1] if self._cursor is not None else 0
            if self._outstanding and self._outstanding[0][0].segment == name:
                return  # reads of this segment are still in flight
            if name == self._writer_name:
                if self._writer is not None and offset >= self._writer.tell() and \
                        self._read in (None, (name, offset)):
                    # the active segment is delivered: remove it; appends start a new one
                    self._writer.close()
                    self._writer = None
                    self._writer_name = None
                    self._drop(name, offset)
                    continue
                return
            # an older segment never grows: delivered up to its size (or to its last whole
            # record, when the reader found a torn tail) means done
            end = self._exhausted.get(name)
            if end is None:
                path = self.directory / name
                end = path.stat().st_size if path.exists() else 0
            if offset < end:
                return
            self._drop(name, offset)

    def _drop(self, name: str, offset: int) -> None:
        path = self.directory / name
        size = path.stat().st_size if path.exists() else offset
        self.pending_bytes = max(0, self.pending_bytes - max(0, size - offset))  # torn tail
        self._exhausted.pop(name, None)
        if self._read is not None and self._read[0] == name:
            self._read = None
        self._unlink(name)
        self._cursor = None
        self._save_cursor(None, 0)
        if not self._segments:
            self.pending_bytes = 0
            self.pending_records = 0

    @property
    def empty(self) -> bool:
        return self.pending_records == 0

    def abandon(self) -> None:
        """Let go of this spool in a forked child, leaving it to the parent: its files are
        closed without flushing (a buffer copied mid-write must not reach the parent's
        segment) and without unlocking (the lock is shared with the parent's descriptor)."""
        if self._writer is not None:
            _abandoned.append(self._writer)  # never finalised: finalising would flush it
            with contextlib.suppress(OSError):
                os.close(self._writer.fileno())
            self._writer = None
            self._writer_name = None
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = -1

    def close(self) -> None:
        """Close the segment and release the lock (a second call does nothing)."""
        if self._lock_fd < 0:  # closed already, or abandoned after a fork
            return
        fd, self._lock_fd = self._lock_fd, -1
        try:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _count(path: Path, start: int) -> tuple[int, int]:
    """(bytes after ``start``, whole lines after ``start``)."""
    size = 0
    lines = 0
    try:
        with open(path, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
    except OSError:
        return 0, 0
    return size, lines
