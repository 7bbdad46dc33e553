"""Dialog state machines (one module per dialog) and their runtime and store."""
