"""Ingestion throughput: the seed recipe (DESIGN.md section 3) against our pipeline, same files,
same embedder, one process.

    .venv/bin/python benchmarks/ingest.py                       # ../shared/data pdfs + squad docs
    .venv/bin/python benchmarks/ingest.py --limit-files 2       # a quick try
    .venv/bin/python benchmarks/ingest.py some/folder --json

Per folder:
  (a) seed: LangChain PyPDFLoader per PDF (TextLoader for text), CharacterTextSplitter(
      chunk_size=1000, chunk_overlap=200), HuggingFaceEmbeddings(model_name=<local MiniLM
      folder>), FAISS.from_documents; a file its loader cannot read is lost, as in the seed.
  (b) ours: IngestPipeline into a fresh temporary index (first run: everything is new).
Model loading is EXCLUDED for both: each embedder is loaded and run once on a short text
before its clock starts (load times are printed apart). Throughput is input pages per second
for PDFs (pages counted by PDFium, whether or not a recipe could read them) and input MB per
second for text files; "ratio" is seed time / our time.

"embedded" is the share of non-whitespace characters of the text each recipe's own loader
extracted that ended up inside an embedding: MiniLM reads 256 tokens ([CLS] and [SEP]
included) and silently drops the rest, so characters past that point of a seed chunk are not
embedded; overlapping chunks are counted once. Our chunks are sized in embedder tokens.

Finally `rag ingest` runs as a subprocess over all the folders' files into another fresh index
(model loading included this time, as a user sees it) for its peak memory (max RSS, from
getrusage(RUSAGE_CHILDREN)).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.loaders import load_file  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from ingest.split import Splitter, hf_token_offsets  # noqa: E402
from rag.embedder import Embedder  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.models import resolve_embedder  # noqa: E402
from rag.settings import Settings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_FOLDERS = [SHARED / "pdfs", SHARED / "squad-dev" / "docs"]
PDF = {".pdf"}
TEXT = {".txt", ".md", ".markdown"}


@dataclass
class Result:
    seconds: float = 0.0
    chunks: int = 0
    files_lost: list[str] = field(default_factory=list)
    embedded_share: float = 0.0  # of non-whitespace characters the recipe's loader extracted
    tokens_embedded: int = 0  # what the model really ran on, [CLS]/[SEP] included
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class FolderResult:
    folder: str
    files: int
    pdf_pages: int
    text_mb: float
    seed: Result
    ours: Result

    @property
    def ratio(self) -> float:
        return self.seed.seconds / self.ours.seconds if self.ours.seconds else float("inf")

    def rate(self, r: Result) -> dict[str, float]:
        """Pages/s over the PDFs and MB/s over the text files (the time covers both)."""
        out = {}
        if self.pdf_pages:
            out["pages_per_s"] = round(self.pdf_pages / r.seconds, 2)
        if self.text_mb:
            out["mb_per_s"] = round(self.text_mb / r.seconds, 4)
        return out


# -- coverage: how much of the text ended up inside an embedding ---------------------------


def _nonspace(text: str, start: int = 0, end: int | None = None) -> int:
    piece = text[start:end]
    return len(piece) - sum(ch.isspace() for ch in piece)


def _covered(text: str, spans: list[tuple[int, int]]) -> int:
    """Non-whitespace characters of `text` inside the union of `spans`."""
    total, reach = 0, 0
    for s, e in sorted(spans):
        s = max(s, reach)
        if e > s:
            total += _nonspace(text, s, e)
            reach = e
    return total


def seed_embedded_share(docs: list, chunks: list, tokenizer,
                        max_tokens: int) -> tuple[float, int]:
    """(share of the loaded text that the seed really embeds, tokens embedded). Each chunk is
    located in its page (CharacterTextSplitter keeps chunks verbatim) and cut where the
    embedder truncates it."""
    by_page: dict[tuple[str, Any], list] = {}
    for c in chunks:
        by_page.setdefault((c.metadata.get("source"), c.metadata.get("page")), []).append(c)
    total = embedded = tokens = 0
    for d in docs:
        text = d.page_content
        total += _nonspace(text)
        spans = []
        pos = 0
        for c in by_page.get((d.metadata.get("source"), d.metadata.get("page")), []):
            enc = tokenizer(c.page_content, add_special_tokens=False,
                            return_offsets_mapping=True, truncation=False, verbose=False)
            offsets = enc["offset_mapping"]
            tokens += min(len(offsets), max_tokens) + 2
            kept = offsets[max_tokens - 1][1] if len(offsets) > max_tokens else len(
                c.page_content)
            at = text.find(c.page_content, pos)
            if at < 0:
                at = text.find(c.page_content)
            if at < 0:  # not verbatim (should not happen): count it without overlap removal
                embedded += _nonspace(c.page_content, 0, kept)
                continue
            spans.append((at, at + kept))
            pos = at + 1
        embedded += _covered(text, spans)
    return (embedded / total if total else 0.0), tokens


def ours_embedded_share(index_dir: Path, files: list[Path], tokenizer) -> tuple[float, int]:
    """(share of our loaders' text inside stored chunks, tokens embedded); spans are exact."""
    store = IndexStore(index_dir)
    tokens = 0
    try:
        spans: dict[tuple[str, int | None], list[tuple[int, int]]] = {}
        for path, page, start, end, text in store.db.execute(
                'SELECT d.path, c.page, c.start, c."end", c.text FROM chunks c '
                "JOIN documents d ON d.id = c.doc_id"):
            spans.setdefault((path, page), []).append((start, end))
            tokens += len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])
        stored = set(store.documents())
    finally:
        store.close()
    total = embedded = 0
    for f in files:
        if str(f) not in stored:
            continue  # a file we could not read has no text to count (listed as lost)
        for page in load_file(f):
            total += _nonspace(page.text)
            embedded += _covered(page.text, spans.get((str(f), page.page), []))
    return (embedded / total if total else 0.0), tokens


# -- the two recipes -----------------------------------------------------------------------


def load_seed_embeddings(model_path: Path):
    from langchain_huggingface import HuggingFaceEmbeddings

    t0 = time.perf_counter()
    emb = HuggingFaceEmbeddings(model_name=str(model_path))
    emb.embed_query("warm up")
    return emb, time.perf_counter() - t0


def run_seed(files: list[Path], embeddings, tokenizer, max_tokens: int) -> Result:
    from langchain_community.document_loaders import PyPDFLoader, TextLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import CharacterTextSplitter

    result = Result()
    t0 = time.perf_counter()
    docs = []
    for f in files:
        try:
            loader = PyPDFLoader(str(f)) if f.suffix.lower() in PDF else TextLoader(str(f))
            docs.extend(loader.load())
        except Exception as exc:  # the seed has no error handling: a failing file is lost
            result.files_lost.append(f"{f.name}: {type(exc).__name__}: {exc}"[:200])
    t1 = time.perf_counter()
    splitter = CharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents(docs)
    t2 = time.perf_counter()
    if chunks:
        FAISS.from_documents(chunks, embeddings)
    t3 = time.perf_counter()
    result.seconds = round(t3 - t0, 3)
    result.chunks = len(chunks)
    result.phases = {"load": round(t1 - t0, 3), "split": round(t2 - t1, 3),
                     "embed+index": round(t3 - t2, 3)}
    share, result.tokens_embedded = seed_embedded_share(docs, chunks, tokenizer, max_tokens)
    result.embedded_share = round(share, 4)
    return result


def run_ours(files: list[Path], embedder: Embedder, tokenizer, work: Path) -> Result:
    settings = Settings(index_dir=work / "ours-index")
    t0 = time.perf_counter()
    report = IngestPipeline(settings, embedder).run([str(f) for f in files], show_bar=False)
    seconds = time.perf_counter() - t0
    result = Result(seconds=round(seconds, 3), chunks=report.chunks,
                    files_lost=[f"{Path(f['path']).name}: {f['error']}"[:200]
                                for f in report.failed])
    # where the time goes: parsing + splitting alone, one thread, after the timed run. The
    # pipeline overlaps this with embedding, so embed ~= total - (what was not overlapped).
    splitter = Splitter(hf_token_offsets(embedder.separate_tokenizer()),
                        min(settings.chunk_tokens, embedder.max_tokens), settings.chunk_overlap)
    t1 = time.perf_counter()
    for f in files:
        with contextlib.suppress(Exception):  # a file that fails was reported above as lost
            splitter.split(load_file(f), str(f))
    result.phases = {"parse+split alone": round(time.perf_counter() - t1, 3)}
    share, result.tokens_embedded = ours_embedded_share(settings.index_dir, files, tokenizer)
    result.embedded_share = round(share, 4)
    return result


def peak_rss_of_cli(files: list[Path], work: Path) -> tuple[float, float, int]:
    """Run `rag ingest` on the files; (peak RSS in MB, seconds, exit status)."""
    cmd = [sys.executable, "-m", "rag.cli", "ingest", *map(str, files), "--index",
           str(work / "cli-index"), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    # ru_maxrss is in KiB on Linux; it is the largest of all waited-for children, and this is
    # the only child this script starts
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(peak, 1), round(seconds, 2), proc.returncode


# -- main ----------------------------------------------------------------------------------


def pick_files(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in PDF | TEXT and not p.name.startswith("."))
    return files[:limit] if limit else files


def count_pdf_pages(files: list[Path]) -> int:
    import pypdfium2 as pdfium

    pages = 0
    for f in files:
        if f.suffix.lower() in PDF:
            try:
                pdf = pdfium.PdfDocument(f)
                pages += len(pdf)
                pdf.close()
            except pdfium.PdfiumError:
                pass
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, default=DEFAULT_FOLDERS)
    ap.add_argument("--limit-files", type=int, default=None, metavar="N",
                    help="use the first N files of each folder (quick tries)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    folders = []
    for folder in args.folders:
        if folder.is_dir():
            # absolute, as the pipeline stores paths (and the CLI child runs in a temp folder)
            folders.append(Path(os.path.abspath(folder)))
        else:
            print(f"skipping {folder}: not found", file=sys.stderr)
    if not folders:
        print("no input folders", file=sys.stderr)
        return 2

    settings = Settings()
    model_path = resolve_embedder(settings.embedder, settings.cache_dir)
    seed_emb, seed_load = load_seed_embeddings(model_path)
    t0 = time.perf_counter()
    ours_emb = Embedder.from_settings(settings)
    ours_emb.warm_up()
    ours_emb.embed_query("warm up")
    ours_load = time.perf_counter() - t0
    tokenizer = ours_emb.separate_tokenizer()
    max_tokens = ours_emb.max_tokens  # content tokens the model reads ([CLS]/[SEP] aside)

    results: list[FolderResult] = []
    all_files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for i, folder in enumerate(folders):
            files = pick_files(folder, args.limit_files)
            if not files:
                print(f"skipping {folder}: no PDF or text files", file=sys.stderr)
                continue
            all_files += files
            text_bytes = sum(f.stat().st_size for f in files if f.suffix.lower() in TEXT)
            seed = run_seed(files, seed_emb, tokenizer, max_tokens)
            work = Path(tmp) / f"run{i}"
            work.mkdir()
            ours = run_ours(files, ours_emb, tokenizer, work)
            results.append(FolderResult(str(folder), len(files), count_pdf_pages(files),
                                        round(text_bytes / 1e6, 4), seed, ours))
        peak_mb, cli_seconds, cli_status = peak_rss_of_cli(all_files, Path(tmp))

    out = {
        "model_load_excluded": True,
        "model_load_s": {"seed": round(seed_load, 2), "ours": round(ours_load, 2)},
        "embedder": {"path": str(model_path), "precision": ours_emb.precision,
                     "max_tokens": max_tokens},
        "folders": [{**asdict(r), "seed_rate": r.rate(r.seed), "ours_rate": r.rate(r.ours),
                     "ratio": round(r.ratio, 2)} for r in results],
        "cli": {"files": len(all_files), "peak_rss_mb": peak_mb, "seconds": cli_seconds,
                "exit_status": cli_status},
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"model load (excluded from the rates): seed {seed_load:.1f} s, ours {ours_load:.1f} s"
          f" ({out['embedder']['precision']})")
    for r in results:
        print(f"\n{r.folder}: {r.files} files, {r.pdf_pages} PDF pages, {r.text_mb:.2f} MB text")
        for name, res in (("seed", r.seed), ("ours", r.ours)):
            rate = ", ".join(f"{v} {k.replace('_per_s', '/s').replace('mb', 'MB')}"
                             for k, v in r.rate(res).items())
            phases = ", ".join(f"{k} {v:.2f} s" for k, v in res.phases.items())
            print(f"  {name}: {res.seconds:7.2f} s  {rate:22s} {res.chunks:5d} chunks, "
                  f"{res.tokens_embedded:7d} tokens embedded ({res.embedded_share:6.1%} of the "
                  f"text)  [{phases}]")
            for lost in res.files_lost:
                print(f"        lost {lost}")
        print(f"  ratio (seed time / our time): {r.ratio:.2f}x")
    print(f"\nrag ingest subprocess over {len(all_files)} files (model load included): "
          f"{cli_seconds:.1f} s, peak RSS {peak_mb:.0f} MB, exit status {cli_status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
