"""Sidebar section that adds documents: upload files or name a folder, then index them.

Ingestion is incremental (unchanged files are not re-read). Uploads are stored in
`Settings.upload_dir` first (see ui/uploads.py), then only those files are indexed, so an
upload never removes anything else from the index.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from ingest.loaders import SUPPORTED_SUFFIXES
from rag.api import RAG
from ui.errors import user_message
from ui.sources import display_name, md_escape
from ui.state import INGEST_SUMMARY
from ui.uploads import UploadRejected, save_upload

if TYPE_CHECKING:
    from ingest.pipeline import IngestReport

UPLOAD_TYPES = sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES)


def summarize(report: IngestReport | None, rejected: list[str]) -> dict[str, Any]:
    """What a run did, for people: counts first, then each file that needs attention and why."""
    details: list[str] = [f"rejected upload: {r}" for r in rejected]
    if report is None:
        return {"headline": "Nothing was indexed.", "details": details, "ok": False}
    details += [f"failed: {display_name(f['path'])} — {f['error']}" for f in report.failed]
    details += [f"skipped: {display_name(s['path'])} — {s['reason']}" for s in report.skipped]
    details += [f"warning: {display_name(w['path'])} — {w['warning']}" for w in report.warnings]
    details += [f"added: {display_name(p)}" for p in report.added]
    details += [f"updated: {display_name(p)}" for p in report.updated]
    details += [f"removed: {display_name(p)}" for p in report.removed]
    details += [f"renamed: {display_name(r['from'])} → {display_name(r['to'])}"
                for r in report.renamed]
    headline = (f"Added {len(report.added)}, updated {len(report.updated)}, "
                f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, "
                f"skipped {len(report.skipped)}, failed {len(report.failed)} "
                f"({report.chunks} chunks in {report.seconds:.1f} s)")
    return {"headline": headline, "details": details,
            "ok": not report.failed and not rejected}


def render_ingest(rag: RAG, state: MutableMapping[str, Any]) -> None:
    settings = rag.settings
    st.subheader("Add documents")
    with st.form("upload", clear_on_submit=True, border=False):
        files = st.file_uploader(
            f"Upload files (up to {settings.max_upload_mb} MB each)", type=UPLOAD_TYPES,
            accept_multiple_files=True, max_upload_size=settings.max_upload_mb)
        upload = st.form_submit_button("Add to index", width="stretch")
    with st.form("folder", border=False):
        folder = st.text_input("…or a folder or file on this computer",
                               placeholder="/path/to/documents")
        index_folder = st.form_submit_button("Index folder", width="stretch")

    if upload and files:
        paths, rejected = _save(files, settings.upload_dir, settings.max_upload_mb)
        state[INGEST_SUMMARY] = _ingest(rag, paths, rejected)
    elif upload:
        state[INGEST_SUMMARY] = {"headline": "Choose files to upload first.", "details": [],
                                 "ok": False}
    if index_folder and folder.strip():
        path = Path(folder.strip()).expanduser()
        if path.exists():
            state[INGEST_SUMMARY] = _ingest(rag, [path], [])
        else:
            state[INGEST_SUMMARY] = {"headline": f"{path} does not exist on this computer.",
                                     "details": [], "ok": False}
    _render_summary(state.get(INGEST_SUMMARY))


def _save(files: list[Any], upload_dir: Path, max_mb: int) -> tuple[list[Path], list[str]]:
    paths: list[Path] = []
    rejected: list[str] = []
    for f in files:
        try:
            # check the size the browser declared before reading the bytes into memory
            if f.size > max_mb * 1024 * 1024:
                raise UploadRejected(f"{f.name}: over the upload limit of {max_mb} MB")
            paths.append(save_upload(f.name, f.getvalue(), upload_dir, max_mb).path)
        except UploadRejected as exc:
            rejected.append(str(exc))
        except OSError as exc:
            rejected.append(f"{f.name}: could not be saved in {upload_dir}: {exc.strerror}")
    return paths, rejected


def _ingest(rag: RAG, paths: list[Path], rejected: list[str]) -> dict[str, Any]:
    if not paths:
        return summarize(None, rejected)
    bar = st.progress(0.0, text="Looking for new and changed files…")
    seen = {"total": 0, "done": 0}

    def progress(event: str, info: dict[str, Any]) -> None:
        if event == "start":
            seen["total"] = max(int(info.get("files", 0)), 1)
            bar.progress(0.0, text=f"Reading {info.get('files', 0)} file(s)…")
        elif event == "file":
            seen["done"] += 1
            total = max(seen["total"], seen["done"])
            bar.progress(seen["done"] / total,
                         text=f"{seen['done']}/{total} {display_name(info['path'])} "
                              f"({info.get('status', '')})")

    try:
        report = rag.ingest(paths, progress=progress, show_bar=False)
    except Exception as exc:  # shown to the user; the app must keep running
        return {"headline": user_message(exc, "indexing"), "details": rejected, "ok": False}
    finally:
        bar.empty()
    return summarize(report, rejected)


def _render_summary(summary: dict[str, Any] | None) -> None:
    if not summary:
        return
    box = st.success if summary["ok"] else st.warning
    box(summary["headline"])
    if summary["details"]:
        st.markdown("\n".join(f"- {md_escape(line)}" for line in summary["details"][:50]))
        if len(summary["details"]) > 50:
            st.caption(f"…and {len(summary['details']) - 50} more")
