"""Render one PDF page to a PNG, so a user can check a citation against the page itself."""

from __future__ import annotations

import io
from pathlib import Path


class PageRenderError(RuntimeError):
    """The page cannot be shown; the message says why (file moved, page gone, encrypted)."""


def render_page_png(path: str | Path, page: int, width_px: int = 1000,
                    password: str | None = None) -> bytes:
    """PNG bytes of 1-based `page` of the PDF at `path`, about `width_px` pixels wide."""
    import pypdfium2 as pdfium

    # PDFium is not thread-safe and ingestion may be reading PDFs in this process right now
    from ingest.loaders.pdf import PDFIUM_LOCK

    path = Path(path)
    if not path.is_file():
        raise PageRenderError(f"{path.name} is no longer at {path.parent}: re-ingest it to "
                              "update the index")
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(path, password=password)
        except pdfium.PdfiumError as exc:
            raise PageRenderError(f"cannot open {path.name}: {exc}") from exc
        try:
            if not 1 <= page <= len(pdf):
                raise PageRenderError(f"{path.name} has {len(pdf)} pages now, not {page}: "
                                      "it changed since it was indexed")
            pdf_page = pdf[page - 1]
            try:
                scale = width_px / max(pdf_page.get_width(), 1.0)
                image = pdf_page.render(scale=scale).to_pil()
            finally:
                pdf_page.close()
        finally:
            pdf.close()
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
