"""Several engine replicas behind one OpenAI-compatible ingress, on Ray Serve (an optional extra)."""
