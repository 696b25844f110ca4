"""The `.eml` mailbox channel: each mail becomes `<folder>/<notification-id>.eml`, durably, in batches.

Why batches: writing, fsyncing and renaming one file per mail, each in its own thread hop, cost more
than the mail's rendering (issue #11). Mails handed over while a write runs are written together in
the next one: temp files first, then one durability barrier for all of them (`syncfs` of the
folder's filesystem on Linux, else an fsync per file), then the renames and one fsync of the folder,
so a mail is reported stored — and only then marked `sent` — once the file and its name are on disk.
Each caller still learns its own mail's outcome: one file that cannot be written fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from services.notifications.domain import validate_notification_id
from services.notifications.mime import OutgoingMail
from services.notifications.ports import DeliveryError

Sync = Callable[[int, Sequence[int]], None]
"""A durability barrier: the folder's descriptor and the descriptors of the files just written."""


def fsync_each(folder_fd: int, file_fds: Sequence[int]) -> None:
    """Portable barrier: every file on its own."""
    for fd in file_fds:
        os.fsync(fd)


def _syncfs() -> Sync | None:
    """Linux `syncfs(2)`: one call makes everything written to the folder's filesystem durable."""
    try:
        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes, call.restype = [ctypes.c_int], ctypes.c_int

    def syncfs(folder_fd: int, file_fds: Sequence[int]) -> None:
        if call(folder_fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return syncfs


DEFAULT_SYNC: Sync = _syncfs() or fsync_each


def write_batch(folder: Path, items: Sequence[tuple[Path, bytes]], sync: Sync = DEFAULT_SYNC) -> list[OSError | None]:
    """Write each (target, data) atomically and durably; returns each item's error (None: stored).

    Temp files are hidden (`.name.*.tmp`) and renamed only after the barrier, so a reader never
    sees half a message and a redelivered notification overwrites its own file."""
    errors: list[OSError | None] = [None] * len(items)
    written: list[tuple[int, int, str]] = []  # (item index, fd, temp path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder_fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        return [exc] * len(items)
    try:
        for i, (target, data) in enumerate(items):
            tmp = ""
            try:
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
                written.append((i, fd, tmp))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                errors[i] = exc
        try:
            sync(folder_fd, [fd for i, fd, _ in written if errors[i] is None])
        except OSError as exc:
            for i, _, _ in written:
                errors[i] = errors[i] or exc
        for i, fd, tmp in written:
            os.close(fd)
            if errors[i] is None:
                try:
                    os.replace(tmp, items[i][0])
                    continue
                except OSError as exc:
                    errors[i] = exc
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        try:
            os.fsync(folder_fd)  # the new names are durable too
        except OSError as exc:
            errors = [e or exc for e in errors]
    finally:
        os.close(folder_fd)
    return errors


class MailboxSender:
    """Writes each message to `<folder>/<notification-id>.eml` instead of sending it.

    For demos and development without a mail server: a person double-clicks the file to read the
    message as the educator would (CRLF line endings, what mail clients expect of an .eml file).
    """

    def __init__(self, folder: Path, *, sync: Sync = DEFAULT_SYNC) -> None:
        self.folder = Path(folder)
        self._sync = sync
        self._waiting: list[tuple[Path, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches: list[int] = []
        """How many mails each write stored (the last 100)."""

    def __repr__(self) -> str:
        return f"MailboxSender(folder={str(self.folder)!r})"

    async def forget(self, notification_ids: list[str]) -> int:
        """Erasure: delete the stored copies of these notifications (they hold a name and an address)."""

        def unlink() -> int:
            removed = 0
            for notification_id in notification_ids:
                path = self.path_for(notification_id)
                if path.exists():
                    path.unlink()
                    removed += 1
            return removed

        return await asyncio.to_thread(unlink)

    def path_for(self, notification_id: str) -> Path:
        """Where the message with this notification id lands (the id is validated as a safe file name)."""
        return self.folder / f"{validate_notification_id(notification_id)}.eml"

    async def send(self, mail: OutgoingMail) -> None:
        """Store `mail` once it is durable; an unsafe notification id is permanent, a disk problem transient."""
        try:
            target = self.path_for(mail.notification_id)
        except ValueError as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((target, mail.data, stored))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="mailbox-writer")
        await asyncio.shield(stored)  # one caller cancelled does not cancel the others' write

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                errors = await asyncio.to_thread(write_batch, self.folder, [(t, d) for t, d, _ in batch], self._sync)
            except Exception as exc:  # write_batch reports per file; anything else fails the batch
                errors = [OSError(repr(exc))] * len(batch)
            self.batches = [*self.batches[-99:], len(batch)]
            for (target, _, stored), error in zip(batch, errors, strict=True):
                if stored.done():
                    continue
                if error is None:
                    stored.set_result(None)
                else:
                    stored.set_exception(DeliveryError(f"could not write {target}: {error}", permanent=False))
