"""Ingestion end to end on real files: bad inputs, provenance, incremental sync, crash safety.

Everything here runs the real pipeline with the real MiniLM embedder (the session fixture), real
PDFs written by reportlab and real subprocesses; nothing needs ../shared/data.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from badfiles import GOOD_PDF_PAGES, USER_PASSWORD, build_mixed_folder, make_user_encrypted_pdf

from ingest.loaders import load_file
from ingest.pipeline import IngestPipeline, IngestReport
from rag.embedder import Embedder
from rag.index.dense import DenseIndex, gpu_available
from rag.index.sparse import SparseIndex
from rag.index.store import IndexLockedError, IndexStore
from rag.retrieve import Retriever
from rag.settings import Settings
from rag.types import Chunk

# -- helpers ------------------------------------------------------------------------------


def _run(settings: Settings, embedder: Embedder, *paths: Path, **kwargs: Any) -> IngestReport:
    return IngestPipeline(settings, embedder).run([str(p) for p in paths], show_bar=False,
                                                  **kwargs)


def _all_chunks(store: IndexStore) -> list[Chunk]:
    ids = [int(i) for batch, _ in store.iter_vectors() for i in batch]
    return list(store.chunks_by_id(ids).values())


def _found(retriever: Retriever, query: str, path: Path, page: int | None, text: str,
           mode: str = "hybrid", k: int = 3) -> bool:
    """Does a top-k passage for `query` come from `path`, `page` and contain `text`?"""
    return any(p.chunk.source == str(path) and p.chunk.page == page and text in p.chunk.text
               for p in retriever.retrieve(query, k=k, mode=mode))


def assert_index_consistent(settings: Settings) -> int:
    """SQLite is sound, every document's chunk count matches its rows, and the FAISS and BM25
    indexes a reader opens hold exactly the stored chunks. Returns the chunk count."""
    store = IndexStore(settings.index_dir)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        bad = store.db.execute(
            "SELECT d.path, d.chunks, COUNT(c.id) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id "
            "HAVING d.chunks != COUNT(c.id)").fetchall()
        assert bad == [], f"documents with missing or extra chunks: {bad}"
        n = store.count_chunks()
        dim = json.loads(store.get_meta("embedder"))["dim"]
        dense = DenseIndex.open(store, dim, use_gpu=False)
        sparse = SparseIndex.open(store)
        assert dense.size == n and sparse.size == n
        assert dense.generation == sparse.generation == store.generation
        ids = {int(i) for batch, _ in store.iter_vectors() for i in batch}
        assert set(sparse.ids.tolist()) == ids
        return n
    finally:
        store.close()


_WORDS = [
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kelp", "lagoon", "meadow", "nickel", "orchid", "pebble", "quartz", "raven",
    "saffron", "tundra", "umber", "valley", "willow", "yarrow", "zephyr", "granite", "copper",
    "silver", "maple", "birch", "falcon", "heron", "otter", "badger", "lantern", "compass",
    "anchor",
]


def _prose(seed: int, words: int) -> str:
    """Deterministic filler text in paragraphs of about 60 words (several per chunk)."""
    rng = random.Random(seed)
    paragraphs = []
    while words > 0:
        sentences = []
        for _ in range(6):
            sentence = " ".join(rng.choice(_WORDS) for _ in range(10))
            sentences.append(sentence.capitalize() + ".")
        paragraphs.append(" ".join(sentences))
        words -= 60
    return "\n\n".join(paragraphs) + "\n"


def _make_outline_pdf(path: Path) -> Path:
    """GOOD_PDF_PAGES with one bookmark per page: the loader reads headings from the outline."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    for number, text in enumerate(GOOD_PDF_PAGES, start=1):
        title, _, body = text.partition("\n\n")
        c.bookmarkPage(f"p{number}")
        c.addOutlineEntry(title, f"p{number}", level=0)
        c.drawString(72, 770, title)
        y = 740
        for line in body.split("\n"):
            c.drawString(72, y, line)
            y -= 14
        c.showPage()
    c.save()
    return path


def _cli_env() -> dict[str, str]:
    # the child must not pick up a developer's RAG_* settings or reach for a model hub
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


# -- a folder of good and bad files -------------------------------------------------------


def test_mixed_folder_reports_each_bad_file_and_ingests_every_good_one(settings, embedder,
                                                                        tmp_path):
    docs = tmp_path / "docs"
    info = build_mixed_folder(docs)
    failures = dict(info["failures"])
    # a second encrypted file whose password is never given; encrypted.pdf gets a wrong one
    make_user_encrypted_pdf(docs / "locked.pdf", password="another-secret")
    failures["locked.pdf"] = "PDF is encrypted and needs a password"
    failures["encrypted.pdf"] = "wrong password for encrypted PDF"
    # hidden files and folders, and types no loader reads: skipped with a reason, not failed
    (docs / ".hidden.txt").write_text("hidden notes\n", encoding="utf-8")
    (docs / ".git").mkdir()
    (docs / ".git" / "config.txt").write_text("[core]\n", encoding="utf-8")
    (docs / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (docs / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    skipped = {".hidden.txt": "hidden", ".git": "hidden", "photo.png": "unsupported file type",
               "table.csv": "unsupported file type"}
    # a good file that is deleted after planning, before it is read: a real race, made
    # deterministic by deleting it when the pipeline announces that reading starts
    vanishing = docs / "zz_vanishing.txt"
    vanishing.write_text("This note is deleted while the ingest runs.\n", encoding="utf-8")
    failures["zz_vanishing.txt"] = "file disappeared while reading"

    def progress(event: str, data: dict[str, Any]) -> None:
        if event == "start":
            vanishing.unlink()

    wrong = settings.replace(pdf_passwords={"encrypted.pdf": "not-the-password"})
    report = _run(wrong, embedder, docs, progress=progress)

    failed = {Path(f["path"]).relative_to(docs).as_posix(): f["error"] for f in report.failed}
    assert set(failed) == set(failures)
    for name, reason in failures.items():
        assert reason in failed[name], (name, failed[name])
    reasons = {Path(s["path"]).relative_to(docs).as_posix(): s["reason"] for s in report.skipped}
    for name, reason in skipped.items():
        assert reason in reasons[name], (name, reasons.get(name))
    for loop in info["symlink_loops"]:
        assert "symlink loop" in reasons[loop]
    assert sorted(report.added) == sorted(str(docs / p) for p in info["good"])
    assert not report.ok
    assert [w["path"] for w in report.warnings] == [str(docs / "scanned_page2.pdf")]
    assert "no text layer on page(s) 2" in report.warnings[0]["warning"]

    n = assert_index_consistent(settings)
    assert n == report.chunks == report.index["chunks"]
    retriever = Retriever.open(settings, embedder)
    stored = {c.source for c in _all_chunks(retriever.store)}
    assert stored == {str(docs / p) for p in info["good"]}  # nothing of a bad or skipped file
    for rel, good in info["good"].items():
        for page, text in good["contains"]:
            assert _found(retriever, text, docs / rel, page, text), (rel, page, text)

    # the right password: only that file is read again, the good ones stay unchanged
    right = settings.replace(pdf_passwords={str(docs / "encrypted.pdf"): USER_PASSWORD})
    again = _run(right, embedder, docs)
    assert again.added == [str(docs / "encrypted.pdf")]
    assert sorted(again.unchanged) == sorted(str(docs / p) for p in info["good"])
    assert {Path(f["path"]).name for f in again.failed} == (
        {Path(p).name for p in failures} - {"encrypted.pdf", "zz_vanishing.txt"})
    retriever.refresh()
    assert _found(retriever, "3,600 cubic metres", docs / "encrypted.pdf", 2, "3,600 cubic",
                  mode="bm25", k=5)
    total = assert_index_consistent(settings)

    # files that still fail are read again on every run; with nothing to embed, that needs
    # the embedder's tokenizer only, never its model
    cold = Embedder("minilm")
    third = _run(right, cold, docs)
    assert third.added == [] and third.chunks == 0
    assert {f["path"] for f in third.failed} == {f["path"] for f in again.failed}
    assert cold._model is None, "re-reading failed files loaded the embedder"
    assert assert_index_consistent(settings) == total


def test_every_chunk_keeps_source_page_exact_span_and_heading(settings, embedder, tmp_path):
    docs = tmp_path / "docs"
    info = build_mixed_folder(docs)
    _make_outline_pdf(docs / "outlined.pdf")
    _run(settings, embedder, docs)
    store = IndexStore(settings.index_dir)
    chunks = _all_chunks(store)
    assert chunks
    pages_of: dict[str, list] = {}
    for c in chunks:
        if c.source not in pages_of:
            pages_of[c.source] = load_file(c.source)
        pages = pages_of[c.source]
        if c.page is None:
            assert len(pages) == 1 and pages[0].page is None
            page_text = pages[0].text
        else:
            assert pages[c.page - 1].page == c.page
            page_text = pages[c.page - 1].text
        assert 0 <= c.start < c.end <= len(page_text)
        assert page_text[c.start:c.end] == c.text, (c.source, c.page, c.start)
    # PDF chunks carry their page numbers; pageless formats carry None
    assert {c.page for c in chunks if c.source.endswith("good.pdf")} == {1, 2, 3}
    assert {c.page for c in chunks if c.source.endswith(".txt")} == {None}
    for rel in info["good"]:
        assert any(c.source == str(docs / rel) for c in chunks), rel

    def headings_of(name: str, text: str) -> list[str]:
        (chunk,) = [c for c in chunks if c.source == str(docs / name) and text in c.text]
        # sections too small to stand alone share a chunk: "Birds of the Marsh / Waders"
        return (chunk.heading or "").split(" / ")

    assert "Birds of the Marsh" in headings_of("guide.md", "marsh harrier")
    assert "Waders" in headings_of("guide.md", "Curlews")
    assert "Budget" in headings_of("minutes.docx", "1.2 million")
    assert "Warranty" in headings_of("faq.html", "five years")
    assert "Irrigation" in headings_of("outlined.pdf", "3,600 cubic metres")
    assert headings_of("ferry.txt", "07:45") == [""]  # plain text has no headings
    store.close()


# -- incremental sync ----------------------------------------------------------------------


def test_incremental_runs_touch_only_what_changed(settings, embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    from badfiles import make_good_pdf

    make_good_pdf(docs / "orchard.pdf", GOOD_PDF_PAGES)
    (docs / "ferry.txt").write_text(
        "The ferry to Isle Marrow leaves at 07:45 and the fare is paid in quillcoins.\n",
        encoding="utf-8")
    (docs / "lighthouse.md").write_text(
        "# Lighthouse\n\nThe Gannet Rock lighthouse was lit in 1884 by keeper Tobias Wren.\n",
        encoding="utf-8")
    (docs / "bakery.txt").write_text(
        "The bakery on Quay Street sells sourdough loaves baked with rye from Harlow farm.\n\n"
        + _prose(3, 400), encoding="utf-8")

    first = _run(settings, embedder, docs)
    assert len(first.added) == 4 and first.chunks > 4
    total = assert_index_consistent(settings)

    # unchanged folder: nothing embedded, and the embedder model is never even loaded
    cold = Embedder("minilm")
    rerun = _run(settings, cold, docs)
    assert cold._model is None, "an unchanged re-run loaded the embedder"
    assert rerun.chunks == 0 and rerun.added == rerun.updated == rerun.removed == []
    assert sorted(rerun.unchanged) == sorted(str(p) for p in docs.iterdir())
    # generous: the first run parsed and embedded, the re-run only listed and stat()ed files
    assert rerun.seconds < first.seconds / 2, (rerun.seconds, first.seconds)

    # changed file: its old text leaves the index, its new text is found
    ferry = docs / "ferry.txt"
    ferry.write_text("The ferry to Isle Marrow now leaves at 09:10; fares are paid in "
                     "shellmarks at the harbour office.\n", encoding="utf-8")
    changed = _run(settings, embedder, docs)
    assert changed.updated == [str(ferry)] and changed.added == []
    assert changed.chunks == 1
    retriever = Retriever.open(settings, embedder)
    assert retriever.retrieve("quillcoins", k=5, mode="bm25") == []
    assert not any("quillcoins" in c.text for c in _all_chunks(retriever.store))
    assert _found(retriever, "shellmarks", ferry, None, "09:10", mode="bm25")
    assert _found(retriever, "When does the ferry leave now?", ferry, None, "09:10")
    assert assert_index_consistent(settings) == total

    # removed file: deleted from the index; rebuilding FAISS needs no embedder either
    (docs / "lighthouse.md").unlink()
    cold = Embedder("minilm")
    removed = _run(settings, cold, docs)
    assert removed.removed == [str(docs / "lighthouse.md")] and removed.chunks == 0
    assert cold._model is None
    retriever.refresh()
    assert retriever.retrieve("Gannet Rock lighthouse keeper Wren", k=5, mode="bm25") == []
    after_remove = assert_index_consistent(settings)
    assert after_remove < total

    # renamed file (and a copy): vectors are reused, nothing is embedded
    bakery, moved = docs / "bakery.txt", docs / "shops" / "bakery-notes.txt"
    moved.parent.mkdir()
    bakery.rename(moved)
    (docs / "orchard-copy.pdf").write_bytes((docs / "orchard.pdf").read_bytes())
    cold = Embedder("minilm")
    renamed = _run(settings, cold, docs)
    assert renamed.renamed == [{"from": str(bakery), "to": str(moved)}]
    assert renamed.added == [str(docs / "orchard-copy.pdf")]
    assert renamed.chunks == 0 and renamed.removed == []
    assert cold._model is None
    orchard_chunks = sum(1 for c in _all_chunks(retriever.store) if c.source.endswith(
        "orchard.pdf"))
    assert assert_index_consistent(settings) == after_remove + orchard_chunks
    retriever.refresh()
    assert _found(retriever, "sourdough rye Harlow", moved, None, "Harlow farm", mode="bm25")
    assert _found(retriever, "3,600 cubic metres", docs / "orchard-copy.pdf", 2, "3,600",
                  mode="bm25", k=5)


def test_run_interrupted_after_its_commits_is_finished_by_the_next(settings, embedder,
                                                                    tmp_path):
    """Ctrl-C after the last document committed but before FAISS/BM25 were written: the next
    run, with nothing to embed, writes them, so readers do not rebuild them on every open."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha notes about the tide tables.\n", encoding="utf-8")
    _run(settings, embedder, docs)
    (docs / "b.txt").write_text("Beta notes about the harbour crane.\n", encoding="utf-8")

    def interrupt(event: str, data: dict[str, Any]) -> None:
        if event == "file":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(settings, embedder, docs, progress=interrupt)
    store = IndexStore(settings.index_dir)
    assert str(docs / "b.txt") in store.documents()
    assert not DenseIndex.path_for(store.dir, store.generation).exists()

    cold = Embedder("minilm")
    report = _run(settings, cold, docs)
    assert report.chunks == 0 and cold._model is None
    assert DenseIndex.path_for(store.dir, store.generation).exists()
    assert SparseIndex.path_for(store.dir, store.generation).exists()
    assert assert_index_consistent(settings) == 2
    store.close()


# -- concurrency and crashes ---------------------------------------------------------------


def test_second_writer_is_refused_and_readers_see_whole_documents(settings, embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    facts = {f"f{i}.txt": f"Fact {i}: the depot number {i} holds {100 + i} crates of "
                          f"{_WORDS[i]} tiles.\n\n" + _prose(i, 200) for i in range(4)}
    for name, text in facts.items():
        (docs / name).write_text(text, encoding="utf-8")

    seen: list[tuple[str, int]] = []

    def during_write(event: str, data: dict[str, Any]) -> None:
        if event != "file":
            return
        # the writer holds the lock here, between two document commits
        other = IndexStore(settings.index_dir)
        with pytest.raises(IndexLockedError, match="another process is writing"), \
                other.writer(timeout=0.2):
            pass
        other.close()
        # a reader needs no lock and sees whole documents only
        n = assert_index_consistent(settings)
        reader = Retriever.open(settings, embedder)
        i = int(Path(data["path"]).stem[1:])
        hits = reader.retrieve(f"depot number {i} crates", k=3, mode="bm25")
        assert hits and hits[0].chunk.source == data["path"]
        reader.store.close()
        seen.append((data["path"], n))

    report = _run(settings, embedder, docs, progress=during_write)
    assert len(seen) == 4 and report.ok
    counts = [n for _, n in seen]
    assert counts == sorted(counts) and counts[-1] == report.chunks

    # and a whole pipeline run is refused while another writer holds the lock
    holder = IndexStore(settings.index_dir)
    (docs / "late.txt").write_text("A late note.\n", encoding="utf-8")
    with holder.writer(), pytest.raises(IndexLockedError, match="another process is writing"):
        _run(settings, embedder, docs, lock_timeout=0.2)
    holder.close()


def test_sigkill_mid_run_leaves_a_usable_index_and_the_next_run_finishes(settings, embedder,
                                                                          tmp_path):
    root = tmp_path / "docs"
    (root / "prev").mkdir(parents=True)
    prev = root / "prev" / "notes.txt"
    prev.write_text("The old signal box at Fenwick Junction was closed in 1967.\n",
                    encoding="utf-8")
    _run(settings, embedder, root)
    before = assert_index_consistent(settings)

    # the killed run: one file of 600 small sections commits first (one embedding group of at
    # least 512 chunks, embedded in about a second), then about 190 full-size chunks follow
    # (seconds of embedding), so the process is still at work when the first commit is seen
    tiny = root / "a_tiny.md"
    # (each section is just above the size at which a section merges with the next)
    tiny.write_text("".join(f"## Station {i}\n\n" + f"Platform {i} has a bench. " * 12 + "\n\n"
                            for i in range(600)), encoding="utf-8")
    longs = [root / f"b_long_{i:02d}.txt" for i in range(3)]
    for i, path in enumerate(longs):
        path.write_text(_prose(100 + i, 10_000), encoding="utf-8")
    cmd = [sys.executable, "-m", "rag.cli", "ingest", str(root), "--index",
           str(settings.index_dir), "--json"]
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_cli_env(), stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    watcher = sqlite3.connect(settings.index_dir / IndexStore.DB, timeout=30)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            row = watcher.execute("SELECT 1 FROM documents WHERE path = ?",
                                  (str(tiny),)).fetchone()
            if row:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + \
            log.read_text(errors="replace")[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.close()
    assert proc.returncode == -signal.SIGKILL

    store = IndexStore(settings.index_dir)
    docs_after_kill = set(store.documents())
    assert str(prev) in docs_after_kill and str(tiny) in docs_after_kill
    assert not {str(p) for p in longs} <= docs_after_kill, "the kill came after the last commit"
    store.close()
    # the index is whole: old and newly committed documents are found, counts agree
    n = assert_index_consistent(settings)
    assert n > before
    retriever = Retriever.open(settings, embedder)
    assert _found(retriever, "Fenwick Junction signal box", prev, None, "1967")
    assert _found(retriever, "Platform 421 bench", tiny, None, "Platform 421", mode="bm25")
    retriever.store.close()

    # the next run picks up where the killed one stopped (the lock died with the process)
    report = _run(settings, embedder, root)
    assert str(tiny) in report.unchanged and report.ok
    assert sorted(report.added) == sorted(str(p) for p in longs if str(p) not in
                                          docs_after_kill)
    store = IndexStore(settings.index_dir)
    assert set(store.documents()) == {str(prev), str(tiny), *map(str, longs)}
    store.close()
    assert assert_index_consistent(settings) == report.index["chunks"]


# -- GPU -----------------------------------------------------------------------------------


@pytest.mark.gpu
def test_dense_index_moves_to_the_gpu_when_there_is_one(tmp_path):
    import faiss
    import numpy as np

    if not hasattr(faiss, "StandardGpuResources"):
        pytest.skip("faiss was built without GPU support (faiss-cpu is installed)")
    if not gpu_available():
        pytest.skip("faiss has GPU support but sees no CUDA device")
    store = IndexStore(tmp_path)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(50, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [Chunk(f"chunk {i}", "/doc", 1, i, i + 1) for i in range(50)]
    store.put_document("/doc", "sha", 1, 1.0, 1, chunks, vecs, ["t"] * 50, [])
    cpu = DenseIndex.build(store, 16)
    cpu.save(tmp_path)
    gpu = DenseIndex.open(store, 16)  # use_gpu=None: on the GPU when one is available
    assert gpu.on_gpu
    index = faiss.downcast_index(gpu.index)
    inner = getattr(index, "index", None)  # the flat index inside the id map
    names = [type(index).__name__] + ([type(faiss.downcast_index(inner)).__name__]
                                      if inner is not None else [])
    assert any(name.startswith("Gpu") for name in names), names
    assert gpu.search(vecs[7], 3) == pytest.approx(cpu.search(vecs[7], 3))
    assert gpu.save(tmp_path).exists()  # saving copies it back to the CPU first
    store.close()

