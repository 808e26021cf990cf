"""One router per resource: questions (ask, search), documents, and the system routes."""
