"""Deploying a stack: package the artifacts, create or update it through a change set,
follow its events, destroy it."""
