"""Operating a deployed stack: what it is made of, sending items, its status, running the
retry job now."""
