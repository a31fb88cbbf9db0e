"""The lab's on-disk record: what nppctl created on the host for one cluster (rendered kind config,
mount folders, this record itself), written down in its state folder, ./.nppctl/<cluster>/ (or
$NPPCTL_STATE_DIR/<cluster>/), so that a failed `up` takes back what it made and `down --purge` removes
exactly that and nothing else.

`down --purge` removes only what the state file lists inside the lab folder (the working folder or the
state folder), and only the kinds of path nppctl creates (folders, removed only when empty; its own two
files in the state folder); anything else makes it refuse before deleting anything.

Interface: state_dir(name) -> Path; LabState.load(name) -> LabState | None; LabState: make_dir,
write_file, save, undo (this run's paths), check_purge, purge.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from nppctl.errors import NppctlError, check_name, one_line

STATE_FILE = "state.json"
KIND_CONFIG_FILE = "kind-config.yaml"
OWN_FILES = (STATE_FILE, KIND_CONFIG_FILE)  # the only files nppctl writes (in the state folder)


def state_dir(name: str) -> Path:
    base = Path(os.environ.get("NPPCTL_STATE_DIR") or Path.cwd() / ".nppctl")
    return base.resolve() / check_name(name)


@dataclass
class LabState:
    """What nppctl made for one cluster: its provider, every host path it created (in order), and
    what the `up` that created it was asked (labshape.shape: roles, provider, image, pod_cidr)."""

    name: str
    provider: str
    created: list[str] = field(default_factory=list)
    asked: dict = field(default_factory=dict)
    made_now: list[str] = field(default_factory=list, repr=False)  # created by this run (not saved)

    @classmethod
    def load(cls, name: str) -> LabState | None:
        path = state_dir(name) / STATE_FILE
        if not path.is_file():
            return None
        from nppctl.access.providers import PROVIDER_NAMES

        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise NppctlError(
                f"state file {path} is unreadable ({one_line(err)}): fix or remove it "
                f"(nppctl's record of what `up --name {name}` created)"
            ) from None
        created = data.get("created", []) if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("name") != name
            or data.get("provider") not in PROVIDER_NAMES
            or not isinstance(created, list)
            or not all(isinstance(c, str) for c in created)
        ):
            raise NppctlError(
                f"state file {path} is corrupt (needs name {name!r}, provider kind|docker and a list "
                "of created paths): fix or remove it"
            )
        asked = data.get("asked")
        return cls(name=name, provider=data["provider"], created=list(created),
                   asked=asked if isinstance(asked, dict) else {})

    def make_dir(self, path: Path) -> Path:
        """mkdir -p PATH, recording each folder this call made."""
        path = path.resolve()
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for folder in reversed(missing):
            self._record(folder)  # first: a Ctrl-C between the two leaves no folder unrecorded
            folder.mkdir()
        return path

    def write_file(self, path: Path, text: str) -> Path:
        self.make_dir(path.parent)
        if not path.exists():
            self._record(path.resolve())
        path.write_text(text)
        return path

    def save(self) -> None:
        path = state_dir(self.name) / STATE_FILE
        self.make_dir(path.parent)
        if not path.exists():
            self._record(path)  # recorded before writing, so the record lists itself
        data = {"name": self.name, "provider": self.provider, "created": self.created}
        if self.asked:
            data["asked"] = self.asked
        path.write_text(json.dumps(data, indent=2) + "\n")

    def undo(self) -> list[str]:
        """Remove what this run created (newest first; folders only when empty); returns what stays.

        The state file goes too when this run made it, else it is rewritten without this run's paths."""
        made = [Path(raw) for raw in self.made_now]
        self.created = [c for c in self.created if c not in self.made_now]
        self.made_now = []
        state_file = state_dir(self.name) / STATE_FILE
        if state_file.exists() and state_file not in made:
            self.save()
        return self._remove(reversed(made))[1]

    def check_purge(self) -> None:
        """Refuse (NppctlError, one line) unless every recorded path is one nppctl may remove: an
        absolute, normalised path inside the lab folder (the working folder or the state folder, or the
        folder holding state folders), not a symlink, and a file only when it is one of nppctl's own
        files in the state folder."""
        own = state_dir(self.name)
        lab = Path.cwd().resolve()
        where = own / STATE_FILE
        base = own.parent  # ./.nppctl or $NPPCTL_STATE_DIR: a folder up may have made, removed when empty
        for raw in self.created:
            path = Path(raw)
            reason = None
            if not path.is_absolute() or os.path.normpath(raw) != raw:
                reason = "not an absolute, normalised path"
            elif path.is_symlink():
                reason = "a symlink (nppctl makes none)"
            elif not (path.resolve().is_relative_to(lab) or path.resolve().is_relative_to(own)
                      or path.resolve() == base):
                reason = f"outside the lab folder {lab} and the state folder {own}"
            elif path.resolve() == lab:
                reason = "the lab folder itself"
            elif path.exists() and not path.is_dir() and not (path.parent == own and path.name in OWN_FILES):
                reason = f"a file nppctl does not write (it writes only {', '.join(OWN_FILES)} in {own})"
            if reason:
                raise NppctlError(
                    f"refusing to purge: {where} lists {raw!r}, {reason}; nothing was deleted "
                    "(fix or remove that state file)"
                )

    def purge(self) -> tuple[int, list[str]]:
        """Remove what was recorded, newest first (check_purge first: all or nothing). Folders holding
        files nppctl did not make are kept. Returns (paths removed, folders kept)."""
        self.check_purge()
        return self._remove(Path(raw) for raw in reversed(self.created))

    @staticmethod
    def _remove(paths) -> tuple[int, list[str]]:
        removed, kept = 0, []
        for path in paths:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
            elif path.is_dir() and not path.is_symlink():
                try:
                    path.rmdir()
                    removed += 1
                except OSError:
                    kept.append(str(path))
        return removed, kept

    def _record(self, path: Path) -> None:
        if str(path) not in self.created:
            self.created.append(str(path))
            self.made_now.append(str(path))
