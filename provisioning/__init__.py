"""Technician commands for a terminal: ``python -m provisioning COMMAND ...``.

Each command is one module with NAME, SUMMARY, EXAMPLE, ``register(subparsers)`` and
``run(args) -> exit code``; ``provisioning.__main__`` only dispatches, so adding a
command is one module plus one entry in its COMMANDS tuple.
"""
