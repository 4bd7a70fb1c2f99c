"""kubetrail's HTTP side: the ASGI application, its routes, authentication and metrics.

One module per concept: :mod:`.app` composes the application from lists of routes and
middleware, :mod:`.ingest` is the webhook endpoint, :mod:`.writer` the single thread that owns
the store, :mod:`.auth` credentials, :mod:`.metrics` Prometheus, :mod:`.health` probes,
:mod:`.errors` the one JSON error shape, :mod:`.server` runs the app under uvicorn.
"""
