"""Activities: all of govflow's I/O (evidence store, connectors, model clients, tasks)."""
