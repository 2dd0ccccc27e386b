from ingest.split import Splitter, hf_token_offsets
from rag.types import Page


def _splitter(embedder, tokens=64, overlap=8):
    return Splitter(hf_token_offsets(embedder.separate_tokenizer()), tokens, overlap)


def test_chunks_are_exact_slices_within_budget(embedder):
    paras = [" ".join(f"Sentence {p}.{s} talks about topic {p} in detail." for s in range(6))
             for p in range(8)]
    text = "\n\n".join(paras)
    chunks = _splitter(embedder).split([Page(text)], "/x/doc.txt")
    assert len(chunks) > 4
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert embedder.count_tokens(c.text) <= 64
        assert c.page is None and c.source == "/x/doc.txt"
    # everything is covered: every sentence appears in some chunk
    for p in range(8):
        for s in range(6):
            assert any(f"Sentence {p}.{s} " in c.text for c in chunks)


def test_overlap_repeats_trailing_sentences(embedder):
    text = " ".join(f"Fact number {i} is that item {i} weighs {i * 3} kilograms."
                    for i in range(40))
    chunks = _splitter(embedder, tokens=64, overlap=20).split([Page(text)], "d")
    assert len(chunks) >= 3
    assert any(a.end > b.start for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(embedder.count_tokens(c.text) <= 64 for c in chunks)


def test_run_on_text_without_separators_is_cut_by_tokens(embedder):
    text = "x" * 10 + " " + " ".join(["supercalifragilistic"] * 300)
    chunks = _splitter(embedder, tokens=50, overlap=0).split([Page(text)], "d")
    assert len(chunks) > 5
    assert all(embedder.count_tokens(c.text) <= 50 for c in chunks)
    assert all(text[c.start:c.end] == c.text for c in chunks)


def test_pages_and_headings_are_boundaries(embedder):
    intro = "The lighthouse was built in 1871. " * 12
    keepers = "Edmund Vale kept it for thirty years. " * 12
    p1 = f"# Intro\n{intro}\n\n# Keepers\n{keepers}"
    pages = [Page(p1, page=1, headings=[(2, "Intro"), (p1.index("# Keepers") + 2, "Keepers")]),
             Page("Second page text about the fog horn.", page=2),
             Page("   ", page=3)]
    chunks = _splitter(embedder, tokens=200).split(pages, "d.pdf")
    assert [(c.page, c.heading) for c in chunks] == [(1, "Intro"), (1, "Keepers"), (2, None)]
    assert "1871" in chunks[0].text and "Edmund" not in chunks[0].text
    # the section starts at its heading's line: no stray '#' left behind in the chunk before
    assert chunks[0].text.startswith("# Intro") and not chunks[0].text.endswith("#")
    assert chunks[1].text.startswith("# Keepers")


def test_a_tiny_section_joins_the_next_instead_of_being_a_chunk(embedder):
    body = "Marta Okonkwo started the business in 2011. " * 8
    text = f"Staff Handbook\n2025 edition\n\nWelcome\n\n{body}"
    page = Page(text, page=1, headings=[(0, "Staff Handbook"), (text.index("Welcome"), "Welcome")])
    chunks = _splitter(embedder, tokens=200).split([page], "h.pdf")
    assert len(chunks) == 1
    assert chunks[0].text.startswith("Staff Handbook") and "2011" in chunks[0].text
    assert chunks[0].heading == "Staff Handbook / Welcome"
