"""Decide what an ingest run must do: which files to add, replace, rename, skip or delete.

Files are matched by path first; size and mtime unchanged means unchanged without reading the
file. Otherwise the content hash decides: same hash is unchanged, a new path whose hash belongs
to a stored file that is gone from disk is a rename (its vectors are kept), and stored files
under the scanned roots that are no longer on disk are removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from rag.index.store import StoredDocument


@dataclass
class FoundFile:
    path: str  # absolute, symlinks in the folder path kept as the user sees them
    size: int
    mtime: float


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Scan:
    files: list[FoundFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)  # entries that look broken
    roots: list[str] = field(default_factory=list)  # absolute roots (folders or files)


@dataclass
class Plan:
    add: list[FoundFile] = field(default_factory=list)
    update: list[FoundFile] = field(default_factory=list)
    rename: list[tuple[str, FoundFile]] = field(default_factory=list)  # (old path, new file)
    copy: list[tuple[str, FoundFile]] = field(default_factory=list)  # same content elsewhere
    unchanged: list[str] = field(default_factory=list)
    touch: list[FoundFile] = field(default_factory=list)  # unchanged content, new mtime
    remove: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # path -> sha256 of files read
    failed: list[Skipped] = field(default_factory=list)  # could not even be hashed


def scan(paths: list[str | Path], suffixes: frozenset[str], follow_symlinks: bool = True) -> Scan:
    """Find supported files below `paths`; report hidden, unsupported and looping entries."""
    out = Scan()
    seen_dirs: set[tuple[int, int]] = set()
    for raw in paths:
        root = Path(os.path.abspath(os.path.expanduser(str(raw))))
        if not root.exists():
            raise FileNotFoundError(f"no such file or folder: {raw}")
        out.roots.append(str(root))
        if root.is_file():
            _consider(root, suffixes, out, explicit=True)
            continue
        _walk(root, suffixes, follow_symlinks, seen_dirs, out)
    out.files.sort(key=lambda f: f.path)
    return out


def _walk(root: Path, suffixes: frozenset[str], follow: bool, seen: set[tuple[int, int]],
          out: Scan) -> None:
    try:
        st = root.stat()
    except OSError as exc:
        out.skipped.append(Skipped(str(root), f"cannot read folder: {exc.strerror}"))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        out.skipped.append(Skipped(str(root), "symlink loop: this folder was already scanned"))
        return
    seen.add(key)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        out.skipped.append(Skipped(str(root), f"cannot list folder: {exc.strerror}"))
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            out.skipped.append(Skipped(str(path), "hidden"))
            continue
        is_link = entry.is_symlink()
        try:
            st = os.stat(path)  # follows links, so a looping or dangling one fails here
        except OSError as exc:
            if is_link and exc.errno == errno.ELOOP:
                out.failed.append(Skipped(str(path), "symlink loop (the link points to itself)"))
            elif is_link:
                out.failed.append(Skipped(str(path), "broken symlink (its target is missing)"))
            else:
                out.failed.append(Skipped(str(path), f"cannot read: {exc.strerror or exc}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            if is_link and not follow:
                out.skipped.append(Skipped(str(path), "symlinked folder (not followed)"))
            else:
                _walk(path, suffixes, follow, seen, out)
        elif stat.S_ISREG(st.st_mode):
            _consider(path, suffixes, out, explicit=False)
        else:
            out.skipped.append(Skipped(str(path), "not a regular file"))


def _consider(path: Path, suffixes: frozenset[str], out: Scan, explicit: bool) -> None:
    if path.suffix.lower() not in suffixes:
        out.skipped.append(Skipped(str(path), f"unsupported file type {path.suffix or '(none)'}"))
        return
    try:
        st = path.stat()
    except OSError as exc:
        out.skipped.append(Skipped(str(path), f"cannot read: {exc.strerror or exc}"))
        return
    out.files.append(FoundFile(str(path), st.st_size, st.st_mtime))


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def plan(found: Scan, stored: dict[str, StoredDocument]) -> Plan:
    result = Plan()
    on_disk = {f.path for f in found.files}
    # stored files under these roots that are gone: deleted, or renamed to a new path
    gone = {p: d for p, d in stored.items() if _under(p, found.roots) and p not in on_disk}
    gone_by_hash: dict[str, str] = {}
    for p, d in gone.items():
        gone_by_hash.setdefault(d.sha256, p)
    live_by_hash = {d.sha256: p for p, d in stored.items() if p not in gone}
    for f in found.files:
        old = stored.get(f.path)
        if old and old.size == f.size and old.mtime == f.mtime:
            result.unchanged.append(f.path)
            continue
        try:
            digest = file_sha256(f.path)
        except FileNotFoundError:
            result.failed.append(Skipped(f.path, "file disappeared while reading"))
            continue
        except OSError as exc:
            result.failed.append(Skipped(f.path, f"cannot read: {exc.strerror or exc}"))
            continue
        result.hashes[f.path] = digest
        if old:
            if old.sha256 == digest:
                result.unchanged.append(f.path)
                result.touch.append(f)
            else:
                result.update.append(f)
        elif digest in gone_by_hash:
            result.rename.append((gone_by_hash.pop(digest), f))
        elif digest in live_by_hash:
            result.copy.append((live_by_hash[digest], f))
        else:
            result.add.append(f)
    renamed_from = {old for old, _ in result.rename}
    result.remove = sorted(p for p in gone if p not in renamed_from)
    return result
