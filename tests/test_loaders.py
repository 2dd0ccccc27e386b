"""ingest.loaders on real files: good ones keep their text and structure, bad ones say why.

Every file is built by tests/badfiles.py with the libraries real documents come from, so these
tests run the same PDFium, pypdf, python-docx and lxml code paths a user's files do.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import badfiles as bf
import pypdfium2 as pdfium
import pytest

from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, is_supported, load_file
from ingest.loaders.pdf import load_pdf_with_pypdf
from rag.types import Page

# (page, fact) for GOOD_PDF_PAGES: each fact is on exactly that page.
PDF_FACTS = [(1, "412 apple trees"), (2, "3,600 cubic metres"), (3, "58 tonnes")]


def _reason(path: Path, password: str | None = None) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path, password=password)
    # Callers print str(err) as the reason; it must be the same text as .reason.
    assert str(info.value) == info.value.reason
    return info.value.reason


def _assert_facts_on_their_pages(pages: list[Page]) -> None:
    assert [p.page for p in pages] == [1, 2, 3]
    for number, fact in PDF_FACTS:
        on = [p.page for p in pages if fact in p.text]
        assert on == [number], f"{fact!r} found on pages {on}, expected only page {number}"


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_pages_are_numbered_from_one_with_facts_on_their_pages(tmp_path: Path) -> None:
    pages = load_file(bf.make_good_pdf(tmp_path / "good.pdf", bf.GOOD_PDF_PAGES))
    _assert_facts_on_their_pages(pages)
    # The paragraph gaps drawn by the builder come back as blank lines, which the splitter uses.
    assert pages[0].text.startswith("Orchard Survey Report\n\nThe north orchard holds")
    assert "Bramley variety" in pages[0].text
    assert all(p.headings == [] for p in pages)  # no outline, so no headings to report


def test_pdf_outline_titles_become_headings_on_their_pages(tmp_path: Path) -> None:
    pages = load_file(bf.make_pdf_with_outline(tmp_path / "outline.pdf"))
    titles = ["Orchard Survey Report", "Irrigation", "Harvest"]
    for page, title in zip(pages, titles, strict=True):
        assert len(page.headings) == 1
        offset, heading = page.headings[0]
        assert heading == title
        assert page.text[offset:].startswith(title)


def test_pdf_that_only_pypdf_can_read_is_loaded_by_the_fallback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = bf.make_pdf_damaged_trailer(tmp_path / "damaged_trailer.pdf")
    # Without this the test would pass even if the fallback never ran.
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(path)

    with caplog.at_level(logging.INFO, logger="ingest.loaders.pdf"):
        pages = load_file(path)

    assert any("trying pypdf" in r.getMessage() for r in caplog.records)
    _assert_facts_on_their_pages(pages)


def test_pypdf_reader_finds_the_same_facts_on_the_same_pages(tmp_path: Path) -> None:
    path = bf.make_good_pdf(tmp_path / "good.pdf", bf.GOOD_PDF_PAGES)
    _assert_facts_on_their_pages(load_pdf_with_pypdf(path))


def test_encrypted_pdf_needs_its_password(tmp_path: Path) -> None:
    path = bf.make_user_encrypted_pdf(tmp_path / "locked.pdf")
    reason = _reason(path)
    assert reason == "PDF is encrypted and needs a password"
    assert _reason(path, password="not-the-password") == "wrong password for encrypted PDF"
    _assert_facts_on_their_pages(load_file(path, password=bf.USER_PASSWORD))


def test_encrypted_pdf_with_the_pypdf_reader(tmp_path: Path) -> None:
    path = bf.make_user_encrypted_pdf(tmp_path / "locked.pdf")
    with pytest.raises(LoadError, match="needs a password"):
        load_pdf_with_pypdf(path)
    with pytest.raises(LoadError, match="wrong password"):
        load_pdf_with_pypdf(path, password="nope")
    _assert_facts_on_their_pages(load_pdf_with_pypdf(path, password=bf.USER_PASSWORD))


@pytest.mark.parametrize("password", [None, "some-other-files-password"])
def test_owner_only_encrypted_pdf_opens_without_its_password(
    tmp_path: Path, password: str | None
) -> None:
    path = bf.make_owner_only_pdf(tmp_path / "owner_only.pdf")
    _assert_facts_on_their_pages(load_file(path, password=password))


def test_truncated_pdf_is_reported_as_cut_short(tmp_path: Path) -> None:
    reason = _reason(bf.make_truncated_pdf(tmp_path / "truncated.pdf"))
    assert reason.startswith("file is truncated or corrupt:")
    assert "cut short" in reason


def test_html_saved_as_pdf_is_not_a_pdf(tmp_path: Path) -> None:
    assert _reason(bf.make_not_really_pdf(tmp_path / "download.pdf")) == (
        "not a PDF file (no %PDF header)"
    )


def test_pdf_page_without_text_layer_is_kept_empty_so_numbering_holds(tmp_path: Path) -> None:
    pages = load_file(bf.make_pdf_with_blank_page2(tmp_path / "scan.pdf"))
    assert [p.page for p in pages] == [1, 2, 3]
    assert pages[1].text == ""
    assert "granite quarries" in pages[0].text
    assert "slate roofs" in pages[2].text


# --- plain text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "reason"),
    [
        (bf.make_empty_txt, "empty file (0 bytes)"),
        (bf.make_whitespace_txt, "no text in file"),
        (bf.make_binary_txt, "binary content, not text"),
    ],
)
def test_text_files_without_text_give_specific_reasons(tmp_path: Path, builder, reason) -> None:  # noqa: ANN001
    assert _reason(builder(tmp_path / "bad.txt")) == reason


@pytest.mark.parametrize("suffix", sorted(SUPPORTED_SUFFIXES))
def test_zero_byte_file_of_every_format_is_reported_empty(tmp_path: Path, suffix: str) -> None:
    assert _reason(bf.make_empty_txt(tmp_path / f"empty{suffix}")) == "empty file (0 bytes)"


def test_latin1_text_is_decoded_with_its_accents(tmp_path: Path) -> None:
    [page] = load_file(bf.make_latin1_txt(tmp_path / "latin1.txt"))
    assert page.text == bf.LATIN1_TEXT
    assert "café crème" in page.text and "Zürich" in page.text
    assert page.page is None


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_text_loads_verbatim_and_its_bom_is_stripped(tmp_path: Path, bom: bool) -> None:
    [page] = load_file(bf.make_utf8_txt(tmp_path / "ferry.txt", bom=bom))
    assert page == Page(text=bf.UTF8_TEXT, page=None, headings=[])


def test_windows_and_old_mac_newlines_become_lf(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"first line\r\nsecond line\r\rafter a blank line\r\n")
    [page] = load_file(path)
    assert page.text == "first line\nsecond line\n\nafter a blank line\n"


def test_markdown_headings_are_located_and_code_comments_are_not_headings(
    tmp_path: Path,
) -> None:
    [page] = load_file(bf.make_markdown(tmp_path / "guide.md"))
    assert page.text == bf.MARKDOWN_TEXT  # kept verbatim: spans must match the file
    assert [h for _, h in page.headings] == [
        "Field Guide",
        "Birds of the Marsh",
        "Waders",
        "Setext Title",
    ]
    for offset, heading in page.headings:
        assert page.text[offset:].startswith(heading)


def test_markdown_with_bom_and_crlf_still_finds_the_first_heading(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"\xef\xbb\xbf# Top\r\n\r\ntext\r\n\r\nSub\r\n===\r\n")
    [page] = load_file(path)
    assert page.headings == [(2, "Top"), (13, "Sub")]


# --- HTML --------------------------------------------------------------------------------------


def test_html_keeps_content_headings_and_tables_and_drops_page_chrome(tmp_path: Path) -> None:
    [page] = load_file(bf.make_html(tmp_path / "faq.html"))
    text = page.text
    for noise in ("color: red", "tracking", "do not index me", "Home", "Shop", "footer noise"):
        assert noise not in text
    # Inline markup (<b>) flows into its sentence; <br> keeps its line break.
    assert "The Lantern Mini runs for 36 hours on one charge." in text
    assert "warranty of five years.\nBatteries are covered for two." in text
    # A table stays readable: one line per row, cells separated.
    assert "Model | Weight\nMini | 240 g" in text
    assert "Waterproof to IPX7\nUSB-C charging" in text
    assert [h for _, h in page.headings] == [
        "Lantern Co. Product FAQ",
        "Frequently asked questions",
        "Warranty",
    ]
    for offset, heading in page.headings:
        assert text[offset:].startswith(heading)
    assert page.page is None


def test_html_hidden_elements_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "hidden.html"
    path.write_text(
        "<h1>Visible</h1><div hidden>secret one</div>"
        '<p>Shown <span style="display: none">secret two</span>text</p>'
        '<p aria-hidden="true">secret three</p>',
        encoding="utf-8",
    )
    [page] = load_file(path)
    assert page.text == "Visible\n\nShown text"


def test_html_declared_latin1_is_read_as_windows_1252_like_browsers_do(tmp_path: Path) -> None:
    path = tmp_path / "prices.html"
    path.write_bytes(b'<meta charset="iso-8859-1"><p>Caf\xe9 au lait: \x80 3</p>')
    [page] = load_file(path)
    assert page.text == "Café au lait: € 3"


def test_html_with_only_scripts_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "app.html"
    path.write_text("<html><body><script>render()</script></body></html>", encoding="utf-8")
    assert _reason(path) == "no text in file"


# --- DOCX --------------------------------------------------------------------------------------


def test_docx_paragraphs_headings_and_table_in_document_order(tmp_path: Path) -> None:
    [page] = load_file(bf.make_docx(tmp_path / "minutes.docx"))
    assert page.page is None
    assert page.text == (
        "Quarterly Board Minutes\n\n"
        "The board met on 3 May 2024 in the Elm Room.\n\n"
        "Budget\n\n"
        "The budget for the new library wing is 1.2 million euros.\n\n"
        "Item | Owner | Due\nRoof survey | Ines Ward | June\n\n"
        "The meeting closed at 16:10."
    )
    assert [h for _, h in page.headings] == ["Quarterly Board Minutes", "Budget"]
    for offset, heading in page.headings:
        assert page.text[offset:].startswith(heading)


def test_docx_without_text_is_reported(tmp_path: Path) -> None:
    import docx

    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    assert _reason(path) == "no text in file"


def _ole2_docx(path: Path) -> Path:
    # Office wraps a password-protected .docx in an OLE2 container; so is a legacy .doc.
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    return path


def _plain_zip_docx(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("photo-list.txt", "not a document")
    return path


@pytest.mark.parametrize(
    ("builder", "reason"),
    [
        (bf.make_corrupt_docx, "not a DOCX file (not a zip archive)"),
        (bf.make_truncated_docx, "file is truncated or corrupt: incomplete zip archive"),
        (bf.make_docx_missing_body, "not a DOCX file (a zip archive without Word document parts)"),
        (_plain_zip_docx, "not a DOCX file (a zip archive without Word document parts)"),
        (bf.make_docx_bad_content_types, "file is truncated or corrupt: AttributeError"),
        (_ole2_docx, "DOCX is encrypted with a password or is an old binary .doc file"),
    ],
)
def test_broken_docx_files_give_specific_reasons(tmp_path: Path, builder, reason) -> None:  # noqa: ANN001
    assert _reason(builder(tmp_path / "broken.docx")).startswith(reason)


# --- links, odd paths and dispatch ------------------------------------------------------------


def test_symlinks(tmp_path: Path) -> None:
    assert _reason(bf.make_self_symlink(tmp_path / "self.txt")) == "symlink loop"
    assert _reason(bf.make_dangling_symlink(tmp_path / "gone.txt")) == (
        "broken symlink: its target does not exist"
    )
    target = bf.make_good_pdf(tmp_path / "real.pdf", bf.GOOD_PDF_PAGES)
    link = tmp_path / "link.pdf"
    os.symlink(target.name, link)
    assert load_file(link) == load_file(target)
    # A file reached through a directory loop is still just a file.
    loop = bf.make_symlink_loop(tmp_path)
    [page] = load_file(loop / loop.parent.name / "inside.txt")
    assert page.text == "A file next to a symlink loop.\n"


def test_directory_and_fifo_with_document_names_are_refused_without_blocking(
    tmp_path: Path,
) -> None:
    (tmp_path / "folder.txt").mkdir()
    assert _reason(tmp_path / "folder.txt") == "is a directory, not a file"
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block forever
    assert _reason(tmp_path / "pipe.txt") == "not a regular file (device, socket or pipe)"


def test_missing_file(tmp_path: Path) -> None:
    assert _reason(tmp_path / "never-there.md") == "file disappeared while reading"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = bf.make_utf8_txt(tmp_path / "secret.txt")
    path.chmod(0)
    try:
        assert _reason(path) == "permission denied"
    finally:
        path.chmod(0o600)


def test_suffix_dispatch_is_case_insensitive_and_unknown_types_are_named(tmp_path: Path) -> None:
    assert is_supported("REPORT.PDF") and is_supported("notes.Markdown")
    assert not is_supported("slides.pptx") and not is_supported("README")
    upper = bf.make_good_pdf(tmp_path / "REPORT.PDF", bf.GOOD_PDF_PAGES)
    _assert_facts_on_their_pages(load_file(upper))
    (tmp_path / "letter.rtf").write_text("{\\rtf1 hello}", encoding="ascii")
    assert _reason(tmp_path / "letter.rtf") == "unsupported file type: .rtf"
    (tmp_path / "README").write_text("hello", encoding="ascii")
    assert _reason(tmp_path / "README") == "unsupported file type: (no suffix)"


# --- the mixed folder other tests rely on ----------------------------------------------------


def test_mixed_folder_manifest_matches_what_the_loaders_do(tmp_path: Path) -> None:
    manifest = bf.build_mixed_folder(tmp_path)

    for rel, expected in manifest["good"].items():
        pages = load_file(tmp_path / rel)
        if expected["pages"] is None:
            assert [p.page for p in pages] == [None], rel
        else:
            assert [p.page for p in pages] == list(range(1, expected["pages"] + 1)), rel
        for number, fact in expected["contains"]:
            [page] = [p for p in pages if p.page == number]
            assert fact in page.text, (rel, number, fact)

    for rel, reason in manifest["failures"].items():
        assert reason in _reason(tmp_path / rel), rel

    for rel, password in manifest["passwords"].items():
        assert load_file(tmp_path / rel, password=password)

    for rel, empty in manifest["empty_pages"].items():
        pages = load_file(tmp_path / rel)
        assert [p.page for p in pages if not p.text.strip()] == empty, rel

    for rel in manifest["symlink_loops"]:
        assert (tmp_path / rel).is_symlink() and (tmp_path / rel).is_dir()


# --- the sample documents shipped for demos ---------------------------------------------------


def _make_samples():  # noqa: ANN202 - a module loaded from a path
    import importlib.util
    import sys

    if "make_samples" in sys.modules:
        return sys.modules["make_samples"]
    script = Path(__file__).resolve().parent.parent / "scripts" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running: its dataclasses look their module up in sys.modules.
    sys.modules["make_samples"] = module
    spec.loader.exec_module(module)
    return module


def test_sample_docs_load_and_state_each_answer_on_the_page_the_key_names() -> None:
    samples = _make_samples()
    assert samples.check() == []


def test_committed_sample_binaries_match_what_the_script_builds(tmp_path: Path) -> None:
    samples = _make_samples()
    builders = [(samples.PDF_NAME, samples.write_pdf), (samples.DOCX_NAME, samples.write_docx)]
    for name, write in builders:
        rebuilt = load_file(write(tmp_path / name))
        assert rebuilt == load_file(samples.HERE / name), f"rerun make_samples.py: {name} is stale"
