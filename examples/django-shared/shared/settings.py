"""A Django project sharing its users with caddy-session-auth (django_users).

Both sides use one PostgreSQL database: DATABASE_URL, the same URL as the
sidecar's users_db (postgres://user:password@host:port/dbname, with an
optional ?search_path=schema). The sidecar reads and writes auth_user and
reads auth_group / auth_user_groups; it adds only its own
session_auth_django_* and session_auth_secrets tables.
"""
import os
from urllib.parse import parse_qs, unquote, urlparse

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "change-me-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shared.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_db = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/app"))
_q = parse_qs(_db.query)
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": _db.path.lstrip("/"),
    "USER": unquote(_db.username or ""),
    "PASSWORD": unquote(_db.password or ""),
    "HOST": _db.hostname or "",
    "PORT": _db.port or 5432,
    "OPTIONS": {"options": "-c search_path=" + _q["search_path"][0]} if "search_path" in _q else {},
}}

# The sidecar writes pbkdf2_sha256 (password_hasher pbkdf2_sha256, the
# default) or argon2 (password_hasher argon2, which needs argon2-cffi here).
# Keep both verifiable; the first is what Django writes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
]

# The sidecar's cookies are sessionid and csrftoken (as DRF clients expect):
# Django's own must have other names, or each side would overwrite the
# other's.
SESSION_COOKIE_NAME = "django_sessionid"
CSRF_COOKIE_NAME = "django_csrftoken"
