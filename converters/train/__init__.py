"""Training facegate's own nets (offline, ``[train]`` extra: torch on the CPU).

``python -m facegate.converters.train prune|distill ...``; nothing on the device side imports
this package.
"""
