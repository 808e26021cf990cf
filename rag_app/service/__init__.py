"""The application layer: one facade (:class:`RagService`) over the knowledge base, its uploads,
background jobs, folder sync and tuned models. Front ends (``rag_app.api``, ``rag_app.ui``,
``rag_app.cli``) call only this; it calls the domain packages, which call ``ingest``."""
from rag_app.calibration.calibrate import NotEnoughToCalibrate

from .access import LOCAL, Forbidden, NotFound, Principal
from .calibration_store import stored_calibration
from .facade import EmptyQuestionError, RagService, SearchResult
from .jobs import FileResult, Job
from .knowledge_base import KnowledgeBase
from .model_store import ModelStoreError, TunedModelStore
from .uploads import UploadInput, display_name, sanitize_filename
from .workspace import ChunkPreview, SavedEvent, Workspace, find_knowledge_base, knowledge_base_settings

__all__ = [
    "LOCAL",
    "ChunkPreview",
    "EmptyQuestionError",
    "Forbidden",
    "NotFound",
    "Principal",
    "SavedEvent",
    "Workspace",
    "find_knowledge_base",
    "knowledge_base_settings",
    "FileResult",
    "Job",
    "KnowledgeBase",
    "ModelStoreError",
    "NotEnoughToCalibrate",
    "RagService",
    "SearchResult",
    "TunedModelStore",
    "UploadInput",
    "display_name",
    "sanitize_filename",
    "stored_calibration",
]
