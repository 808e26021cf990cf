"""The web UI (Gradio): one module per tab over the application service.

Works offline: no usage analytics or version pings unless ``ui.analytics`` turns them on. The
variable is set here, before any tab module imports gradio.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
