"""SQLite store of documents and chunks (with their vectors), the index's source of truth.

Crash safety comes from SQLite: each document is replaced in one transaction, so a process
killed at any point leaves every document either fully old or fully new. The FAISS index is a
derived file named after the store's generation and written by temp file + rename; a reader that
finds no file for the current generation rebuilds it from the stored vectors. Nothing is ever
unpickled on load. Writers take an exclusive file lock; readers need none (WAL snapshots).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from rag.types import Chunk

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    warnings TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(sha256);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    heading TEXT,
    text TEXT NOT NULL,
    terms TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""


class IndexLockedError(RuntimeError):
    pass


class IndexMismatchError(RuntimeError):
    pass


@dataclass
class StoredDocument:
    id: int
    path: str
    sha256: str
    size: int
    mtime: float
    pages: int
    chunks: int
    ingested_at: float
    warnings: list[str]


class IndexStore:
    """One index folder. Open many readers; write only inside `writer()`."""

    DB = "store.sqlite"

    def __init__(self, index_dir: str | Path) -> None:
        self.dir = Path(index_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.dir / "write.lock"))
        self.db = sqlite3.connect(self.dir / self.DB, timeout=60, check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self._transaction():
            for stmt in _SCHEMA.strip().split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                            (str(SCHEMA_VERSION),))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        schema = int(self.get_meta("schema") or 0)
        if schema != SCHEMA_VERSION:
            raise IndexMismatchError(
                f"{self.dir} was written by an incompatible version (schema {schema}); "
                "ingest into a new index folder")

    def close(self) -> None:
        self.db.close()

    # -- locking and transactions -------------------------------------------------------

    @contextmanager
    def writer(self, timeout: float = 600) -> Iterator[IndexStore]:
        """Exclusive write access; a second writer waits, then fails with a clear message."""
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout as exc:
            raise IndexLockedError(
                f"another process is writing to {self.dir}; try again when it finishes") from exc
        try:
            yield self
        finally:
            self._lock.release()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _bump_generation(self) -> None:
        self.db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # -- metadata ----------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def check_embedder(self, name: str, dim: int) -> None:
        """Vectors from two embedders cannot share an index: refuse rather than mix them."""
        stored = self.get_meta("embedder")
        if stored is None:
            self.set_meta("embedder", json.dumps({"name": name, "dim": dim}))
            return
        info = json.loads(stored)
        if info["name"] != name or info["dim"] != dim:
            raise IndexMismatchError(
                f"{self.dir} holds vectors of embedder {info['name']!r} ({info['dim']}-d), "
                f"not {name!r} ({dim}-d); use another index folder or the same embedder")

    # -- documents ---------------------------------------------------------------------

    def documents(self) -> dict[str, StoredDocument]:
        rows = self.db.execute(
            "SELECT id, path, sha256, size, mtime, pages, chunks, ingested_at, warnings "
            "FROM documents").fetchall()
        return {r[1]: StoredDocument(*r[:8], warnings=json.loads(r[8])) for r in rows}

    def put_document(self, path: str, sha256: str, size: int, mtime: float, pages: int,
                     chunks: list[Chunk], vectors: np.ndarray, terms: list[str],
                     warnings: list[str]) -> int:
        """Insert or replace one document and all its chunks atomically."""
        if len(chunks) != len(vectors) or len(chunks) != len(terms):
            raise ValueError("chunks, vectors and terms must have the same length")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._transaction():
            self.db.execute("DELETE FROM documents WHERE path = ?", (path,))
            cur = self.db.execute(
                "INSERT INTO documents (path, sha256, size, mtime, pages, chunks, ingested_at, "
                "warnings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, sha256, size, mtime, pages, len(chunks), time.time(),
                 json.dumps(warnings)))
            doc_id = cur.lastrowid
            self.db.executemany(
                'INSERT INTO chunks (doc_id, page, start, "end", heading, text, terms, vector) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(doc_id, c.page, c.start, c.end, c.heading, c.text, t, v.tobytes())
                 for c, t, v in zip(chunks, terms, vectors, strict=True)])
            self._bump_generation()
        return int(doc_id)

    def rename_document(self, old: str, new: str, mtime: float) -> None:
        """A moved file keeps its chunks and vectors: only the path changes."""
        with self._transaction():
            self.db.execute("DELETE FROM documents WHERE path = ?", (new,))
            self.db.execute("UPDATE documents SET path = ?, mtime = ? WHERE path = ?",
                            (new, mtime, old))
            self._bump_generation()

    def copy_document(self, src: str, new: str, size: int, mtime: float) -> None:
        """A second file with the same content reuses the first one's chunks and vectors."""
        with self._transaction():
            self.db.execute("DELETE FROM documents WHERE path = ?", (new,))
            cur = self.db.execute(
                "INSERT INTO documents (path, sha256, size, mtime, pages, chunks, ingested_at, "
                "warnings) SELECT ?, sha256, ?, ?, pages, chunks, ?, warnings FROM documents "
                "WHERE path = ?", (new, size, mtime, time.time(), src))
            self.db.execute(
                'INSERT INTO chunks (doc_id, page, start, "end", heading, text, terms, vector) '
                'SELECT ?, page, start, "end", heading, text, terms, vector FROM chunks '
                "WHERE doc_id = (SELECT id FROM documents WHERE path = ?) ORDER BY id",
                (cur.lastrowid, src))
            self._bump_generation()

    def touch_document(self, path: str, mtime: float) -> None:
        """Same content, new mtime: remember it so the next run skips hashing the file."""
        with self._transaction():
            self.db.execute("UPDATE documents SET mtime = ? WHERE path = ?", (mtime, path))

    def remove_documents(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if not paths:
            return
        with self._transaction():
            self.db.executemany("DELETE FROM documents WHERE path = ?", [(p,) for p in paths])
            self._bump_generation()

    # -- chunks ------------------------------------------------------------------------

    def count_chunks(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, Chunk]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f'SELECT c.id, c.text, d.path, c.page, c.start, c."end", c.heading FROM chunks c '
            f"JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})", ids).fetchall()
        return {r[0]: Chunk(text=r[1], source=r[2], page=r[3], start=r[4], end=r[5],
                            heading=r[6], id=r[0]) for r in rows}

    def iter_vectors(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, in one read snapshot."""
        cur = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cur.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield ids, vecs.reshape(len(rows), -1)

    def iter_terms(self) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT id, terms FROM chunks ORDER BY id")

    def stats(self) -> dict:
        docs, pages, updated = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(pages), 0), MAX(ingested_at) FROM documents").fetchone()
        return {"index_dir": str(self.dir), "documents": docs, "pages": pages,
                "chunks": self.count_chunks(), "updated_at": updated,
                "generation": self.generation}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
