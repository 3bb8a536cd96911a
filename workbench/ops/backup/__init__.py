"""Backups that prove they restore: one bundle per backup, verified by a test restore.

``api`` makes, lists and prunes bundles; ``bundle`` is their format; ``database`` copies a
database consistently; ``roles`` carries the login and group roles; ``verify`` and ``restore``
put a bundle back.
"""
