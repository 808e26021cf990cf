"""Previews of cited sources: a PDF page rendered with the cited passage highlighted."""
from rag_app.preview.pdf_page import PagePreview, PreviewError, render_pdf_passage

__all__ = ["PagePreview", "PreviewError", "render_pdf_passage"]
