"""Helpers shared by the tests (and the load benchmark): paths, in-memory fakes, the stub LLM server,
the app in its own process, knowledge bases over the real components."""
