"""Example tasks written only against govflow's public API: read them as reference apps."""
