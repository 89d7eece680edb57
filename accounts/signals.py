"""Sign-in events become audit entries (the services decide what to write)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import services
from accounts.models import User
from evalence.http import client_ip


@receiver(user_logged_in)
def _on_login(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    services.login_recorded(user=user, ip=client_ip(request) if request else None, succeeded=True)


@receiver(user_logged_out)
def _on_logout(sender: Any, request: Any, user: User | None, **kwargs: Any) -> None:
    if user is not None and user.is_authenticated:
        services.logout_recorded(user=user, ip=client_ip(request) if request else None)


@receiver(user_login_failed)
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    email = str(credentials.get("username") or credentials.get("email") or "")
    ip = client_ip(request) if request else None
    user = User.objects.filter(email__iexact=email).first() if email else None
    if user is not None:
        services.login_recorded(user=user, ip=ip, succeeded=False)
    else:
        services.login_failed_for_unknown(email=email, ip=ip)
