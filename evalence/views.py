"""Page-view base classes. Tenancy and roles are applied here, once, for every server-rendered page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic.detail import SingleObjectMixin

from accounts.choices import Role
from evalence.errors import ApplicationError
from evalence.tenancy import TenantModel


class OrgPageMixin(LoginRequiredMixin):
    """A signed-in member of the active organization, with at least `min_role` (and `write_role` for POSTs)."""

    min_role: str = Role.VIEWER
    write_role: str | None = None  # POST/PUT/PATCH/DELETE need this role; defaults to min_role

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = getattr(request, "membership", None)
        if membership is None:
            return render(request, "errors/no_organization.html", status=403)
        needed = self.min_role
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            needed = self.write_role or self.min_role
        if not membership.has_role(needed):
            raise PermissionDenied(f"This page needs the {needed} role.")
        self.organization = membership.organization
        self.membership = membership
        return super().dispatch(request, *args, **kwargs)


class TenantObjectMixin(OrgPageMixin):
    """For views with `model` (DetailView, UpdateView, …): objects come only from the active organization."""

    model: type[models.Model]
    include_global_rows = False

    def get_base_queryset(self) -> models.QuerySet:
        return self.model._default_manager.all()

    def get_queryset(self) -> models.QuerySet:
        if not issubclass(self.model, TenantModel):
            raise TypeError(f"{type(self).__name__} serves {self.model.__name__}, which is not a TenantModel")
        return self.get_base_queryset().for_org(self.organization, include_global=self.include_global_rows)


def error_message(error: ValidationError | ApplicationError) -> str:
    """One readable line for a flash message, from a service's application error or Django validation error."""
    if isinstance(error, ApplicationError):
        return error.message
    if hasattr(error, "error_dict"):
        return " ".join(
            text if name == "__all__" else f"{name.replace('_', ' ').capitalize()}: {text}"
            for name, texts in error.message_dict.items()
            for text in texts
        )
    return " ".join(error.messages)


class ObjectActionView(TenantObjectMixin, SingleObjectMixin, View):
    """A POST-only action on one object of the active organization, then back to `success_url(obj)`.

    `act()` calls the service and returns the success message; an application error or a Django validation error
    from the service becomes an error message on the page it redirects to. Roles come from OrgPageMixin
    (`min_role`, `write_role`).
    """

    http_method_names = ["post"]
    success_url_name = ""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        obj = self.get_object()
        try:
            message = self.act(obj)
        except (ApplicationError, ValidationError) as exc:
            messages.error(request, error_message(exc))
        else:
            if message:
                messages.success(request, message)
        return redirect(self.success_url(obj))

    def act(self, obj: Any) -> str:
        """Call the service; return the success message."""
        raise NotImplementedError

    def success_url(self, obj: Any) -> str:
        return reverse(self.success_url_name)
