"""Drills on the local cloud: the demo, the chaos run with its census of guarantees, the
benchmark, and the faults they inject."""
