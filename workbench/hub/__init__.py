"""JupyterHub for the analyst's seat in team mode: Workbench accounts sign in, and each
analyst's JupyterLab server runs as their own system user with their own database login only.

:mod:`~workbench.hub.authenticator` checks Workbench passwords and hands a spawned server its
login; :mod:`~workbench.hub.spawner` starts that server as the analyst's system user;
:mod:`~workbench.hub.config` writes the hub's configuration (`workbench hub config`).
"""
