#!/bin/sh
# Run once by the PostgreSQL image when it creates the cluster (docker-entrypoint-initdb.d):
# Workbench's database and the role that owns it, which may create roles and databases but is
# no superuser and does not bypass row-level security (docs/security.md). The superuser keeps
# no password, so it can log in only through the container's local socket.
# The password is read from the same file as the database URL's (`workbench deploy secrets`)
# and passed to psql through a backquoted command, never on a command line.
set -eu
export WORKBENCH_DB_PASSWORD_FILE="${WORKBENCH_DB_PASSWORD_FILE:-/run/secrets/postgres_password}"
if [ ! -r "$WORKBENCH_DB_PASSWORD_FILE" ]; then
    echo "10-workbench-owner: cannot read $WORKBENCH_DB_PASSWORD_FILE: run" \
        "'workbench deploy secrets deploy/secrets' and give it to the postgres user" >&2
    exit 1
fi
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v owner="${WORKBENCH_DB_USER:-workbench}" -v db="${WORKBENCH_DB_NAME:-workbench}" \
    -v superuser="${POSTGRES_USER:-postgres}" <<'SQL'
\set password `cat "$WORKBENCH_DB_PASSWORD_FILE"`
CREATE ROLE :"owner" LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE CREATEDB PASSWORD :'password';
\unset password
CREATE DATABASE :"db" OWNER :"owner";
ALTER ROLE :"superuser" PASSWORD NULL;
SQL
