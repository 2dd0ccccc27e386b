"""Turn one document file into pages of text: the first step of ingestion.

`load_file(path)` picks the loader by suffix and returns `list[Page]` (one per PDF page; a
single page with page=None for pageless formats). Every failure a user can meet with real
files (encrypted, truncated, empty, binary, vanished, unreadable) raises `LoadError` whose
message is the specific reason, so ingestion can report it and carry on with the next file.

PDF loading uses PDFium, which is not thread-safe: call `load_file` from one thread at a time
(see `ingest.loaders.pdf.PDFIUM_LOCK`); separate processes are fine.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from rag.types import Page

from .base import LoadError

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".pdf", ".txt", ".md", ".markdown", ".html", ".htm", ".docx"}
)

__all__ = ["SUPPORTED_SUFFIXES", "LoadError", "is_supported", "load_file"]


def is_supported(path: Path | str) -> bool:
    """True if `load_file` has a loader for this file's suffix (case-insensitive)."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def _loader_for(suffix: str) -> Callable[[Path, str | None], list[Page]]:
    # Imported on demand: PDFium's native library, lxml and python-docx are slow to import
    # and most callers (e.g. a folder scan) only need SUPPORTED_SUFFIXES.
    if suffix == ".pdf":
        from .pdf import load_pdf

        return load_pdf
    if suffix == ".txt":
        from .text import load_txt

        return load_txt
    if suffix in (".md", ".markdown"):
        from .text import load_markdown

        return load_markdown
    if suffix in (".html", ".htm"):
        from .html import load_html

        return load_html
    if suffix == ".docx":
        from .docx import load_docx

        return load_docx
    raise LoadError(f"unsupported file type: {suffix or '(no suffix)'}")


def _check_file(path: Path) -> None:
    """Fail early, with a precise reason, on anything that is not a non-empty regular file."""
    try:
        st = os.stat(path)  # follows symlinks, like the loaders will
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise LoadError("broken symlink: its target does not exist") from exc
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("symlink loop") from exc
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise LoadError("is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device named like a document would block or never end when read.
        raise LoadError("not a regular file (device, socket or pipe)")
    if st.st_size == 0:
        raise LoadError("empty file (0 bytes)")


def load_file(path: Path | str, password: str | None = None) -> list[Page]:
    """Load a supported document into pages; raise LoadError with the reason on failure.

    `password` is only used for encrypted PDFs. Not thread-safe for PDFs (see module doc).
    """
    path = Path(path)
    loader = _loader_for(path.suffix.lower())
    _check_file(path)
    try:
        return loader(path, password)
    except LoadError:
        raise
    # Loaders translate their libraries' errors; what is left are OS errors while reading,
    # e.g. the file deleted or its disk unmounted between the checks and the read.
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except IsADirectoryError as exc:
        raise LoadError("is a directory, not a file") from exc
    except MemoryError as exc:
        raise LoadError("file too large to load into memory") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
