"""The single `closeloop` entry point: Django management commands behind friendly names."""

from __future__ import annotations

import os
import sys

# Friendly names for commands whose Django name differs (Django owns `check`).
ALIASES = {"check": "check_cases", "django-check": "check"}


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings")
    args = list(sys.argv if argv is None else argv)
    if len(args) > 1:
        name = args[1]
        args[1] = ALIASES.get(name, name.replace("-", "_"))
    from django.core.management import execute_from_command_line

    execute_from_command_line(args)


if __name__ == "__main__":
    main()
