"""Rosetta as a server: an HTTP API (``rosetta serve``: OpenAI-compatible chat completions, search, status,
ingest jobs) and an MCP server (``rosetta mcp``: search, ask, list_collections), both over the facade.

    app.py       the FastAPI application: routes, auth, limits, CORS, errors as JSON
    schemas.py   request and response bodies (they are the OpenAPI schema)
    chat.py      OpenAI chat messages -> a question with history; an Answer -> a completion or SSE chunks
    jobs.py      ingest jobs: URLs and uploads run in a background thread, with progress
    guard.py     API keys, the loopback rule, the body-size limit, the shared facade's lock
    run.py       starts uvicorn (``rosetta serve``)
    mcp.py       the MCP tools and their transports (``rosetta mcp``)

They need the ``serve`` extra: pip install 'rosetta-rag[serve]'.
"""
