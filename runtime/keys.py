"""Secrets read from files: the API key (``mahppo serve --api-key-file``) and the artefact signing key
(``--signing-key-file`` / ``$MAHPPO_SIGNING_KEY_FILE``). One reader, so both fail the same way: an
unreadable, empty or short file is a ``ValueError`` naming the flag and the file, never "no key"."""

from __future__ import annotations

import os
from pathlib import Path

MIN_KEY_CHARS = 16
SIGNING_KEY_ENV = "MAHPPO_SIGNING_KEY_FILE"


def read_key(path: str | Path, flag: str) -> str:
    """The key in ``path`` (one line of at least ``MIN_KEY_CHARS`` printable characters, no spaces;
    surrounding whitespace stripped); ``ValueError`` naming ``flag`` and the file otherwise."""
    if not str(path).strip():
        raise ValueError(f"{flag} '': empty path (give the key file, or leave the option and its variable unset)")
    p = Path(path).expanduser()
    try:
        key = p.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{flag} {p}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {p}: not a text file") from None
    if len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError(f"{flag} {p}: the key must be one line of at least {MIN_KEY_CHARS} printable "
                         "characters without spaces (make one with "
                         "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return key


def key_file_setting(explicit: str | None, env: str) -> str | None:
    """The key file in force: ``explicit`` when given (``''`` included: an error later, never "no key"), else
    ``$env`` when set (set but empty too), else None. As an absolute path (workers may run elsewhere)."""
    path = explicit if explicit is not None else os.environ.get(env)
    if path is None:
        return None
    return str(Path(path).expanduser().resolve()) if path.strip() else ""


def signing_key() -> bytes | None:
    """The artefact signing key of ``$MAHPPO_SIGNING_KEY_FILE`` (None when unset); set but empty or
    unreadable is an error."""
    path = key_file_setting(None, SIGNING_KEY_ENV)
    return None if path is None else read_key(path, f"--signing-key-file (${SIGNING_KEY_ENV})").encode()
