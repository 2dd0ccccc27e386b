"""The Streamlit app (ui/app.py) driven by Streamlit's AppTest over a real index and the real
tiny model, plus the UI's pure helpers: upload names, highlighting, citation links.

The tiny model (SmolLM2-135M) is too weak to answer well, so app tests check what the app
does with whatever it answers (shown, sourced, timed, remembered), not the answer's wording.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.pipeline import IngestPipeline
from rag.index.store import IndexStore
from rag.settings import PROJECT_ROOT, Settings
from rag.types import Answer, Source
from ui.ingest_view import summarize
from ui.pdf_page import PageRenderError, render_page_png
from ui.sidebar import format_updated, short_path
from ui.sources import (
    anchor_id,
    content_words,
    highlight_html,
    link_citations,
    passage_html,
    sentence_spans,
    source_label,
    supporting_spans,
)
from ui.state import Turn, history
from ui.uploads import UploadRejected, check_upload, sanitize_filename, save_upload

APP = str(PROJECT_ROOT / "ui" / "app.py")
SAMPLES = PROJECT_ROOT / "sample_docs"
QUESTION = "How many steps does a keeper climb to reach the lantern room?"
TIMEOUT = 180  # seconds for one script run: a loaded 2-core machine can be slow

# Used only when sample_docs/ is missing (a trimmed checkout): the same facts, in Markdown.
_FALLBACK_MD = """# The Gannet Rock Lighthouse

## The tower and its light

From its foundation course to the weather vane the tower measures 31 metres. A spiral
staircase of 137 steps winds up through the storerooms and the keepers' living quarters to
the lantern room. The light was first shown on 3 March 1867.

## The keepers

Tomas Reilly was the last principal keeper; the light became automatic in 1989.
"""


def _docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = ("gannet_rock_lighthouse.md", "tidewater_staff_handbook.pdf")
    if all((SAMPLES / n).is_file() for n in names):
        for n in names:
            shutil.copy(SAMPLES / n, folder / n)
    else:
        (folder / "gannet_rock_lighthouse.md").write_text(_FALLBACK_MD, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A real index of two sample documents, built once for this module."""
    root = tmp_path_factory.mktemp("ui_index")
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads")
    report = IngestPipeline(settings, embedder).run([_docs(root / "docs")], show_bar=False)
    assert report.added and not report.failed
    return settings.index_dir


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point the app at an index, the tiny model and a fresh upload folder; no rag.toml."""
    monkeypatch.delenv("RAG_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # a developer's ./rag.toml must not change what is tested
    monkeypatch.setenv("RAG_MODEL", "tiny")
    # the tiny model tends to ramble to the token limit: a short one keeps the tests quick
    monkeypatch.setenv("RAG_MAX_NEW_TOKENS", "48")
    monkeypatch.setenv("RAG_UPLOAD_DIR", str(tmp_path / "uploads"))

    def use(index: Path) -> AppTest:
        monkeypatch.setenv("RAG_INDEX_DIR", str(index))
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        assert not at.exception, at.exception
        return at

    return use


def _ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, label: str):
    """A sidebar button (plain or form submit) by its label."""
    return next(b for b in at.sidebar.button if b.label == label)


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


# -- the app --------------------------------------------------------------------------------


def test_empty_index_shows_how_to_add_documents(app_env, tmp_path: Path) -> None:
    at = app_env(tmp_path / "empty_index")
    hint = " ".join(_texts(at.info))
    assert "holds no documents" in hint and "rag ingest" in hint
    assert at.chat_input[0].disabled  # nothing to ask about yet
    assert _texts(at.sidebar.metric) == ["0", "0"]
    assert "last updated never" in " ".join(_texts(at.sidebar.caption))


def test_sidebar_shows_index_counts_and_last_update(app_env, index_dir: Path) -> None:
    at = app_env(index_dir)
    store = IndexStore(index_dir)
    try:
        stats = store.stats()
    finally:
        store.close()
    assert short_path(str(index_dir)) in " ".join(_texts(at.sidebar.markdown))
    assert short_path(str(index_dir)).endswith("/".join(index_dir.parts[-2:]))
    assert _texts(at.sidebar.metric) == [str(stats["documents"]), str(stats["chunks"])]
    assert format_updated(stats["updated_at"]).split(" (")[0] in " ".join(
        _texts(at.sidebar.caption))
    assert not at.info  # no "empty index" hint
    assert [o.split(" · ")[0] for o in at.sidebar.selectbox[0].options] == [
        "tiny", "default", "fast"]
    assert at.sidebar.radio[0].value == "hybrid"


def test_question_gets_streamed_answer_with_sources_timings_and_follow_up(
        app_env, index_dir: Path) -> None:
    at = _ask(app_env(index_dir), QUESTION)
    user, assistant = at.chat_message
    assert user.markdown[0].value.replace("\\", "") == QUESTION
    turn: Turn = at.session_state["turns"][0]
    answer = turn.answer
    assert answer is not None, turn.error
    assert answer.text and assistant.markdown[0].value.startswith(answer.text[:10]
                                                                  .replace("[", "\\["))
    # the passage with the answer was retrieved, and every shown source is listed by file
    assert answer.sources
    assert any("137 steps" in s.text for s in answer.passages)
    labels = [e.label for e in at.expander]
    assert labels[:len(answer.sources)] == [
        source_label(s.number, s.source, s.page, s.score) for s in answer.sources]
    assert all(Path(s.source).name.split("_")[0] in lab for s, lab in
               zip(answer.sources, labels, strict=False))
    # each source has the anchor its citation links point at
    anchors = [m.value for m in assistant.markdown if 'class="rag-anchor"' in m.value]
    assert [f'id="{anchor_id(0, s.number)}"' in a for s, a in
            zip(answer.sources, anchors, strict=True)] == [True] * len(answer.sources)
    timing = " ".join(_texts(assistant.caption))
    assert "retrieval" in timing and "total" in timing and "tiny" in timing

    # a follow-up is read against the conversation: the chain rewrites it before searching
    at = _ask(at, "And who was the last principal keeper there?")
    second = at.session_state["turns"][1].answer
    assert second is not None
    assert second.standalone_question != second.question
    assert "condense_s" in second.timings
    assert len(at.chat_message) == 4


def test_pdf_source_page_is_rendered_only_on_request(app_env, index_dir: Path) -> None:
    if not (SAMPLES / "tidewater_staff_handbook.pdf").is_file():
        pytest.skip("needs sample_docs/tidewater_staff_handbook.pdf")
    at = _ask(app_env(index_dir), "What discount do Tidewater staff get on shop equipment?")
    toggles = [t for t in at.toggle if t.label.startswith("Show page")]
    assert toggles and not at.image  # page images cost time: none until asked for
    toggles[0].set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.image) == 1 and not at.warning


def test_render_page_png_and_its_errors(tmp_path: Path) -> None:
    pdf = SAMPLES / "tidewater_staff_handbook.pdf"
    if not pdf.is_file():
        pytest.skip("needs sample_docs/tidewater_staff_handbook.pdf")
    png = render_page_png(pdf, 2, width_px=300)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    with pytest.raises(PageRenderError, match="pages now, not 99"):
        render_page_png(pdf, 99)
    with pytest.raises(PageRenderError, match="no longer at"):
        render_page_png(tmp_path / "moved.pdf", 1)


def test_clear_chat_button_empties_the_conversation(app_env, index_dir: Path) -> None:
    at = _ask(app_env(index_dir), QUESTION)
    assert len(at.chat_message) == 2
    _button(at, "Clear chat").click().run()
    assert not at.chat_message
    assert at.session_state["turns"] == []


def test_upload_is_sanitized_stored_indexed_and_summarized(
        app_env, index_dir: Path, tmp_path: Path, embedder) -> None:
    # a private copy: this test adds a document
    index = tmp_path / "index"
    shutil.copytree(index_dir, index)
    at = app_env(index)
    before = int(at.sidebar.metric[0].value)
    text = b"# Ferry timetable\n\nThe Port Alder ferry leaves at 07:15 and 16:40 on weekdays.\n"
    at.sidebar.file_uploader[0].set_value([
        ("../../etc/ferry.md", text, "text/markdown"),
        (".tides.txt", b"High water at Port Alder is at 06:12 today.\n", "text/plain"),
    ])
    _button(at, "Add to index").click().run()
    assert not at.exception, at.exception
    stored = tmp_path / "uploads" / "ferry.md"
    assert stored.read_bytes() == text  # kept under the upload folder, not ../../etc
    # a hidden name would be skipped by ingestion, so it is stored visible instead
    assert sorted(p.name for p in stored.parent.iterdir()) == ["ferry.md", "tides.txt"]
    summary = " ".join(_texts(at.sidebar.warning) + _texts(at.sidebar.success))
    assert "Added 2" in summary and "failed 0" in summary
    details = " ".join(_texts(at.sidebar.markdown)).replace("\\", "")
    assert "added: ferry.md" in details and "added: tides.txt" in details
    assert int(at.sidebar.metric[0].value) == before + 2


@pytest.fixture
def small_upload_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MAX_UPLOAD_MB", "1")


@pytest.mark.usefixtures("small_upload_limit")
def test_too_large_upload_is_rejected_with_the_reason(app_env, index_dir: Path,
                                                      tmp_path: Path) -> None:
    at = app_env(index_dir)
    at.sidebar.file_uploader[0].set_value(("big.txt", b"word " * 300_000, "text/plain"))
    _button(at, "Add to index").click().run()
    assert not at.exception, at.exception
    shown = " ".join(_texts(at.sidebar.warning) + _texts(at.sidebar.markdown)).replace("\\", "")
    assert "over the upload limit of 1 MB" in shown
    assert not (tmp_path / "uploads" / "big.txt").exists()


def test_missing_model_is_an_error_message_not_a_traceback(
        app_env, index_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_MODEL", str(tmp_path / "no-such-model.gguf"))
    at = _ask(app_env(index_dir), QUESTION)
    errors = " ".join(_texts(at.error))
    assert "Error while answering" in errors and "no-such-model" in errors
    assert "Traceback" not in errors
    turn: Turn = at.session_state["turns"][0]
    assert turn.answer is None and turn.error == at.error[0].value


def test_unusable_index_folder_is_an_error_message(app_env, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "index.txt"
    not_a_folder.write_text("not an index")
    at = app_env(not_a_folder)
    assert "Error while opening the index" in " ".join(_texts(at.error))
    assert not at.chat_input  # nothing below the error is drawn


def test_missing_api_key_says_which_variable_to_set(
        app_env, index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_BACKEND", "openai")
    monkeypatch.setenv("RAG_MODEL", "gpt-test")
    monkeypatch.setenv("RAG_API_KEY_ENV", "RAG_UI_TEST_UNSET_KEY")
    monkeypatch.delenv("RAG_UI_TEST_UNSET_KEY", raising=False)
    at = app_env(index_dir)
    assert at.sidebar.selectbox[0].value.label == "openai · gpt-test"
    at = _ask(at, QUESTION)
    assert "RAG_UI_TEST_UNSET_KEY" in " ".join(_texts(at.error))


# -- upload names -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\windows\\evil.md", "evil.md"),
    (".hidden.md", "hidden.md"),
    ("report (final).pdf", "report (final).pdf"),
    ("a\x00b;rm -rf.txt", "ab_rm -rf.txt"),
    ("/abs/path/notes.txt", "notes.txt"),
])
def test_sanitize_keeps_only_a_safe_visible_base_name(name: str, safe: str) -> None:
    assert sanitize_filename(name) == safe


@pytest.mark.parametrize("name", ["..", ".", "../..", "", "///", " . "])
def test_sanitize_rejects_names_with_nothing_left(name: str) -> None:
    with pytest.raises(UploadRejected):
        sanitize_filename(name)


def test_sanitize_truncates_long_names_but_keeps_the_suffix() -> None:
    out = sanitize_filename("x" * 400 + ".docx")
    assert out.endswith(".docx") and len(out.encode()) <= 200


def test_check_upload_rejects_unsupported_types_large_and_empty_files() -> None:
    assert check_upload("notes.MD", 10, max_mb=1) == "notes.MD"
    with pytest.raises(UploadRejected, match="unsupported file type .exe"):
        check_upload("setup.exe", 10, max_mb=1)
    with pytest.raises(UploadRejected, match="unsupported file type"):
        check_upload("README", 10, max_mb=1)
    with pytest.raises(UploadRejected, match="over the upload limit of 1 MB"):
        check_upload("big.pdf", 1024 * 1024 + 1, max_mb=1)
    with pytest.raises(UploadRejected, match="empty"):
        check_upload("empty.txt", 0, max_mb=1)


def test_save_upload_stays_inside_the_folder_and_replaces_same_name(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    first = save_upload("../../escape.txt", b"one", folder, max_mb=1)
    assert first.path == folder / "escape.txt" and first.path.read_bytes() == b"one"
    assert not (tmp_path.parent / "escape.txt").exists()
    again = save_upload("escape.txt", b"two", folder, max_mb=1)
    assert again.path.read_bytes() == b"two"
    assert [p.name for p in folder.iterdir()] == ["escape.txt"]  # no temp files left


def test_save_upload_refuses_to_write_through_a_symlink(tmp_path: Path) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(UploadRejected):
        save_upload("link.txt", b"overwrite", folder, max_mb=1)
    assert outside.read_text() == "keep"


# -- highlighting and citations ------------------------------------------------------------------


PASSAGE = ("The tower measures 31 metres. A spiral staircase of 137 steps winds up to the "
           "lantern room.\n\nThe light was first shown on 3 March 1867.")


def test_sentence_spans_split_on_sentence_ends_and_paragraphs() -> None:
    assert [PASSAGE[s:e] for s, e in sentence_spans(PASSAGE)] == [
        "The tower measures 31 metres.",
        "A spiral staircase of 137 steps winds up to the lantern room.",
        "The light was first shown on 3 March 1867.",
    ]


def test_supporting_sentence_is_the_one_with_the_answers_new_words() -> None:
    question = "How many steps does a keeper climb to reach the lantern room?"
    spans = supporting_spans(PASSAGE, "A keeper climbs 137 steps [1].", question)
    assert [PASSAGE[s:e] for s, e in spans] == [
        "A spiral staircase of 137 steps winds up to the lantern room."]
    spans = supporting_spans(PASSAGE, "It was first lit on 3 March 1867 [2].",
                             "When was the light first shown?")
    assert [PASSAGE[s:e] for s, e in spans] == ["The light was first shown on 3 March 1867."]


def test_no_highlight_when_the_answer_shares_too_little() -> None:
    assert supporting_spans(PASSAGE, "The documents do not contain the answer.") == []
    assert supporting_spans(PASSAGE, "") == []
    assert "[1]" not in content_words("see [1]") and "see" in content_words("see [1]")


def test_highlight_escapes_document_html_and_marks_spans() -> None:
    text = "Safe <script>alert(1)</script> text. Costs $5 & more."
    out = highlight_html(text, [(0, 4)])
    assert out.startswith("<mark>Safe</mark>")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "$" not in out and "&amp;" in out
    html = passage_html("Line one.\n\nLine two.", "")
    assert html == '<div class="rag-passage">Line one.<br><br>Line two.</div>'
    assert "\n" not in passage_html(PASSAGE, "137 steps")


def test_citations_link_to_their_source_anchor() -> None:
    out = link_citations("Built in 1867 [2] of granite [1, 3]. See [9].", turn=4,
                         numbers={1, 2})
    assert "[\\[2\\]](#src-4-2)" in out
    assert "[\\[1\\]](#src-4-1)\\[3\\]" in out  # [3] was not shown: plain text, no dead link
    assert out.endswith("See \\[9\\].")
    assert anchor_id(4, 2) == "src-4-2"


def test_source_label_names_file_page_and_score() -> None:
    label = source_label(2, "/data/docs/staff_handbook.pdf", 3, 0.03279)
    assert label == "\\[2\\] staff\\_handbook.pdf, page 3 · score 0.033"
    assert "page" not in source_label(1, "/x/notes.md", None, 0.5)


def test_history_keeps_answered_turns_only() -> None:
    src = Source(number=1, source="/x.md", page=None, text="t", score=1.0)
    answered = Turn("Who built it?", answer=Answer(text="Ada [1].", sources=[src]))
    failed = Turn("And then?", error="Error while answering: no model")
    assert history([answered, failed]) == [
        {"role": "user", "content": "Who built it?"},
        {"role": "assistant", "content": "Ada [1]."},
    ]


def test_format_updated_and_summary() -> None:
    assert format_updated(None) == "never"
    assert format_updated(1000.0, now=1030.0).endswith("(just now)")
    assert format_updated(1000.0, now=1000.0 + 600).endswith("(10 min ago)")
    assert summarize(None, ["x.exe: unsupported"])["details"] == [
        "rejected upload: x.exe: unsupported"]
