"""The ground floor: settings, errors, encryption, the home folder, production checks, version.

Nothing here imports another Workbench package.
"""
