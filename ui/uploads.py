"""Check and store files uploaded in the browser, before they are indexed.

Uploaded files are kept in `Settings.upload_dir` (default `indexes/uploads/` in the repository;
set `upload_dir` in rag.toml or RAG_UPLOAD_DIR to move it). They stay there because the index
points at files on disk: a PDF page is rendered from its file, and re-uploading a file of the
same name replaces it, which the incremental ingest then sees as an update.

A browser-supplied name is untrusted: only its last path component is kept, characters that
are unsafe in file names are replaced, and a leading dot is dropped (hidden files are skipped
by ingestion, so a hidden name would be accepted and then silently ignored).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders import SUPPORTED_SUFFIXES

# Most file systems allow 255 bytes per name; leave room for the temp-file prefix and suffix.
MAX_NAME_BYTES = 200
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]", re.UNICODE)


class UploadRejected(ValueError):
    """An upload that will not be stored; the message says why, in the user's terms."""


@dataclass
class SavedUpload:
    name: str  # the name as uploaded
    path: Path  # where it was stored


def sanitize_filename(name: str) -> str:
    """A safe file name from an uploaded one, or UploadRejected if nothing usable is left."""
    # Browsers send a bare name, but a crafted request can send any path in either style.
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")  # controls, NUL
    base = _UNSAFE.sub("_", base).strip(" .")
    base = base.lstrip(".-_ ")
    if not base or not Path(base).stem.strip("._- "):
        raise UploadRejected(f"{name!r} is not a usable file name")
    return _truncate(base)


def _truncate(name: str) -> str:
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, suffix = os.path.splitext(name)
    budget = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore")
    return stem + suffix


def check_upload(name: str, size: int, max_mb: int) -> str:
    """The sanitized name if the upload may be stored; UploadRejected with the reason if not."""
    safe = sanitize_filename(name)
    suffix = Path(safe).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UploadRejected(f"{safe}: unsupported file type {suffix or '(none)'} "
                             f"(supported: {allowed})")
    if size > max_mb * 1024 * 1024:
        raise UploadRejected(f"{safe}: {size / 1024 / 1024:.1f} MB is over the upload limit of "
                             f"{max_mb} MB (setting max_upload_mb)")
    if size == 0:
        raise UploadRejected(f"{safe}: the file is empty")
    return safe


def save_upload(name: str, data: bytes, upload_dir: Path, max_mb: int) -> SavedUpload:
    """Store one upload in `upload_dir` (replacing a file of the same name) and say where.

    Written to a hidden temporary name and renamed, so a folder scan running at the same time
    never indexes half a file.
    """
    safe = check_upload(name, len(data), max_mb)
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = upload_dir / safe
    # belt and braces: the sanitized name has no separators, but never write outside the folder
    if target.resolve().parent != upload_dir.resolve():
        raise UploadRejected(f"{name!r} would be stored outside the upload folder")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise UploadRejected(f"{safe}: a non-file of that name is in the upload folder")
    tmp = upload_dir / f".{safe}.{os.getpid()}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return SavedUpload(name=name, path=target)
