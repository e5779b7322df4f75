#!/usr/bin/env bash
# Regenerates django_auth.sql: Django's auth tables as `manage.py migrate`
# makes them, dumped without owner and schema. Needs Debian's python3-django
# and python3-psycopg2 and a PostgreSQL on 127.0.0.1:5432 (trust, user
# postgres, database test).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/settings.py" <<'PY'
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "test", "USER": "postgres",
    "HOST": "127.0.0.1", "PORT": 5432, "OPTIONS": {"options": "-c search_path=djgen"}}}
USE_TZ = True
PY
psql -h 127.0.0.1 -U postgres test -qc 'DROP SCHEMA IF EXISTS djgen CASCADE; CREATE SCHEMA djgen'
DJANGO_SETTINGS_MODULE=settings PYTHONPATH="$tmp" /usr/bin/python3 -m django migrate -v0
v=$(/usr/bin/python3 -c 'import django; print(django.get_version())')
{
  echo "-- Django $v's auth and contenttypes tables on PostgreSQL, as \`manage.py migrate\`"
  echo "-- makes them (schema only). Made by gen_django_auth.sh with Debian's python3-django"
  echo "-- and python3-psycopg2; the Django flavour's conformance suite loads it into"
  echo "-- each test's fresh schema."
  pg_dump -h 127.0.0.1 -U postgres -d test -n djgen --schema-only --no-owner --no-privileges \
    -T djgen.django_migrations -T djgen.django_migrations_id_seq |
    grep -v '^--' | grep -v '^\\\(un\)\?restrict' | grep -v '^SET \|set_config\|^CREATE SCHEMA' |
    sed 's/djgen\.//g' | cat -s
} >django_auth.sql
psql -h 127.0.0.1 -U postgres test -qc 'DROP SCHEMA djgen CASCADE'
