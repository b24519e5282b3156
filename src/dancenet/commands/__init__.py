"""One module per CLI command; each exposes ``register(commands, train_commands, common)``."""
