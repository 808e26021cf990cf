"""The web UI (Gradio) and the services it shares with the JSON API."""
