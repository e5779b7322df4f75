#!/usr/bin/python3
"""Regenerates the dumps the import tests read.

Runs a throwaway Django project (sqlite) in a temporary directory, creates the
users below with Django's own hashers, and writes the output of
`manage.py dumpdata auth.user --indent 2` next to this script (auth_user.json);
then puts users in groups and writes `dumpdata auth.user auth.group` with
--natural-foreign (auth_user_group_natural.json) and without
(auth_user_group_ids.json).

Needs Debian's Django and hasher libraries (not a virtualenv's):

    apt-get install -y python3-django python3-argon2 python3-bcrypt
    /usr/bin/python3 gen_fixture.py

Hashes get fresh salts on every run; the users, passwords and dates do not
change, so the tests keep passing with a regenerated file.
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "auth_user.json")
OUT_NATURAL = os.path.join(HERE, "auth_user_group_natural.json")
OUT_IDS = os.path.join(HERE, "auth_user_group_ids.json")

SETTINGS_EXTRA = '''
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
]
USE_TZ = True
'''

# (username, email, password, hasher, is_superuser, is_staff, is_active,
#  date_joined, last_login). Keep README.md in step with this table.
USERS = r'''
from datetime import datetime, timezone
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User

users = [
    ("alice", "alice@example.com", "Alice-pbkdf2-2024", "pbkdf2_sha256", True, True, True,
     datetime(2021, 3, 4, 9, 15, 0, 123456, tzinfo=timezone.utc), datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
    ("bob", "bob@example.com", "Bob-argon2-2024", "argon2", False, True, True,
     datetime(2021, 5, 6, 10, 0, 0, tzinfo=timezone.utc), None),
    ("carol", "carol@Example.COM", "Carol-bcrypt-2024", "bcrypt_sha256", False, False, True,
     datetime(2022, 7, 8, 11, 30, 0, tzinfo=timezone.utc), datetime(2023, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
    ("dave", "dave@example.com", "Dave-inactive-2024", "pbkdf2_sha256", False, False, False,
     datetime(2022, 9, 10, 12, 0, 0, tzinfo=timezone.utc), None),
    ("Zoë.Ōsaka_東京", "zoe@example.com", "Zoë-ünïcode-2024", "argon2", False, False, True,
     datetime(2023, 1, 2, 8, 0, 0, tzinfo=timezone.utc), None),
]
for username, email, password, hasher, su, staff, active, joined, last in users:
    u = User(username=username, email=email, is_superuser=su, is_staff=staff, is_active=active,
             date_joined=joined, last_login=last, first_name=username[:3].title(), last_name="Test")
    u.password = make_password(password, hasher=hasher)
    u.save()

# One user without a usable password (e.g. signed up through a social login).
eve = User(username="eve", email="eve@example.com",
           date_joined=datetime(2023, 6, 7, 8, 9, 10, tzinfo=timezone.utc))
eve.set_unusable_password()
eve.save()
'''

# Groups, made after auth_user.json is written. Ids: editors 1,
# "Content Editors" 2 (with a permission, which the import ignores),
# "東京 staff" 3, empty 4.
GROUPS = r'''
from django.contrib.auth.models import Group, Permission, User

editors = Group.objects.create(name="editors")
content = Group.objects.create(name="Content Editors")
content.permissions.add(Permission.objects.get(codename="change_user"))
tokyo = Group.objects.create(name="東京 staff")
Group.objects.create(name="empty")
User.objects.get(username="alice").groups.add(editors)
User.objects.get(username="bob").groups.add(editors, content)
User.objects.get(username="Zoë.Ōsaka_東京").groups.add(content, tokyo)
'''


def run(*args, cwd):
    subprocess.run([sys.executable, *args], cwd=cwd, check=True)


def main():
    tmp = tempfile.mkdtemp(prefix="django-fixture-")
    try:
        run("-m", "django", "startproject", "fixtureproj", tmp, cwd=tmp)
        with open(os.path.join(tmp, "fixtureproj", "settings.py"), "a") as f:
            f.write(SETTINGS_EXTRA)
        run("manage.py", "migrate", "--verbosity", "0", cwd=tmp)
        run("manage.py", "shell", "--command", USERS, cwd=tmp)
        run("manage.py", "dumpdata", "auth.user", "--indent", "2", "--output", OUT, cwd=tmp)
        run("manage.py", "shell", "--command", GROUPS, cwd=tmp)
        run("manage.py", "dumpdata", "auth.user", "auth.group", "--natural-foreign", "--indent", "2",
            "--output", OUT_NATURAL, cwd=tmp)
        run("manage.py", "dumpdata", "auth.user", "auth.group", "--indent", "2", "--output", OUT_IDS, cwd=tmp)
    finally:
        shutil.rmtree(tmp)
    for out in (OUT, OUT_NATURAL, OUT_IDS):
        print("wrote", out)


if __name__ == "__main__":
    main()
