"""plotly.js served locally: the installed plotly package's own `plotly.min.js`, exposed as `vendor/plotly.min.js`.

A `STATICFILES_DIRS` entry would publish the whole `package_data` folder (megabytes of sample datasets and templates
no page needs) and collectstatic would copy and compress all of it; this finder publishes the one file. Whitenoise
serves it from the finders in development and from `STATIC_ROOT` after collectstatic in production, so the version
drawn in the browser is always the version of the Python package that built the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
FILENAME = "plotly.min.js"
STATIC_PATH = f"{PREFIX}/{FILENAME}"


def plotly_package_data() -> Path:
    """The folder of the installed plotly package that holds `plotly.min.js`."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    """Finds `vendor/plotly.min.js` in the installed plotly package, and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(plotly_package_data()))
        self.storage.prefix = PREFIX  # collectstatic and whitenoise put the file under this prefix

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        if not Path(self.storage.path(FILENAME)).is_file():
            return [
                Error(
                    f"{FILENAME} is missing from the plotly package at {self.storage.location}.",
                    hint="Install the pinned plotly from requirements.txt; the overview page's charts need it.",
                    id="analytics.E001",
                )
            ]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str] | None:
        found = self.storage.path(FILENAME) if path == STATIC_PATH and self.storage.exists(FILENAME) else None
        if find_all or kwargs.get("all"):  # `all` is Django's deprecated spelling of find_all
            return [found] if found else []
        return found

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        if self.storage.exists(FILENAME):
            yield FILENAME, self.storage
