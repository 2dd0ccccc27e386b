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

Command = Callable[[argparse.Namespace, Settings], int]
AddArgs = Callable[[argparse.ArgumentParser], None]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("index_dir", "model", "backend", "top_k",
                                                     "retrieval", "embedder")}
    return Settings.load(getattr(args, "config", None), **overrides)


# -- ingest ------------------------------------------------------------------------------


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.pipeline import ingest

    report = ingest(args.paths, settings)
    if args.json:
        print(json.dumps(report.to_dict(), indent=None if args.compact else 2))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="files and folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.add_argument("--compact", action="store_true", help="with --json: on one line")


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


# -- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("--config", help="settings file (TOML); default ./rag.toml or $RAG_CONFIG")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, Command, AddArgs, str]] = [
        ("ingest", _ingest, _ingest_args,
         "add, update and remove documents in an index (incremental)"),
    ]
    for name, fn, add_args, help_text in commands:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--index", dest="index_dir", help="index folder (default indexes/default)")
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        return args.func(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
