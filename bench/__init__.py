"""Load generator and benchmarks for liveion (`python -m bench ...`).

Nothing here is imported by the server; see bench/README.md for what each benchmark measures.
"""
