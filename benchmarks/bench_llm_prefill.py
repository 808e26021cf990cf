"""Prompt reading (prefill) speed of the packaged GGUF in each llama.cpp runtime, one process, the
same prompts: mainline llama.cpp (``xllamacpp``, the ``llamacpp`` backend) and ik_llama.cpp (the
``ik_llama`` backend, the default) with its in-memory weight repacking and its flash attention each
on and off, to show what each brings. Reading a prompt is most of the wait for an answer's first token
on CPU. Prints a table; nothing is written.

    python benchmarks/bench_llm_prefill.py                  # 0.5B, ~700-token prompts, 3 rounds
    python benchmarks/bench_llm_prefill.py --model packaged:qwen2.5-coder-1.5b-instruct --rounds 2
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from machine import cpu_model, offline_setup  # benchmarks/machine.py (scripts run from this folder)

REPO = offline_setup()

from rag_app.llm import LLMBackend, LLMSettings  # noqa: E402
from rag_app.llm.ik_llama_backend import IkLlamaLLM  # noqa: E402
from rag_app.llm.llamacpp_backend import LlamaCppLLM  # noqa: E402


def prompt_text(tokens_wanted: int, counter: IkLlamaLLM) -> str:
    """Sample documents (Chinese and English) cut to about ``tokens_wanted`` tokens of the model."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "samples").glob("*.md")))
    low, high = 0, len(text)
    while low < high:  # the longest prefix within the budget
        mid = (low + high + 1) // 2
        if len(counter._tokenize(text[:mid].encode())) <= tokens_wanted:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def measure(llm: LLMBackend, text: str, rounds: int) -> float:
    llm.warm_up()
    llm.choice_probabilities([{"role": "user", "content": "warm-up " + text[:200]}], ["a"])
    seconds = []
    for i in range(rounds):
        # A different first character each round: nothing of the prompt is in the cache.
        messages = [{"role": "system", "content": f"[{i}] " + text}, {"role": "user", "content": "Summarise."}]
        t0 = time.perf_counter()
        llm.choice_probabilities(messages, ["a"])  # reads the prompt, samples nothing
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--models-dir", default=str(REPO / "data" / "models"))
    parser.add_argument("--tokens", type=int, default=700, help="prompt length in the model's tokens")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    def settings(backend: str) -> LLMSettings:
        return LLMSettings(backend=backend, model=args.model, num_threads=args.threads, context_window=4096)

    models = Path(args.models_dir)
    counter = IkLlamaLLM(settings("ik_llama"), models)
    counter.warm_up()
    text = prompt_text(args.tokens, counter)
    n_tokens = len(counter._tokenize(counter._render(
        [{"role": "system", "content": "[0] " + text}, {"role": "user", "content": "Summarise."}])))
    runtimes: list[tuple[str, LLMBackend]] = [
        ("llama.cpp (xllamacpp), `backend: llamacpp`", LlamaCppLLM(settings("llamacpp"), models)),
        ("ik_llama.cpp, repack off, flash attention off", IkLlamaLLM(settings("ik_llama"), models, repack=False,
                                                                      flash_attention=False)),
        ("ik_llama.cpp, repack on, flash attention off", IkLlamaLLM(settings("ik_llama"), models, flash_attention=False)),
        ("ik_llama.cpp, repack off, flash attention on", IkLlamaLLM(settings("ik_llama"), models, repack=False)),
        ("ik_llama.cpp, repack on, flash attention on (the default, `backend: ik_llama`)", counter),
    ]
    print(f"{cpu_model()}, {args.threads} threads; {args.model}; prompts of {n_tokens} tokens; "
          f"median of {args.rounds} rounds\n")
    print("| runtime | prefill s | tokens/s |\n|---|---:|---:|")
    for label, llm in runtimes:
        seconds = measure(llm, text, args.rounds)
        print(f"| {label} | {seconds:.2f} | {n_tokens / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
