"""Pipelines of notebooks: what each notebook needs (`metadata.nbops.needs`), the graph they make,
its checks (cycles, missing and ambiguous names) and its order. Pure: no kernel, no store."""
