"""Write files into a repository so that all of it can be undone: an undo journal.

Every file is written to a temporary sibling and renamed into place (atomic on POSIX), and
its previous bytes and mode are remembered first. :meth:`Journal.rollback` puts every path
back, removes what was added and the folders that were created for it. When the update ran
commands (template migrations) that may have touched anything, it also restores the git
working tree, which ``mlgen update`` only ever starts from clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mlgen.gitrepo import RESTORE_COMMAND


class RollbackError(RuntimeError):
    """The repository could not be put back; the message names the command that does."""


@dataclass
class _Saved:
    content: bytes | None  # None: the file did not exist
    mode: int | None


def atomic_write(path: Path, content: bytes, mode: int | None = None) -> None:
    """Write ``content`` to ``path`` through a temporary sibling and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.mlgen-partial")
    partial.write_bytes(content)
    if mode is not None:
        os.chmod(partial, mode)
    elif path.exists():
        os.chmod(partial, path.stat().st_mode & 0o7777)
    os.replace(partial, path)


@dataclass
class Journal:
    """The undo record of the writes to one repository."""

    root: Path
    saved: dict[str, _Saved] = field(default_factory=dict)
    created_dirs: list[Path] = field(default_factory=list)
    ran_commands: bool = False

    def _remember(self, relative: str) -> Path:
        target = self.root / relative
        if relative not in self.saved:
            if target.is_file():
                self.saved[relative] = _Saved(target.read_bytes(), target.stat().st_mode & 0o7777)
            else:
                self.saved[relative] = _Saved(None, None)
        missing = []
        folder = target.parent
        while folder != self.root and not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.created_dirs.extend(reversed(missing))
        return target

    def write(self, relative: str, content: bytes) -> None:
        """Replace (or create) ``relative`` with ``content``."""
        atomic_write(self._remember(relative), content)

    def remove(self, relative: str) -> None:
        """Delete ``relative`` and the folders it leaves empty."""
        target = self._remember(relative)
        target.unlink(missing_ok=True)
        folder = target.parent
        while folder != self.root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def rollback(self) -> None:
        """Put every journaled path back; signals wait until that is done."""
        blocked = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            self._rollback()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _rollback(self) -> None:
        try:
            if self.ran_commands:
                for command in (["checkout", "--", "."], ["clean", "-fdq"]):
                    subprocess.run(["git", "-C", str(self.root), *command], check=True)
            for relative, saved in self.saved.items():
                target = self.root / relative
                if saved.content is None:
                    target.unlink(missing_ok=True)
                else:
                    atomic_write(target, saved.content, saved.mode)
            for folder in reversed(self.created_dirs):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        except (OSError, subprocess.CalledProcessError) as error:
            raise RollbackError(
                f"{self.root} could not be restored ({error}); restore it with "
                f"`cd {self.root} && {RESTORE_COMMAND}`"
            ) from error
