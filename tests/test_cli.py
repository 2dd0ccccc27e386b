"""The `rag ingest` command as users and scripts run it: a real subprocess, its JSON summary and
its exit status (0 all ok, 1 some files failed, 2 usage or fatal error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from badfiles import (
    GOOD_PDF_PAGES,
    USER_PASSWORD,
    make_binary_txt,
    make_dangling_symlink,
    make_empty_txt,
    make_good_pdf,
    make_markdown,
    make_self_symlink,
    make_truncated_pdf,
    make_user_encrypted_pdf,
    make_utf8_txt,
)

from rag.index.store import IndexStore

CONTRACT_LISTS = ("added", "updated", "unchanged", "removed")


def rag(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `rag` command (the module when no script is installed)."""
    script = Path(sys.executable).with_name("rag")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]
    # no developer RAG_* settings, no model hub; cwd has no rag.toml
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_ingest_json_summary_and_exit_status(tmp_path):
    good, bad = tmp_path / "docs" / "good", tmp_path / "docs" / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    make_good_pdf(good / "orchard.pdf", GOOD_PDF_PAGES)
    make_markdown(good / "guide.md")
    make_utf8_txt(good / "ferry.txt")
    make_user_encrypted_pdf(good / "secret.pdf")  # its password comes from the config file
    failures = {
        "truncated.pdf": "truncated or corrupt",
        "locked.pdf": "PDF is encrypted and needs a password",
        "empty.txt": "empty file (0 bytes)",
        "junk.txt": "binary content, not text",
    }
    make_truncated_pdf(bad / "truncated.pdf")
    make_user_encrypted_pdf(bad / "locked.pdf", password="never-given")
    make_empty_txt(bad / "empty.txt")
    make_binary_txt(bad / "junk.txt")
    config = tmp_path / "rag.toml"
    config.write_text(f'[pdf_passwords]\n"secret.pdf" = "{USER_PASSWORD}"\n', encoding="utf-8")
    index = tmp_path / "index"

    first = rag("--config", config, "ingest", tmp_path / "docs", "--index", index, "--json",
                cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-3000:]  # some files failed, the rest went in
    summary = json.loads(first.stdout)  # stdout holds the JSON object and nothing else
    for key in CONTRACT_LISTS:
        assert isinstance(summary[key], list) and all(isinstance(p, str) for p in summary[key])
    assert sorted(summary["added"]) == sorted(str(p) for p in good.iterdir())
    assert summary["updated"] == summary["unchanged"] == summary["removed"] == []
    failed = {Path(f["path"]).name: f["error"] for f in summary["failed"]}
    assert set(failed) == set(failures)
    for name, reason in failures.items():
        assert reason in failed[name], (name, failed[name])
    assert all(set(f) >= {"path", "error"} for f in summary["failed"])
    assert isinstance(summary["chunks"], int) and summary["chunks"] >= len(list(good.iterdir()))
    assert summary["pages"] == 3 + 3 + 1 + 1  # two 3-page PDFs, two pageless files
    assert isinstance(summary["seconds"], float) and summary["seconds"] > 0

    # only good files under this root: exit 0, nothing re-read or embedded
    second = rag("ingest", good, "--index", index, "--json", "--compact", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(second.stdout.strip().splitlines()) == 1
    summary = json.loads(second.stdout)
    assert sorted(summary["unchanged"]) == sorted(str(p) for p in good.iterdir())
    assert summary["added"] == summary["failed"] == [] and summary["chunks"] == 0

    store = IndexStore(index)
    assert set(store.documents()) == {str(p) for p in good.iterdir()}
    store.close()


def test_ingest_human_output_names_each_failed_and_skipped_file(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_dangling_symlink(docs / "dangling.txt")
    make_self_symlink(docs / "selfloop.txt")
    (docs / ".hidden.md").write_text("# hidden\n", encoding="utf-8")
    (docs / "notes.odt").write_bytes(b"PK\x03\x04")
    result = rag("ingest", docs, "--index", tmp_path / "index", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    out = result.stdout
    assert f"FAILED  {docs / 'dangling.txt'}: broken symlink" in out
    assert f"FAILED  {docs / 'selfloop.txt'}: symlink loop" in out
    assert f"skipped {docs / '.hidden.md'}: hidden" in out
    assert f"skipped {docs / 'notes.odt'}: unsupported file type .odt" in out
    assert "failed 2" in out


def test_usage_and_fatal_errors_exit_2(tmp_path):
    no_paths = rag("ingest", "--index", tmp_path / "index", cwd=tmp_path)
    assert no_paths.returncode == 2 and "usage:" in no_paths.stderr
    missing = rag("ingest", tmp_path / "nowhere", "--index", tmp_path / "index", cwd=tmp_path)
    assert missing.returncode == 2
    assert "rag: error: no such file or folder" in missing.stderr
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("chunk_tokenz = 3\n", encoding="utf-8")
    unknown = rag("--config", bad_config, "ingest", tmp_path, "--index", tmp_path / "index",
                  cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown setting(s)" in unknown.stderr


def test_second_writer_gets_a_clear_message(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_utf8_txt(docs / "ferry.txt")
    index = tmp_path / "index"
    holder = IndexStore(index)
    with holder.writer():  # another process (this test) is writing
        result = rag("ingest", docs, "--index", index, "--lock-timeout", "0.5", cwd=tmp_path)
    holder.close()
    assert result.returncode == 2
    assert f"rag: error: another process is writing to {index}" in result.stderr
    assert result.stdout == ""
    store = IndexStore(index)
    assert store.documents() == {}  # the refused run changed nothing
    store.close()
