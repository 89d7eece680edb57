#!/usr/bin/env python
"""Django's command-line utility for Evalence."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A missing or bad setting is an operator error: one readable line, not a traceback.
        print(f"error: configuration: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
