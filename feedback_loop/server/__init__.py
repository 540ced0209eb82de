"""The feedback-loop HTTP server: the ``FeedbackLoop`` facade behind a REST API.

``feedback_loop.server.app.create_app`` builds the FastAPI application; ``feedback-loop serve``
runs it under uvicorn. Nothing is imported here, so the key and webhook commands work without
the web stack loaded.
"""
