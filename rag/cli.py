"""The `rag` command: ingest documents, ask questions, chat, evaluate, fine-tune, serve the UI."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag.settings import Settings  # noqa: E402

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


class EmptyIndexError(RuntimeError):
    """Asked a question of an index without documents."""

Command = Callable[[argparse.Namespace, Settings], int]
AddArgs = Callable[[argparse.ArgumentParser], None]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("index_dir", "model", "backend", "top_k",
                                                     "retrieval", "embedder")}
    return Settings.load(getattr(args, "config", None), **overrides)


# -- ingest ------------------------------------------------------------------------------


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.pipeline import ingest

    report = ingest(args.paths, settings, lock_timeout=args.lock_timeout)
    if args.json:
        print(json.dumps(report.to_dict(), indent=None if args.compact else 2))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="files and folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.add_argument("--compact", action="store_true", help="with --json: on one line")
    p.add_argument("--lock-timeout", type=float, default=600, metavar="SECONDS",
                   help="how long to wait while another process writes to the index "
                        "(default 600), then fail")


def _print_report(report) -> None:
    out = sys.stdout
    print(f"added {len(report.added)}, updated {len(report.updated)}, "
          f"unchanged {len(report.unchanged)}, renamed {len(report.renamed)}, "
          f"removed {len(report.removed)}, failed {len(report.failed)} "
          f"({report.chunks} chunks from {report.pages} pages in {report.seconds:.1f} s)",
          file=out)
    for f in report.failed:
        print(f"  FAILED  {f['path']}: {f['error']}", file=out)
    for w in report.warnings:
        print(f"  warning {w['path']}: {w['warning']}", file=out)
    for s in report.skipped:
        print(f"  skipped {s['path']}: {s['reason']}", file=out)
    idx = report.index
    if idx:
        print(f"index {idx['index_dir']}: {idx['documents']} documents, {idx['chunks']} chunks",
              file=out)


# -- ask / chat --------------------------------------------------------------------------


def _open_rag(settings: Settings):
    from rag.api import RAG

    rag = RAG(settings)
    if rag.stats()["chunks"] == 0:
        raise EmptyIndexError(
            f"the index at {settings.index_dir} holds no documents: add some with "
            f"`rag ingest FOLDER --index {settings.index_dir}`"
        )
    return rag


def _ask_options(args: argparse.Namespace) -> dict:
    return {"style": args.style}


def _print_sources(answer, out=sys.stdout) -> None:
    if not answer.sources:
        return
    print("\nSources:", file=out)
    for s in answer.sources:
        page = f", page {s.page}" if s.page is not None else ""
        snippet = " ".join(s.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        print(f"  [{s.number}] {s.source}{page} (score {s.score:.3f})\n      {snippet}", file=out)


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    rag = _open_rag(settings)
    if args.json:
        answer = rag.ask(args.question, **_ask_options(args))
        print(json.dumps(answer.to_dict(), ensure_ascii=False,
                         indent=None if args.compact else 2))
        return EXIT_OK
    stream = rag.stream(args.question, **_ask_options(args))
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.result()
    _print_sources(answer)
    if args.timings:
        print(f"\n{_format_timings(answer.timings)}")
    return EXIT_OK


def _format_timings(t: dict) -> str:
    parts = [f"retrieval {t.get('retrieval_s', 0) * 1000:.0f} ms"]
    if "ttft_s" in t:
        parts.append(f"first token {t['ttft_s']:.2f} s")
    parts.append(f"total {t.get('total_s', 0):.2f} s")
    parts.append(f"{t.get('prompt_tokens', 0)} prompt tokens")
    return "timings: " + ", ".join(parts)


def _ask_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("question")
    _answer_args(p)
    p.add_argument("--json", action="store_true",
                   help='print {"answer", "sources": [...], "timings": {...}} instead')
    p.add_argument("--compact", action="store_true", help="with --json: on one line")


def _answer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="default | fast | a model folder | a .gguf file | API model")
    p.add_argument("--backend", choices=["local", "openai", "anthropic", "llamacpp"])
    p.add_argument("-k", "--top-k", dest="top_k", type=int, help="passages given to the model")
    p.add_argument("--retrieval", choices=["hybrid", "dense", "bm25"])
    p.add_argument("--style", choices=["chat", "short"], default="chat",
                   help="chat: sentences with citations; short: just the answer phrase")
    p.add_argument("--timings", action="store_true", help="print retrieval and answer times")


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    rag = _open_rag(settings)
    history: list[dict[str, str]] = []
    print("Ask about your documents. /clear starts over, /quit (or Ctrl-D) leaves.")
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            print()
            return EXIT_OK
        if not question:
            continue
        if question in ("/quit", "/exit"):
            return EXIT_OK
        if question == "/clear":
            history.clear()
            print("(conversation cleared)")
            continue
        stream = rag.stream(question, history, **_ask_options(args))
        if stream.standalone_question != question:
            print(f"(searching for: {stream.standalone_question})")
        for piece in stream:
            print(piece, end="", flush=True)
        print()
        answer = stream.result()
        _print_sources(answer)
        if args.timings:
            print(_format_timings(answer.timings))
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer.text}]


# -- eval / finetune ---------------------------------------------------------------------
# the options and the work live in rag.eval.cli and rag.finetune; both import torch only
# when they run


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag.eval.cli import run

    return run(args, settings)


def _eval_args(p: argparse.ArgumentParser) -> None:
    from rag.eval.cli import add_arguments

    add_arguments(p)


def _finetune(args: argparse.Namespace, settings: Settings) -> int:
    from rag.finetune import run

    return run(args, settings)


def _finetune_args(p: argparse.ArgumentParser) -> None:
    from rag.finetune import add_arguments

    add_arguments(p)


# -- ui ----------------------------------------------------------------------------------


def _ui(args: argparse.Namespace, settings: Settings) -> int:
    import subprocess

    from rag.settings import PROJECT_ROOT

    app = PROJECT_ROOT / "ui" / "app.py"
    env = dict(os.environ, RAG_INDEX_DIR=str(settings.index_dir))
    if args.config:
        env["RAG_CONFIG"] = str(args.config)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app),
           "--browser.gatherUsageStats", "false", *args.streamlit_args]
    return subprocess.call(cmd, env=env)


def _ui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("streamlit_args", nargs="*",
                   help="Streamlit options, e.g. --server.port 8501 --server.headless true")


def _streamlit_args(argv: Sequence[str]) -> list[str]:
    """The words after `ui`, minus --index, in their order. argparse cannot be used: it
    splits an unknown option from its value (`--server.port 8501` came out as `8501
    --server.port`, which Streamlit rejects)."""
    argv = list(argv)
    rest = argv[argv.index("ui") + 1:]
    out: list[str] = []
    skip = False
    for word in rest:
        if skip:
            skip = False
        elif word == "--index":
            skip = True
        elif not word.startswith("--index="):
            out.append(word)
    return out


# -- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("--config", help="settings file (TOML); default ./rag.toml or $RAG_CONFIG")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, Command, AddArgs, str]] = [
        ("ingest", _ingest, _ingest_args,
         "add, update and remove documents in an index (incremental)"),
        ("ask", _ask, _ask_args, "answer one question from the indexed documents, with sources"),
        ("chat", _chat, _answer_args, "a conversation in the terminal (follow-ups understood)"),
        ("eval", _eval, _eval_args,
         "score answers and retrieval on SQuAD-format questions (EM, F1, recall@k, latency)"),
        ("finetune", _finetune, _finetune_args,
         "train a LoRA adapter for the local model on retrieval-augmented SQuAD questions"),
        ("ui", _ui, _ui_args, "serve the browser chat UI (Streamlit)"),
    ]
    for name, fn, add_args, help_text in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--index", dest="index_dir", help="index folder (default indexes/default)")
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `rag ui` hands options it does not know (--server.port 8501 ...) to Streamlit
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ui":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "ui":
        args.streamlit_args = _streamlit_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = _settings(args)
        return args.func(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        # errors the user can act on (a model or API problem) carry their own message
        from rag.generate.base import GenerationError

        if isinstance(exc, GenerationError):
            print(f"rag: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
