"""Stream files -> pages -> chunks -> vectors -> index, one atomic commit per document.

Parsing and splitting run on a worker thread while the main thread embeds, so the two overlap;
chunks of several small files are embedded together in length-sorted batches. A file that fails
to load is reported with its reason and everything else goes on.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, load_file
from ingest.split import Splitter, hf_token_offsets
from ingest.sync import FoundFile, Skipped, plan, scan
from rag.embedder import Embedder
from rag.index.dense import DenseIndex
from rag.index.sparse import SparseIndex
from rag.index.store import IndexStore
from rag.index.terms import terms
from rag.settings import Settings
from rag.types import Chunk

# embed once this many chunks are waiting: big enough to fill length-sorted batches
_EMBED_GROUP = 512
_DONE = object()


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0  # chunks embedded in this run
    pages: int = 0  # pages (or pageless files) read in this run
    seconds: float = 0.0
    index: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Parsed:
    file: FoundFile
    chunks: list[Chunk] = field(default_factory=list)
    pages: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


# progress(event, info): event is "start" (info: files, total files to read), "file" (one
# file done: path, status) or "done"; the UI's progress bar and the CLI's tqdm both use it
ProgressFn = Callable[[str, dict[str, Any]], None]


class IngestPipeline:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings)
        self._embedder_checked = False  # against the index's embedder, once per run

    def run(self, paths: Sequence[str | Path], progress: ProgressFn | None = None,
            show_bar: bool | None = None, lock_timeout: float = 600) -> IngestReport:
        """Bring the index in line with `paths`. Waits up to `lock_timeout` seconds for
        another writer, then raises IndexLockedError."""
        started = time.perf_counter()
        report = IngestReport()
        found = scan(list(paths), SUPPORTED_SUFFIXES, self.settings.follow_symlinks)
        report.skipped = [asdict(s) for s in found.skipped]
        store = IndexStore(self.settings.index_dir)
        try:
            with store.writer(timeout=lock_timeout):
                generation = store.generation
                todo = plan(found, store.documents())
                report.failed += [{"path": s.path, "error": s.reason}
                                  for s in found.failed + todo.failed]
                report.unchanged = list(todo.unchanged)
                for f in todo.touch:
                    store.touch_document(f.path, f.mtime)
                for old, f in todo.rename:
                    store.rename_document(old, f.path, f.mtime)
                    report.renamed.append({"from": old, "to": f.path})
                for src, f in todo.copy:
                    store.copy_document(src, f.path, f.size, f.mtime)
                    report.added.append(f.path)
                store.remove_documents(todo.remove)
                report.removed = list(todo.remove)
                work = todo.add + todo.update
                if work:
                    updating = {f.path for f in todo.update}
                    self._ingest_files(store, work, todo.hashes, updating, report, progress,
                                       show_bar)
                if store.generation != generation or not _derived_current(store):
                    # derived indexes are written once per run, after all documents commit;
                    # also when an interrupted run committed documents but died before
                    # writing them, or every reader would rebuild them on each open
                    self._write_derived(store)
                report.index = store.stats()
        finally:
            store.close()
        report.seconds = round(time.perf_counter() - started, 3)
        if progress:
            progress("done", {"report": report})
        return report

    def _write_derived(self, store: IndexStore) -> None:
        import json

        info = store.get_meta("embedder")
        if info is None:
            # nothing was ever embedded here: no vectors to index, and no reason to load the
            # embedder just to learn its dimension (readers rebuild from the store if needed)
            return
        DenseIndex.build(store, json.loads(info)["dim"]).save(store.dir)
        SparseIndex.build(store).save(store.dir)

    def _ingest_files(self, store: IndexStore, work: list[FoundFile], hashes: dict[str, str],
                      updating: set[str], report: IngestReport, progress: ProgressFn | None,
                      show_bar: bool | None) -> None:
        # The embedder model loads at the first commit with text to embed: a run whose files
        # all fail (re-read on every run until fixed) only splits, which needs the tokenizer.
        self._embedder_checked = False
        chunk_tokens = min(self.settings.chunk_tokens, self.embedder.max_tokens)
        splitter = Splitter(hf_token_offsets(self.embedder.separate_tokenizer()),
                            chunk_tokens, self.settings.chunk_overlap)
        # "start" comes before any file is read, so a listener sees the whole run
        if progress:
            progress("start", {"files": len(work)})
        parsed: queue.Queue = queue.Queue(maxsize=64)
        stop = threading.Event()
        worker = threading.Thread(target=self._parse_all, args=(work, splitter, parsed, stop),
                                  name="ingest-parse", daemon=True)
        worker.start()
        bar = _bar(len(work), show_bar)
        pending: list[_Parsed] = []
        try:
            while True:
                item = parsed.get()
                if item is not _DONE:
                    pending.append(item)
                waiting = sum(len(p.chunks) for p in pending)
                if pending and (item is _DONE or waiting >= _EMBED_GROUP):
                    self._commit(store, pending, hashes, updating, report, progress, bar)
                    pending = []
                if item is _DONE:
                    break
        finally:
            stop.set()
            worker.join(timeout=5)
            if bar is not None:
                bar.close()

    def _parse_all(self, work: list[FoundFile], splitter: Splitter, out: queue.Queue,
                   stop: threading.Event) -> None:
        for f in work:
            if stop.is_set():
                return
            out.put(self._parse(f, splitter, self._password_for(f.path)))
        out.put(_DONE)

    def _password_for(self, path: str) -> str | None:
        """The configured password of a PDF: keyed by its path (absolute, ~ or relative to
        the working directory) or by its bare file name."""
        passwords = self.settings.pdf_passwords
        if not passwords or not path.lower().endswith(".pdf"):
            return None
        for key, password in passwords.items():
            if os.path.abspath(os.path.expanduser(key)) == path:
                return password
        return passwords.get(os.path.basename(path))

    @staticmethod
    def _parse(f: FoundFile, splitter: Splitter, password: str | None = None) -> _Parsed:
        item = _Parsed(f)
        try:
            pages = load_file(Path(f.path), password)
        except LoadError as exc:
            item.error = str(exc)
            return item
        except Exception as exc:  # a loader bug must not stop the folder
            item.error = f"unexpected error while reading: {type(exc).__name__}: {exc}"
            return item
        item.pages = len(pages)
        empty = [p.page for p in pages if not p.text.strip() and p.page is not None]
        if empty:
            listed = ", ".join(map(str, empty[:20])) + (" ..." if len(empty) > 20 else "")
            item.warnings.append(
                f"no text layer on page(s) {listed} (scanned image?); those pages are not "
                "searchable")
        item.chunks = splitter.split(pages, f.path)
        if not item.chunks:
            item.error = "no extractable text (scanned or image-only document?)"
        return item

    def _commit(self, store: IndexStore, batch: list[_Parsed], hashes: dict[str, str],
                updating: set[str], report: IngestReport, progress: ProgressFn | None,
                bar) -> None:
        good = [p for p in batch if p.error is None]
        texts = [c.text for p in good for c in p.chunks]
        vectors = None
        if texts:
            if not self._embedder_checked:
                store.check_embedder(self.settings.embedder, self.embedder.dim)
                self._embedder_checked = True
            vectors = self.embedder.embed_documents(texts)
        pos = 0
        for p in batch:
            path = p.file.path
            status = "failed"
            if p.error is not None:
                report.failed.append({"path": path, "error": p.error})
            else:
                n = len(p.chunks)
                store.put_document(path, hashes[path], p.file.size, p.file.mtime, p.pages,
                                   p.chunks, vectors[pos:pos + n],
                                   [" ".join(terms(c.text)) for c in p.chunks], p.warnings)
                pos += n
                status = "updated" if path in updating else "added"
                (report.updated if status == "updated" else report.added).append(path)
                report.chunks += n
                report.pages += p.pages
                report.warnings += [{"path": path, "warning": w} for w in p.warnings]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(chunks=report.chunks, failed=len(report.failed))
            if progress:
                progress("file", {"path": path, "status": status, "error": p.error})


def _bar(total: int, show: bool | None):
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="ingest", file=sys.stderr)


def _derived_current(store: IndexStore) -> bool:
    """Are the FAISS and BM25 files of the store's current generation on disk?"""
    gen = store.generation
    return (DenseIndex.path_for(store.dir, gen).exists()
            and SparseIndex.path_for(store.dir, gen).exists())


def ingest(paths: Sequence[str | Path], settings: Settings | None = None,
           embedder: Embedder | None = None, progress: ProgressFn | None = None,
           lock_timeout: float = 600) -> IngestReport:
    """Ingest files and folders into `settings.index_dir` (incrementally)."""
    return IngestPipeline(settings or Settings.load(), embedder).run(
        paths, progress, lock_timeout=lock_timeout)


__all__ = ["IngestPipeline", "IngestReport", "Skipped", "ingest"]
