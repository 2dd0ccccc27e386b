"""Pieces every loader shares: the one error type callers catch, and text decoding."""

from __future__ import annotations

import codecs
import re
from pathlib import Path


class LoadError(Exception):
    """A file could not be turned into text, with a reason a user can act on.

    `str(err)` is the reason alone; callers add the path when they report it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Control bytes that never occur in real text files. Tab, newlines, form feed and ESC (coloured
# logs) are allowed; NUL is handled separately because one NUL already means "not text".
_CONTROL_BYTES = bytes([*range(0x01, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
# More than this share of control bytes in the sample means binary junk, not a text file.
_MAX_CONTROL_SHARE = 0.05
_SAMPLE = 1 << 16

# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def strip_bom(data: bytes) -> tuple[bytes, str | None]:
    """Return the data without its byte-order mark and the encoding the mark names."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :], encoding
    return data, None


def looks_binary(data: bytes) -> bool:
    """True for bytes that are not a text file in any single-byte or UTF-8 encoding."""
    if b"\x00" in data:
        return True
    sample = data[:_SAMPLE]
    if not sample:
        return False
    n_control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return n_control / len(sample) > _MAX_CONTROL_SHARE


def decode_text(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode a text file's bytes; return (text, encoding used).

    Order: byte-order mark, then the encoding the file declares (HTML), then UTF-8, then cp1252
    (what "ANSI" files on Windows are, and a superset of Latin-1's printable range), then
    Latin-1, which accepts every byte, so decoding never fails once the data is not binary.
    """
    body, bom_encoding = strip_bom(data)
    if bom_encoding is not None:
        try:
            return body.decode(bom_encoding), bom_encoding
        except UnicodeDecodeError as exc:
            raise LoadError(f"file is truncated or corrupt: invalid {bom_encoding} text") from exc
    if looks_binary(body):
        raise LoadError("binary content, not text")
    candidates = [declared] if declared else []
    candidates += ["utf-8", "cp1252", "latin-1"]
    for encoding in candidates:
        try:
            return body.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


_NEWLINES = re.compile(r"\r\n?")


def normalise_newlines(text: str) -> str:
    """CRLF and lone CR become LF, so splitters that look for blank lines find them."""
    return _NEWLINES.sub("\n", text)


def read_bytes(path: Path | str) -> bytes:
    """Read a whole file, turning the OS errors a user can meet into LoadError."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except MemoryError as exc:
        raise LoadError("file too large to read into memory") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        # The dispatcher checks the size first; this catches a file emptied in between.
        raise LoadError("empty file (0 bytes)")
    return data
