"""Regenerate the sample PDF and DOCX and the answer key, then check every sample with the loaders.

    .venv/bin/python scripts/make_samples.py

The Markdown, HTML and text samples are written by hand and live beside this script; the PDF
and the DOCX are built here so they can be changed as text and rebuilt byte for byte the same
(reportlab's invariant mode, fixed DOCX metadata and zip timestamps). All five documents are
original writing about one fictional harbour town, Port Alder, so demo questions have concrete
answers (names, dates, numbers) on known pages.

The answer key, docs/sample_questions.md, is generated from `QUESTIONS` below. The check
after writing loads every sample with `ingest.loaders.load_file` and fails unless each
question's evidence is found on exactly the file and page it names and nowhere else, so the
answer key cannot drift from the documents.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the samples live where `make run` ingests them; the answer key beside the docs, not among
# them, so that answers are never retrieved from the key itself
HERE = ROOT / "sample_docs"
KEY = ROOT / "docs" / "sample_questions.md"
PDF_NAME = "tidewater_staff_handbook.pdf"
DOCX_NAME = "festival_committee_minutes.docx"
MD_NAME = "gannet_rock_lighthouse.md"
HTML_NAME = "harbour_cafe_chowder.html"
TXT_NAME = "kestrel_sands_field_notes.txt"

# --- the handbook PDF: one section per page ----------------------------------------------------

HANDBOOK_TITLE = "Tidewater Kayak Co."
HANDBOOK_SUBTITLE = "Staff Handbook, 2025 edition"
HANDBOOK_PAGES: list[tuple[str, list[str]]] = [
    (
        "Welcome to Tidewater",
        [
            "Tidewater Kayak Co. runs guided sea-kayak tours and a paddle-sports shop from its "
            "boathouse at 14 Quay Street, Port Alder. The business was started in the spring of "
            "2011 by Marta Okonkwo and Lewis Penhallow, two former lifeguards who began with four "
            "second-hand kayaks and a borrowed trailer.",
            "Today the company employs 23 people in the summer season and 7 through the winter. "
            "Marta Okonkwo is still the managing director; Lewis Penhallow left the business in "
            "2019 to build wooden boats on the west coast.",
            "This handbook explains how we work. If something in it is unclear, ask your team "
            "lead before you guess.",
        ],
    ),
    (
        "Hours, Leave and Absence",
        [
            "The shop is open from 08:30 to 18:00 every day between April and October. For the "
            "rest of the year it opens from 10:00 to 16:00 on Fridays, Saturdays and Sundays "
            "only. Tours start from the slipway, not from the shop.",
            "Full-time staff receive 27 days of paid annual leave, plus public holidays. Up to "
            "5 unused days may be carried over into the next year.",
            "Requests for leave go to the operations manager, Priya Castellanos, at least three "
            "weeks before the first day you want off. Requests for July and August are granted "
            "in the order they arrive.",
            "If you are ill, phone the duty line on 01632 960 417 before 07:30 on the day. A "
            "text message is not enough.",
        ],
    ),
    (
        "Safety on the Water",
        [
            "Every tour guide must hold a current Level 3 sea-kayak coaching award and a "
            "first-aid certificate renewed at least every three years.",
            "No tour leaves the slipway when the forecast mean wind speed is above 18 knots, or "
            "when the harbour office has raised the small-craft warning flag. The guide on duty "
            "makes the final call and never has to argue a cancellation with customers.",
            "A guide may lead at most six paddlers. Groups of seven to twelve need two guides, "
            "one of whom always paddles at the back of the group.",
            "Buoyancy aids are inspected every 90 days and after every capsize drill; the date "
            "of the last inspection is written on the label inside the collar.",
        ],
    ),
    (
        "Kit, Pay and Perks",
        [
            "Our fleet numbers 48 kayaks: 30 single sea kayaks, 12 doubles and 6 sit-on-tops "
            "for children's sessions. Report any damage in the boathouse logbook the same day.",
            "Staff may buy gear from the shop at 35% below the retail price once they have "
            "completed their probation period of eight weeks.",
            "Wages are paid by bank transfer on the 25th of each month. When the 25th falls on "
            "a weekend, payment is made on the Friday before.",
            "Each new starter receives two branded fleece jackets and one dry suit, which "
            "remain the property of the company.",
        ],
    ),
]

# --- the committee minutes DOCX -----------------------------------------------------------------

MINUTES_TITLE = "Port Alder Harbour Festival Committee"
MINUTES_INTRO = [
    "Minutes of the meeting held on Wednesday 12 February 2025 at 19:00 in the upstairs room of "
    "the Port Alder Sailing Club.",
    "Present: Gwen Harrow (chair), Owen Madoc (treasurer), Sunita Rao, Daniel Fisk. "
    "Apologies: Harriet Oyelaran.",
]
MINUTES_SECTIONS: list[tuple[str, str]] = [
    (
        "1. Minutes of the last meeting",
        "The minutes of the meeting of 15 January 2025 were accepted without changes.",
    ),
    (
        "2. Festival dates",
        "After a vote of four to none, the committee agreed that the 2025 festival will run from "
        "Friday 8 August to Sunday 10 August. The opening parade leaves the fish market at 11:00 "
        "on the Friday.",
    ),
    (
        "3. Budget",
        "Owen Madoc presented the budget: total spending of £18,500, of which £6,200 is already "
        "pledged by local sponsors. The largest single cost is the fireworks display, quoted at "
        "£4,750 by Skyline Pyrotechnics.",
    ),
    (
        "4. Raft race",
        "Dredging in the inner harbour will not finish before September, so the raft race moves "
        "to the west beach this year. Daniel Fisk will walk the new course with the coastguard.",
    ),
]
MINUTES_ACTIONS_HEADING = "5. Actions"
MINUTES_ACTIONS: list[tuple[str, str, str]] = [
    ("Action", "Owner", "Due"),
    ("Book the brass band for the opening parade", "Owen Madoc", "1 March 2025"),
    ("Apply for the fireworks permit", "Sunita Rao", "15 April 2025"),
    ("Confirm first-aid cover for all three days", "Daniel Fisk", "30 May 2025"),
    ("Send the programme to the printer", "Gwen Harrow", "18 July 2025"),
]
MINUTES_CLOSE = (
    "Next meeting: Wednesday 12 March 2025, same place, 19:00. The chair closed the meeting at "
    "20:45."
)

# --- the answer key --------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    question: str
    answer: str
    file: str
    page: int | None  # 1-based PDF page; None for pageless files
    # A regex that must match that page's loaded text (whitespace collapsed to single spaces)
    # and no other page of any sample, so the fact is stated once: a citation to anywhere else
    # would be wrong.
    evidence: str


QUESTIONS: list[Question] = [
    Question(
        "Who founded Tidewater Kayak Co., and in which year?",
        "Marta Okonkwo and Lewis Penhallow, in (the spring of) 2011.",
        PDF_NAME, 1, r"spring of 2011 by Marta Okonkwo and Lewis Penhallow",
    ),
    Question(
        "How many days of paid holiday does a full-time Tidewater employee get each year?",
        "27 days of paid annual leave, plus public holidays.",
        PDF_NAME, 2, r"\b27 days\b",
    ),
    Question(
        "Above what wind speed are Tidewater's kayak tours called off?",
        "When the forecast mean wind speed is above 18 knots (or the small-craft flag is up).",
        PDF_NAME, 3, r"\b18 knots\b",
    ),
    Question(
        "I want to book a kayak tour for nine paddlers. How many guides will come along?",
        "Two: one guide leads at most six paddlers, and groups of seven to twelve need two.",
        PDF_NAME, 3, r"seven to twelve need two guides",
    ),
    Question(
        "What discount do Tidewater staff get on equipment from the shop?",
        "35% off the retail price, once the eight-week probation period is over.",
        PDF_NAME, 4, r"\b35%",
    ),
    Question(
        "When was the Gannet Rock light shown for the first time?",
        "On 3 March 1867.",
        MD_NAME, None, r"\b3 March 1867\b",
    ),
    Question(
        "How many stairs does a keeper climb to reach the lantern room?",
        "137 steps.",
        MD_NAME, None, r"\b137 steps\b",
    ),
    Question(
        "Who was the last principal keeper at Gannet Rock, and when did the light go automatic?",
        "Tomas Reilly; the light became fully automatic on 30 November 1989.",
        MD_NAME, None, r"Tomas Reilly",
    ),
    Question(
        "In the mackerel chowder, how long do the potatoes cook in the milk?",
        "About 25 minutes at a simmer, until tender.",
        HTML_NAME, None, r"simmer for 25 minutes",
    ),
    Question(
        "How much smoked mackerel goes into the Harbour Café chowder?",
        "400 g of skinned smoked mackerel fillets (for 6 servings).",
        HTML_NAME, None, r"\b400 g\b",
    ),
    Question(
        "On which days will the 2025 Harbour Festival be held?",
        "From Friday 8 August to Sunday 10 August 2025.",
        DOCX_NAME, None, r"\b8 August to Sunday 10 August\b",
    ),
    Question(
        "Who is responsible for the fireworks permit, and by when?",
        "Sunita Rao, by 15 April 2025.",
        DOCX_NAME, None, r"fireworks permit \| Sunita Rao \| 15 April 2025",
    ),
    Question(
        "How many grey seals were counted at Kestrel Sands in June 2024?",
        "62 grey seals (on 14 June 2024, by Fen Ashdown).",
        TXT_NAME, None, r"grey seals 62\b",
    ),
]

# For refusal demos: the museum is described, but nothing says what entry costs.
UNANSWERABLE = (
    "How much does a ticket to the Gannet Rock lighthouse museum cost?",
    "Not in the documents: the museum in the keepers' cottages is described "
    f"({MD_NAME}), but no entry price is given anywhere. The assistant should say so.",
)
# Words that would give away a price if a later edit of the samples added one.
UNANSWERABLE_ABSENT = r"(?i)\b(admission|entry fees?|tickets?|entrance)\b"


# --- writers ---------------------------------------------------------------------------------


def write_pdf(path: Path) -> Path:
    """The handbook: one section per A4 page, with an outline so loaders can report headings."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen import canvas

    width, height = A4
    margin = 72
    body_font, body_size, leading = "Helvetica", 11, 15
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setTitle(f"{HANDBOOK_TITLE} {HANDBOOK_SUBTITLE}")
    c.setAuthor(HANDBOOK_TITLE)
    c.setSubject("Staff handbook (sample document)")
    n_pages = len(HANDBOOK_PAGES)
    for number, (heading, paragraphs) in enumerate(HANDBOOK_PAGES, start=1):
        y = height - margin
        if number == 1:
            c.setFont("Helvetica-Bold", 22)
            c.drawString(margin, y, HANDBOOK_TITLE)
            y -= 26
            c.setFont("Helvetica", 14)
            c.drawString(margin, y, HANDBOOK_SUBTITLE)
            y -= 44
        c.setFont("Helvetica-Bold", 16)
        c.drawString(margin, y, heading)
        c.bookmarkPage(f"section{number}", fit="XYZ", top=y + 20)
        c.addOutlineEntry(heading, f"section{number}", level=0)
        y -= 28
        c.setFont(body_font, body_size)
        for paragraph in paragraphs:
            for line in simpleSplit(paragraph, body_font, body_size, width - 2 * margin):
                c.drawString(margin, y, line)
                y -= leading
            y -= leading * 0.8  # paragraph gap: the PDF loader turns it into a blank line
        c.setFont("Helvetica", 8)
        footer = f"{HANDBOOK_TITLE} {HANDBOOK_SUBTITLE} - page {number} of {n_pages}"
        c.drawString(margin, 40, footer)
        c.showPage()
    c.save()
    return path


def write_docx(path: Path) -> Path:
    """The committee minutes: title, headings, paragraphs and an action table."""
    import docx

    document = docx.Document()
    props = document.core_properties
    fixed = dt.datetime(2025, 2, 13, 9, 0, 0)
    props.author = props.last_modified_by = "Gwen Harrow"
    props.title = f"{MINUTES_TITLE}: minutes of 12 February 2025"
    props.created = props.modified = fixed
    props.last_printed = fixed
    props.revision = 1

    document.add_heading(MINUTES_TITLE, level=0)
    for text in MINUTES_INTRO:
        document.add_paragraph(text)
    for heading, text in MINUTES_SECTIONS:
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    document.add_heading(MINUTES_ACTIONS_HEADING, level=1)
    table = document.add_table(rows=len(MINUTES_ACTIONS), cols=3)
    table.style = "Table Grid"
    for row, values in zip(table.rows, MINUTES_ACTIONS, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph(MINUTES_CLOSE)
    document.save(str(path))
    _fix_zip_timestamps(path)
    return path


def _fix_zip_timestamps(path: Path) -> None:
    # python-docx stamps every zip member with the current time; a fixed stamp makes rebuilds
    # byte-identical, so regenerating does not show up as a change in git.
    with zipfile.ZipFile(path) as zin:
        members = [(info.filename, zin.read(info)) for info in zin.infolist()]
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zout:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2025, 2, 13, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, data)
    tmp.replace(path)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def write_questions(path: Path) -> Path:
    """The answer key as a Markdown table (generated: edit QUESTIONS in this script)."""
    lines = [
        "# Questions to try on the sample documents",
        "",
        "Generated by `make_samples.py` from its `QUESTIONS` list; edit the list there and rerun",
        "the script, which also checks that each answer is stated on exactly the page named here",
        "and nowhere else in the samples. Pages are PDF pages (1-based); the other formats have",
        "no pages.",
        "",
        "| # | Question | Expected answer | Where |",
        "|---|----------|-----------------|-------|",
    ]
    for number, q in enumerate(QUESTIONS, start=1):
        where = f"`{q.file}`" + (f", page {q.page}" if q.page is not None else "")
        lines.append(f"| {number} | {_md_cell(q.question)} | {_md_cell(q.answer)} | {where} |")
    question, answer = UNANSWERABLE
    lines += [
        "",
        "## A question the documents cannot answer (refusal demo)",
        "",
        f"- **{question}**",
        f"  {answer}",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- the check -------------------------------------------------------------------------------

# file -> expected page numbers and headings the loader must report
EXPECTED_PAGES: dict[str, list[int | None]] = {
    PDF_NAME: list(range(1, len(HANDBOOK_PAGES) + 1)),
    DOCX_NAME: [None],
    MD_NAME: [None],
    HTML_NAME: [None],
    TXT_NAME: [None],
}


def check(folder: Path = HERE) -> list[str]:
    """Load every sample and return the problems found (empty when all is well)."""
    from ingest.loaders import LoadError, load_file

    problems: list[str] = []
    texts: dict[tuple[str, int | None], str] = {}
    for name, pages_expected in EXPECTED_PAGES.items():
        try:
            pages = load_file(folder / name)
        except LoadError as exc:
            problems.append(f"{name}: does not load: {exc}")
            continue
        numbers = [p.page for p in pages]
        if numbers != pages_expected:
            problems.append(f"{name}: pages {numbers}, expected {pages_expected}")
        for page in pages:
            if not page.text.strip():
                problems.append(f"{name}: page {page.page} has no text")
            # Compare on collapsed whitespace: where a PDF line wraps is layout, not content.
            texts[(name, page.page)] = " ".join(page.text.split())
        if name == PDF_NAME:
            found = [h for p in pages for _, h in p.headings]
            wanted = [heading for heading, _ in HANDBOOK_PAGES]
            if found != wanted:
                problems.append(f"{name}: headings {found}, expected {wanted}")

    for q in QUESTIONS:
        pattern = re.compile(q.evidence)
        hits = [where for where, text in texts.items() if pattern.search(text)]
        if hits != [(q.file, q.page)]:
            problems.append(
                f"{q.question!r}: evidence /{q.evidence}/ found at {hits}, "
                f"expected only at {(q.file, q.page)}"
            )
    absent = re.compile(UNANSWERABLE_ABSENT)
    for where, text in texts.items():
        if absent.search(text):
            problems.append(f"{UNANSWERABLE[0]!r} may be answerable: {where} mentions a price")
    return problems


def main() -> int:
    write_pdf(HERE / PDF_NAME)
    write_docx(HERE / DOCX_NAME)
    write_questions(KEY)
    problems = check()
    for problem in problems:
        print(f"sample_docs check failed: {problem}", file=sys.stderr)
    if not problems:
        print(f"wrote {PDF_NAME}, {DOCX_NAME}, {KEY.name}; all samples load and match the key")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
