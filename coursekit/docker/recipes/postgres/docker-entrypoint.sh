#!/usr/bin/env bash
# The entrypoint of coursekit/postgres:15: a short version of the official image's.
#
#   docker run -e POSTGRES_PASSWORD=... coursekit/postgres:15 [postgres options]
#
# 1. As root: make sure PGDATA belongs to the postgres user, then run this script again
#    as that user (setpriv changes user and groups and then runs the program, like su).
# 2. As postgres, if PGDATA holds no database yet (a new, empty volume): create one
#    (initdb), with POSTGRES_USER as the superuser and POSTGRES_PASSWORD as its password,
#    allow password logins over TCP, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.
#    If PGDATA already holds a database (a restart, or a new container on the old volume),
#    skip all that: the data, users and passwords are those stored in the volume.
# 3. Replace this script with the server (exec), so that the server is PID 1 and gets
#    `docker stop`'s signal itself.
set -Eeuo pipefail

# `docker run IMAGE -c shared_buffers=64MB` means: the server, with those options.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

# Anything else (`docker run IMAGE psql --version`, `bash`) simply runs.
if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		cat >&2 <<-'MSG'
		error: the database does not exist yet and no password was given for its superuser.
		       Set POSTGRES_PASSWORD to a non-empty value, for example
		         docker run -e POSTGRES_PASSWORD=choose-one ... coursekit/postgres:15
		       (the official postgres image refuses to start without it too).
		MSG
		exit 1
	fi
	echo "entrypoint: PGDATA ($PGDATA) is empty: creating a new database cluster"
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
	# Listen on every interface of the container (only the ports you publish reach it),
	# and accept a password login (scram-sha-256) from any address.
	printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
	printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

	# A temporary server, on the Unix socket only, to create the database and run the
	# init scripts; no client can reach it from outside meanwhile.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres --no-psqlrc -q \
			--set db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db";
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh) echo "entrypoint: running $f"; . "$f" ;;
			*.sql) echo "entrypoint: running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
				--dbname "$POSTGRES_DB" --no-psqlrc -q -f "$f" ;;
			*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "entrypoint: database '$POSTGRES_DB' with superuser '$POSTGRES_USER' is ready"
else
	echo "entrypoint: PGDATA ($PGDATA) already holds a database: starting it as it is"
fi

exec "$@"
