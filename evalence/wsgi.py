"""WSGI entry point (management tools and plain WSGI servers; production serves ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings")
application = get_wsgi_application()
