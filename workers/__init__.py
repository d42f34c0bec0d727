"""Workers: the composition root (settings, worker, CLI, local stack, metrics)."""
