"""The OpenAI-compatible HTTP API over an engine client (one local engine, or replicas behind a dispatcher)."""
