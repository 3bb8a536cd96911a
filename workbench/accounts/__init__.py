"""Users and passwords, teams and memberships, and the Python API over both."""
