"""The embedded local cloud: the pinned engine, installed and run on loopback."""
