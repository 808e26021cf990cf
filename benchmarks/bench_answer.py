"""Answer latency with the packaged LLM: time to first token and total answer time, side by side
for several backends and with the answer check on and off, in one run on the same questions.

The samples corpus is indexed into a temporary data directory (e5-small + Milvus Lite + BM25), each
LLM setup (packaged Qwen2.5-Coder-0.5B-Instruct through ik_llama.cpp, the default, and through mainline
llama.cpp; the same model fp32 through transformers) is loaded once, then each question goes through the full answerer (retrieval,
answer check, prompt, streamed generation, citation parsing), as in the app. Results are printed and
written to BENCHMARKS.md under "## Answer latency" (only that section is replaced).

    python benchmarks/bench_answer.py                 # 5 questions x (ik_llama, llamacpp: check on/off; local)
    python benchmarks/bench_answer.py --setups ik_llama:on --threads 1 --repeat 2 --no-write
    python benchmarks/bench_answer.py --setups ik_llama:on:quality,llamacpp:on:quality   # configs/quality.yaml's LLM

A repeat asks the same question again: both llama.cpp backends then reuse the whole prompt from their cache
(first token about 1 s), so repeats measure the cache, not a new question; report single runs.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, offline_setup, write_section  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from rag_app.answering import Answerer, DeltaEvent, ErrorEvent, FinalEvent, build_prompt  # noqa: E402
from rag_app.config import load_settings  # noqa: E402
from rag_app.llm import approx_token_count, make_llm  # noqa: E402
from rag_app.service import KnowledgeBase  # noqa: E402

QUESTIONS = [
    ("zh", "入职满五年的正式员工每年有几天带薪年假？"),
    ("zh", "报销单需要在费用发生后多少天内提交？"),
    ("en", "What is the maximum upload size per file in Lumen Beacon 3.2?"),
    ("en", "Which PostgreSQL version does Lumen Beacon 3.2 require?"),
    ("en", "How long must passwords be according to the security policy?"),
]
SECTION = "## Answer latency"


def gpu_note() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)} (not used: the local backend runs on CPU)"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return "no GPU"


def run(args: argparse.Namespace) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-answer-"))
    models = Path(args.models_dir).resolve()
    settings = load_settings(args.config, data_dir=data_dir)
    # Reuse the converted packaged models (e5 and Qwen) instead of rebuilding them per run.
    settings.embedder = settings.embedder.model_copy(update={"cache_dir": str(models)})
    t0 = time.perf_counter()
    kb = KnowledgeBase(settings).warm_up()
    assert kb.indexer is not None
    report = kb.indexer.ingest_paths([REPO / "samples"])
    index_s = time.perf_counter() - t0
    results = []
    for setup in args.setups.split(","):
        backend, check, *shape = setup.split(":")
        # Another deployment shape (configs/<shape>.yaml) brings its own LLM and answer settings (the
        # answer check's cutoffs belong to the model that gives the verdict); retrieval stays shared.
        own = load_settings(REPO / "configs" / f"{shape[0]}.yaml", data_dir=data_dir) if shape else settings
        llm_update: dict = {"cache_dir": str(models), "backend": backend}
        if args.threads:
            llm_update["num_threads"] = args.threads
        llm_settings = own.llm.model_copy(update=llm_update)
        answer_settings = own.answer.model_copy(
            update={"check": own.answer.check.model_copy(update={"enabled": check == "on"})})
        res = run_setup(args, kb, llm_settings, answer_settings, data_dir)
        results.append({**res, "setup": setup, "index_s": index_s, "chunks": report.chunks_added})
    kb.close()
    return results


def run_setup(args: argparse.Namespace, kb: KnowledgeBase, llm_settings, answer_settings, data_dir: Path) -> dict:
    llm = make_llm(llm_settings, data_dir)
    t0 = time.perf_counter()
    llm.warm_up()
    load_s = time.perf_counter() - t0
    answerer = Answerer(kb, llm, answer_settings)

    rows = []
    for lang, question in QUESTIONS:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            first = None
            final: FinalEvent | ErrorEvent | None = None
            for event in answerer.stream(question):
                if isinstance(event, DeltaEvent) and first is None:
                    first = time.perf_counter() - t0
                if isinstance(event, (FinalEvent, ErrorEvent)):
                    final = event
            total = time.perf_counter() - t0
            if isinstance(final, ErrorEvent):
                raise SystemExit(f"answer failed: {final.message}")
            assert final is not None
            # One counter for every backend (llama.cpp exposes no tokenizer here): the tokenizer-free
            # estimate, a slight over-estimate, so decode rates compare across rows.
            written = final.draft or final.answer  # a withheld answer was still generated (and streamed)
            n_tokens = approx_token_count(written) if written else 0
            # The same prompt the answerer built (retrieval is deterministic), for its token count.
            chunks = kb.retriever.run(final.query).chunks  # type: ignore[union-attr]
            prompt = build_prompt(final.query, chunks, final.language, llm.count_tokens,
                                  answerer._context_budget(llm, final.query), answerer.settings.table_rows)
            prompt_tokens = sum(approx_token_count(m["content"]) for m in prompt.messages) if chunks else 0
            decode = total - (first or total)
            rows.append(
                {
                    "lang": lang,
                    "question": question,
                    "retrieval_s": final.timings.get("retrieval_s", 0.0),
                    "ttft_s": first or total,
                    "total_s": total,
                    "tokens": n_tokens,
                    "prompt_tokens": prompt_tokens,
                    "tok_s": (n_tokens - 1) / decode if decode > 0 and n_tokens > 1 else 0.0,
                    "refused": final.refused,
                    "refusal": final.refusal,
                    "check_s": final.timings.get("check_s"),
                    "cited": ", ".join(
                        dict.fromkeys(f"{c.source.file}{' (inferred)' if c.inferred else ''}" for c in final.citations)
                    ) or "-",
                    "answer": final.answer,
                }
            )
            logging.info("%s -> %.1f s: %s", question, total, final.answer.replace("\n", " ")[:200])
    return {
        "rows": rows,
        "load_s": load_s,
        "llm": llm.name,
        "check": answer_settings.check.enabled,
        "threads": llm_settings.num_threads,
        "max_new_tokens": llm_settings.max_new_tokens,
        "temperature": llm_settings.temperature,
        "context_tokens": answer_settings.context_tokens,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| LLM | answer check | lang | question | prompt tokens | check s | first token s | total s | answer tokens"
        " | decode tok/s | cited |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res in results:
        check = "on" if res["check"] else "off"
        for r in res["rows"]:
            cited = f"refused ({r['refusal']})" if r["refused"] else r["cited"]
            check_s = "–" if r["check_s"] is None else f"{r['check_s']:.2f}"
            lines.append(
                f"| {res['llm']} | {check} | {r['lang']} | {r['question']} | {r['prompt_tokens']} | {check_s}"
                f" | {r['ttft_s']:.2f} | {r['total_s']:.2f} | {r['tokens']} | {r['tok_s']:.1f} | {cited} |"
            )
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    lines = [
        "| LLM | answer check | load s | median first token s | median total s | median decode tok/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for res in results:
        rows = res["rows"]
        lines.append(
            f"| {res['llm']} | {'on' if res['check'] else 'off'} | {res['load_s']:.1f}"
            f" | {statistics.median(r['ttft_s'] for r in rows):.2f} | {statistics.median(r['total_s'] for r in rows):.2f}"
            f" | {statistics.median(r['tok_s'] for r in rows):.1f} |"
        )
    return "\n".join(lines)


def section(results: list[dict], command: str) -> str:
    first = results[0]
    p = [r["prompt_tokens"] for res in results for r in res["rows"] if r["prompt_tokens"]] or [0]
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu_model()}), {gpu_note()}"
    return "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine}; Python {platform.python_version()}"
            f" ({first['threads'] or 'default'} threads for the LLM). Measured {time.strftime('%Y-%m-%d')}.",
            "",
            f"Setup: the 6 sample documents ({first['chunks']} chunks) indexed into a fresh data directory"
            f" ({first['index_s']:.0f} s including the embedder load); each LLM setup loaded once beforehand"
            f" (load time below, not counted in the answers); temperature {first['temperature']},"
            f" at most {first['max_new_tokens']} new tokens. Each question runs the full answerer: retrieval,"
            f" the answer check when on, prompt with up to {first['context_tokens']} tokens of quoted sources, streamed generation,"
            " citation parsing. \"First token\" and \"total\" are measured from the question, so they include"
            " retrieval and the check.",
            "",
            summary(results),
            "",
            table(results),
            "",
            f"Most of the time to first token is prompt prefill on CPU ({min(p)}-{max(p)} prompt tokens). Token"
            " counts are the tokenizer-free estimate for every row (`approx_token_count`, slightly high), so"
            " decode rates compare across backends but read high in absolute terms. With either llama.cpp backend the answer check reads the prompt first and"
            " the answer then reuses it from the cache, so the check's own cost is the first-token difference between"
            " check on and off. \"(inferred)\": the model wrote no [n] marker and the app matched the answer to"
            " the source holding its terms and numbers (`answer.infer_citations`).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--models-dir", default=str(REPO / "data" / "models"), help="where packaged models are cached")
    parser.add_argument("--threads", type=int, default=None, help="LLM threads (default: from the config)")
    parser.add_argument("--setups", default="ik_llama:on,ik_llama:off,llamacpp:on,llamacpp:off,local:off",
                        help="comma-separated BACKEND:CHECK[:SHAPE] (check on/off; SHAPE: the LLM and answer"
                             " settings of configs/SHAPE.yaml, e.g. ik_llama:on:quality), measured in this order")
    parser.add_argument("--repeat", type=int, default=1, help="runs per question")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "pymilvus", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    results = run(args)
    command = "python benchmarks/bench_answer.py" + "".join(
        f" {flag}" for flag, on in (
            (f"--threads {args.threads}", args.threads), (f"--repeat {args.repeat}", args.repeat != 1),
            (f"--setups {args.setups}", args.setups != parser.get_default("setups")),
        ) if on
    )
    text = section(results, command)
    sys.stdout.write(text + "\n")
    for res in results:
        for r in res["rows"]:
            sys.stdout.write(f"\n[{res['setup']}] [{r['lang']}] {r['question']}\n  -> {r['answer']}\n")
    if not args.no_write:
        write_section(REPO / "BENCHMARKS.md", SECTION, text)
        sys.stdout.write(f"\nwrote {SECTION!r} to {REPO / 'BENCHMARKS.md'}\n")


if __name__ == "__main__":
    main()
