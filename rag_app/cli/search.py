"""``rag-search "query"``: hybrid search of the knowledge base, every stage's score shown."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rag_app.retrieval.results import RetrievedChunk
from rag_app.service import EmptyQuestionError, SearchResult

from .common import STORE_ERRORS, add_common_options, load_cli_settings, open_service

PROG = "rag-search"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Hybrid search of the knowledge base.")
    parser.add_argument("query")
    parser.add_argument("-k", "--top-k", type=int, default=None, help="results to show")
    parser.add_argument("--all", action="store_true", help="also show candidates below the threshold")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser)
    args = parser.parse_args(argv)
    service = open_service(load_cli_settings(args), PROG)
    if service is None:
        return 2
    try:
        found = service.search(args.query, top_k=args.top_k)
    except EmptyQuestionError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except STORE_ERRORS as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    finally:
        service.close()
    _print(found, show_all=args.all, as_json=args.json)
    return 0


def _print(found: SearchResult, *, show_all: bool, as_json: bool) -> None:
    result = found.result
    rows = result.chunks + (result.below_threshold if show_all else [])
    passed = {id(c) for c in result.chunks}
    if as_json:
        out = {
            "query": result.query,
            "note": result.note,
            "timings_ms": result.timings_ms,
            "results": [{**c.to_dict(), "passed": id(c) in passed} for c in rows],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if not result.chunks:
        print(f"no evidence: {result.note}")
    for i, c in enumerate(rows, start=1):
        _print_chunk(i, c, below=id(c) not in passed)
    print(f"({result.candidates} candidates, {result.timings_ms.get('total', 0):.0f} ms)")


def _print_chunk(rank: int, c: RetrievedChunk, *, below: bool) -> None:
    loc = f" [{c.location}]" if c.location else ""
    print(f"{rank}. {c.source}{loc}{' (below threshold)' if below else ''}")
    rerank = f" rerank={c.rerank_score:.3f}" if c.rerank_score is not None else ""
    relevance = f"relevance={c.relevance:.3f} " if c.relevance is not None else ""
    print(
        f"   {relevance}fused={c.fused_score:.4f} dense={c.dense_score:.3f} (margin={c.dense_margin:+.3f},"
        f" z={c.dense_z:.2f}, rank {c.dense_rank})"
        f" bm25={c.bm25_score:.2f} (coverage {c.bm25_coverage:.2f}, rank {c.bm25_rank}){rerank}"
    )
    snippet = " ".join(c.text.split())
    print(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
