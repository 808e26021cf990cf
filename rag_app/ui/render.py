"""HTML and table rendering shared by the tabs. Everything from documents is escaped: uploaded text
is untrusted."""
from __future__ import annotations

import html
import math
import time
from datetime import datetime
from typing import Any

from rag_app.answering import NumberedSource
from rag_app.retrieval.results import chunk_scores
from rag_app.service import FileResult, Job

_SNIPPET_CHARS = 500


def _fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_sources(
    sources: list[NumberedSource],
    cited: dict[int, bool] | None = None,  # cited source number -> inferred by the app
    *,
    query_note: str = "",
    no_evidence: str = "",
    not_answered: str = "",
    error: str = "",
) -> str:
    """The Sources panel: the query used, a notice (no evidence, not answered by the passages, or an
    error), then one card per source. ``not_answered``: the answer check found that the passages do
    not hold the answer; they are listed as related reading, never as support."""
    parts: list[str] = []
    if query_note:
        parts.append(f'<div class="query-used">{html.escape(query_note)}</div>')
    if error:
        parts.append(f'<div class="llm-error" id="llm-error">{html.escape(error)}</div>')
    if no_evidence:
        parts.append(
            '<div class="no-evidence" id="no-evidence"><b>No evidence found</b> — nothing in the knowledge base '
            "is relevant enough to this question, so it was not sent to the language model."
            f"<br><small>{html.escape(no_evidence)}</small></div>"
        )
    if not_answered:
        parts.append(
            '<div class="no-evidence" id="not-answered"><b>Not in the documents</b> — the passages below are about'
            " this topic, but none of them states the answer. They are shown as related reading only."
            f"<br><small>{html.escape(not_answered)}</small></div>"
        )
    if cited and any(cited.values()):
        parts.append(
            '<div class="inferred-note" id="inferred-note">The model did not name its source; the app matched the'
            " answer's words and numbers to the passage marked <b>matched by the app</b>.</div>"
        )
    for s in sources:
        parts.append(_source_card(s, cited, related=bool(not_answered)))
    if not parts:
        parts.append('<div class="src-empty">Sources for the answer appear here.</div>')
    return "\n".join(parts)


def plain_match(chunk: Any) -> str:
    """What a reader needs from the scores, in words: how close the meaning is (the dense score against
    this knowledge base's background, a z-score) and how many of the question's keywords it holds."""
    z = getattr(chunk, "dense_z", None)
    coverage = getattr(chunk, "bm25_coverage", None)
    parts = []
    if z is not None and math.isfinite(z):
        parts.append("meaning " + ("very close" if z >= 3 else "close" if z >= 2 else "related" if z >= 1 else "loose"))
    if coverage is not None and math.isfinite(coverage):
        parts.append("keywords " + ("strong" if coverage >= 0.5 else "some" if coverage >= 0.2
                                    else "few" if coverage > 0 else "none"))
    return " · ".join(parts)


def _snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("…" if len(flat) > limit else "")


def _card(number: object, file: str, location: str, snippet: str, *, badge: str = "", cited: bool = False,
          label: str | None = None, details: str | None = None) -> str:
    """One source card of the Sources panel: a live answer's (with its scores in words and in full)
    or a stored one's (``label`` and ``details`` None: the card has neither)."""
    where = f" — {html.escape(location)}" if location else ""
    meta = "" if label is None else f'<div class="src-meta">{html.escape(label)}</div>'
    more = "" if details is None else (
        f'<details class="src-details"><summary>details</summary>{html.escape(details)}</details>')
    return (
        f'<div class="src-card{" cited" if cited else ""}" data-source="{html.escape(file)}">'
        f'<div class="src-head">[{number}] {html.escape(file)}{where}{badge}</div>'
        f'{meta}<p class="src-snippet">{html.escape(snippet)}</p>{more}</div>'
    )


def _source_card(s: NumberedSource, cited: dict[int, bool] | None, *, related: bool = False) -> str:
    c = s.chunk
    is_cited = cited is not None and s.number in cited and not related
    scores = chunk_scores(c)
    raw = " · ".join(f"{name} {_fmt_score(value)}" for name, value in scores.items() if value is not None)
    badge = ""
    if is_cited:
        inferred = bool(cited and cited.get(s.number))
        badge = f'<span class="badge">{"matched by the app" if inferred else "cited"}</span>'
    elif related:
        badge = '<span class="badge related">related, does not answer</span>'
    limit = _SNIPPET_CHARS if is_cited or cited is None else 200
    return _card(s.number, s.file, c.location, _snippet(c.text, limit), badge=badge, cited=is_cited,
                 label=plain_match(c), details=raw)


def results_rows(results: list[FileResult]) -> list[list[str]]:
    return [[r.name, r.status, r.detail] for r in results]


def sync_rows(sync: dict[str, Any]) -> list[str]:
    """Status-table rows for the scheduled folder sync."""
    if not sync["folder"]:
        return ["| Folder sync | not configured (`scheduler.folder`, `scheduler.cron`) |"]
    rows = [f"| Folder sync | `{sync['folder']}` · {sync['schedule']} |"]
    if sync["running"]:
        rows.append("| Sync | running now |")
    if sync["next_run"]:
        rows.append(f"| Next sync | {sync['next_run']} |")
    if sync["last_finished"]:
        outcome = "ok" if sync["last_ok"] else "**failed**"
        rows.append(f"| Last sync | {sync['last_finished']} · {outcome} · {sync['last_summary']} |")
    else:
        rows.append("| Last sync | never ran |")
    return rows


def job_status(job: Job, started: float) -> str:
    """One line about an ingestion job: waiting, which file it is on, or how it ended."""
    done, total = job.files_progress
    current = next((r.name for r in job.snapshot() if r.status == "indexing"), "")
    if job.state == "queued":
        return f"Waiting for the ingestion worker… ({total} file(s))"
    if job.state == "running":
        return f"Indexing {done + 1} of {total}: {current}…" if current else f"Indexing… {done}/{total}"
    counts: dict[str, int] = {}
    for r in job.snapshot():
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"
    if job.state == "failed":
        return f"**Failed** after {time.time() - started:.1f} s: {job.error} ({summary})"
    return f"**Done** in {time.time() - started:.1f} s: {summary}"


def fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def render_saved_sources(sources: list[dict[str, Any]], citations: list[dict[str, Any]], outcome: str) -> str:
    """The Sources panel of a stored answer (a resumed conversation), from its saved JSON."""
    cited = {c.get("number") for c in citations}
    parts = []
    if outcome == "refused":
        parts.append('<div class="no-evidence" id="no-evidence"><b>No evidence found</b> — this question was'
                     " not sent to the language model.</div>")
    elif outcome in ("not_in_documents", "unsupported"):
        parts.append('<div class="no-evidence" id="not-answered"><b>Not in the documents</b> — the passages'
                     " below are related reading only.</div>")
    for s in sources:
        is_cited = s.get("number") in cited and outcome == "answered"
        parts.append(_card(s.get("number"), str(s.get("file", "")), str(s.get("location") or ""),
                           _snippet(str(s.get("text", "")), _SNIPPET_CHARS), cited=is_cited,
                           badge='<span class="badge">cited</span>' if is_cited else ""))
    return "\n".join(parts) or '<div class="src-empty">Sources for the answer appear here.</div>'


def render_context(context: list[dict[str, Any]], note: str = "") -> str:
    """A cited chunk among its neighbours in the document, the cited one marked."""
    parts = [f'<div class="src-meta">{html.escape(note)}</div>'] if note else []
    for item in context:
        cls = "ctx-chunk cited" if item.get("cited") else "ctx-chunk"
        parts.append(f'<p class="{cls}">{html.escape(str(item.get("text", "")))}</p>')
    return "\n".join(parts)
