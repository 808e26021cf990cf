"""What the browser tests share: Debian's Chromium, its flags, and waits on the page's text."""
from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000  # a loaded 2-core machine: embedding a PDF can take a while


def wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([sel, text]) => { const el = document.querySelector(sel); return !!el && el.innerText.includes(text); }",
        arg=[selector, text],
    )


def wait_file_listed(page: Any, selector: str, name: str) -> None:
    # Gradio's file list renders a name as two blocks, stem and extension ("report" / ".pdf"), so
    # innerText holds "report\n.pdf" once laid out: compare with whitespace removed.
    page.wait_for_function(
        "([sel, name]) => { const el = document.querySelector(sel);"
        " return !!el && el.innerText.replace(/\\s+/g, '').includes(name.replace(/\\s+/g, '')); }",
        arg=[selector, name],
    )
