"""Every URL of the project, walked from the resolver: organization B must never reach organization A's data.

The list of URLs is not kept by hand. Each URL pattern is classified by what serves it (a tenant API view, a tenant
page, the admin, or a short list of URLs that hold no tenant data, each with its reason). A new URL that fits none of
these fails `test_every_url_is_classified`, so a forgotten endpoint cannot slip through. Then:

- object URLs (with a lookup in the path) are requested by charlie (admin of B) and by a key of B with every scope,
  with every method: each answer is 403, 404 or 405, and A's object is unchanged; alice gets past the lookup
  (not 404), which proves the URL really points at the object;
- other URLs are requested by charlie and B's key after one object of every tenant model was made for A: no id of
  A's objects appears in the answer.

Objects come from the factories in `<app>/tests/factories.py`; a tenant model without one fails the test.
"""

from __future__ import annotations

import importlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import factory
import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from accounts.tests.factories import ApiKeyFactory, MembershipFactory, UserFactory
from evalence.api.views import TenantAPIView, TenantViewSetMixin
from evalence.tenancy import TenantModel, tenant_models
from evalence.views import OrgPageMixin, TenantObjectMixin

PROJECT_APPS = ("accounts", "promptbank", "firewall", "testing", "analytics")

# URLs that serve no tenant-owned data, and why. Everything else must be a tenant view, page or admin view.
NO_TENANT_DATA = {
    "api:root": "static description of the API",
    "api-schema": "OpenAPI schema: describes endpoints, holds no rows",
    "api-docs": "Swagger UI page, static assets",
    "demo_assistant:chat_completions": "the built-in demo model: answers from rules and the request body, no rows",
    "demo_assistant:models": "the built-in demo model's model list, static",
    "health-live": "liveness probe",
    "health-ready": "readiness probe: reports service status, no rows",
    "metrics": "Prometheus metrics: counters by view and status, no tenant rows",
    "accounts:login": "sign-in form",
    "accounts:logout": "sign-out",
    "accounts:org_switch": "switches only among the user's own memberships (tested in accounts/tests/test_views.py)",
    "accounts:invitation_accept": "authorised by the secret token in the URL, not by organization",
    "accounts:settings": "redirect to the members page",
}
# Admin URLs that are not about one model's rows.
ADMIN_SITE_VIEWS = {
    "admin:index",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:autocomplete",
    "admin:jsi18n",
    "admin:view_on_site",
    "admin:app_list",
}
OBJECT_KWARGS = {"pk", "id", "uuid", "object_id", "slug"}


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    pattern: URLPattern

    @property
    def kwargs(self) -> set[str]:
        return set(self.pattern.pattern.regex.groupindex)

    def __str__(self) -> str:
        return f"{self.name or '<unnamed>'} ({self.route})"


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = namespace + (f"{entry.namespace}:" if entry.namespace else "")
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = namespace + entry.name if entry.name else ""
            yield Route(name, prefix + str(entry.pattern), entry)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))


def classify(route: Route) -> str:
    """One of: api, page, admin-model, admin-rq, admin-site, no-tenant-data, or 'unclassified'."""
    callback = route.pattern.callback
    if route.name in NO_TENANT_DATA:
        return "no-tenant-data"
    view_cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if route.route.startswith("admin/django_rq/"):
        return "admin-rq"
    model_admin = getattr(callback, "model_admin", None)
    if model_admin is not None:
        return "admin-model"
    if route.name in ADMIN_SITE_VIEWS or route.route.startswith("admin/"):
        # The admin's own views: index, per-app index, the `<path:object_id>/` redirect to the change page (checked
        # through the change page) and the catch-all that answers 404.
        return "admin-site"
    if view_cls is not None and issubclass(view_cls, TenantViewSetMixin | TenantAPIView):
        return "api"
    if view_cls is not None and issubclass(view_cls, OrgPageMixin):
        return "page"
    return "unclassified"


def view_model(route: Route) -> type[models.Model] | None:
    callback = route.pattern.callback
    view_cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if getattr(callback, "model_admin", None) is not None:
        return callback.model_admin.model
    queryset = getattr(view_cls, "queryset", None)
    if queryset is not None:
        return queryset.model
    return getattr(view_cls, "model", None)


def factories_by_model() -> dict[type[models.Model], type[factory.django.DjangoModelFactory]]:
    found: dict[type[models.Model], type[factory.django.DjangoModelFactory]] = {}
    for app in PROJECT_APPS:
        try:
            module = importlib.import_module(f"{app}.tests.factories")
        except ModuleNotFoundError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, factory.django.DjangoModelFactory):
                model = value._meta.model
                if model is not None and model not in found:
                    found[model] = value
    return found


ROUTES = all_routes()
CHECKED = [r for r in ROUTES if classify(r) in {"api", "page", "admin-model"}]


def test_every_url_is_classified() -> None:
    unclassified = [str(r) for r in ROUTES if classify(r) == "unclassified"]
    assert not unclassified, (
        "These URLs are served by views the isolation test cannot check. Serve tenant data through "
        "TenantViewSetMixin/TenantAPIView (API) or OrgPageMixin/TenantObjectMixin (pages); or, if the URL holds no "
        f"tenant data, add it to NO_TENANT_DATA with the reason: {unclassified}"
    )


def test_the_walk_covers_the_tenant_endpoints_we_know() -> None:
    """A guard on the walker itself: if it stopped finding routes, every other test here would pass vacuously."""
    names = {r.name for r in CHECKED}
    for expected in ("api:apikey-detail", "api:apikey-list", "api:membership-detail", "accounts:api_key_revoke"):
        assert expected in names


def test_every_tenant_model_has_a_factory() -> None:
    missing = [m.__name__ for m in tenant_models() if m not in factories_by_model()]
    assert not missing, f"Add factories in <app>/tests/factories.py for: {missing}"


def test_every_object_url_names_a_tenant_model() -> None:
    problems = []
    for route in CHECKED:
        if route.kwargs & OBJECT_KWARGS:
            model = view_model(route)
            if model is None or not (issubclass(model, TenantModel) or model in _global_admin_models()):
                problems.append(f"{route}: serves {model}")
    assert not problems, f"Object URLs must serve a TenantModel (scoped by for_org): {problems}"


def _global_admin_models() -> set[type[models.Model]]:
    """Models that are not tenant-owned but have admin pages; each admin scopes them (or is superuser-only)."""
    return {apps.get_model("accounts", "Organization"), apps.get_model("accounts", "User"), Group}


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def world(org_a: Any, org_b: Any, alice: Any, charlie: Any) -> dict[str, Any]:
    """One object of every tenant model in organization A, plus B's principals."""
    makers = factories_by_model()
    objects = {model: makers[model](organization=org_a) for model in tenant_models() if model in makers}
    objects[type(org_a)] = org_a
    objects[type(alice)] = alice
    objects[Group] = Group.objects.create(name="acme-curators")
    charlie.is_staff = True
    charlie.save(update_fields=["is_staff"])
    charlie.user_permissions.set(Permission.objects.all())  # every model permission: only scoping stands in the way
    root = UserFactory(email="root@evalence.test", is_staff=True, is_superuser=True)
    MembershipFactory(organization=org_a, user=root)
    key_b = ApiKeyFactory(organization=org_b)
    return {"objects": objects, "key_b": key_b, "root": root, "alice": alice, "charlie": charlie, "org_a": org_a}


def _client(user: Any = None, *, secret: str | None = None) -> Client:
    client = Client(enforce_csrf_checks=False)
    if user is not None:
        client.force_login(user)
    if secret is not None:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def fill(route: Route, values: dict[str, str]) -> str:
    """Turn a route's text (path converters or regex groups) into a URL; works for unnamed routes too."""
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)\??", lambda m: values[m.group(1)], route.route)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], url)
    return "/" + url.replace("^", "").replace("$", "").replace("?", "")


def _object_url(route: Route, obj: models.Model) -> str:
    values = {}
    for name in route.kwargs:
        if name == "slug":
            values[name] = obj.slug
        elif name in OBJECT_KWARGS:
            values[name] = str(obj.pk)
        else:
            pytest.fail(f"{route}: don't know how to fill the URL argument {name!r}; teach the isolation test")
    url = fill(route, values)
    assert resolve(url).url_name == route.pattern.name, f"{route}: built {url}, which resolves elsewhere"
    return url


def _snapshot(obj: models.Model) -> dict[str, Any] | None:
    fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
    return None if fresh is None else json.loads(json.dumps(model_to_dict(fresh), default=str))


def _markers(world: dict[str, Any]) -> set[str]:
    return {str(obj.pk) for model, obj in world["objects"].items() if issubclass(model, TenantModel)} | {
        str(world["org_a"].pk)
    }


METHODS = ("get", "post", "put", "patch", "delete")


@pytest.mark.parametrize("route", [r for r in CHECKED if r.kwargs & OBJECT_KWARGS], ids=str)
def test_organization_b_cannot_reach_organization_a_objects(route: Route, world: dict[str, Any]) -> None:
    check_object_route(route, world)


def test_the_check_fails_when_the_api_base_viewset_stops_scoping(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The isolation test must catch a base class that forgets `for_org` (this is what it exists for)."""
    monkeypatch.setattr(TenantViewSetMixin, "get_queryset", lambda self: self.get_base_queryset())
    route = next(r for r in CHECKED if r.name == "api:apikey-detail")
    with pytest.raises(AssertionError, match="answered 200"):
        check_object_route(route, world)


def test_the_check_fails_when_the_page_mixin_stops_scoping(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TenantObjectMixin, "get_queryset", lambda self: self.get_base_queryset())
    route = next(r for r in CHECKED if r.name == "accounts:api_key_revoke")
    with pytest.raises(AssertionError):
        check_object_route(route, world)


def check_object_route(route: Route, world: dict[str, Any]) -> None:
    model = view_model(route)
    obj = world["objects"].get(model)
    assert obj is not None, f"{route}: no object of {model} for organization A (missing factory?)"
    url = _object_url(route, obj)
    before = _snapshot(obj)
    kind = classify(route)

    outsiders = [("charlie", _client(world["charlie"]))]
    if kind == "api":
        outsiders.append(("key of B", _client(secret=world["key_b"]._secret)))
    for who, client in outsiders:
        for method in METHODS:
            if method in {"get", "delete"}:
                response = getattr(client, method)(url)
            else:
                response = getattr(client, method)(url, data="{}", content_type="application/json")
            body = _body(response)
            if kind == "admin-model":
                # The admin answers a foreign object with a redirect to its index ("doesn't exist") or 403.
                assert response.status_code in {302, 403, 404, 405}, f"{who} {method.upper()} {url}"
            else:
                assert response.status_code in {403, 404, 405}, (
                    f"{who} {method.upper()} {url} answered {response.status_code}: {body[:300]}"
                )
            # Integer keys (users) are too short to search for; UUIDs are unmistakable.
            # The admin echoes the id it was given in its "doesn't exist" message, so only status counts there.
            if isinstance(obj.pk, uuid.UUID) and kind != "admin-model":
                assert str(obj.pk) not in body, f"{who} {method.upper()} {url} leaks"
    assert _snapshot(obj) == before, f"{url}: organization B changed organization A's object"

    # Positive control: A's own admin (or a superuser in the admin) gets past the object lookup.
    insider = world["root"] if kind == "admin-model" else world["alice"]
    response = _client(insider).get(url)
    assert response.status_code != 404, f"{url}: even organization A gets 404, so this check proves nothing"


def _body(response: Any) -> str:
    """The whole body, streamed (exports) or not."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


@pytest.mark.parametrize("route", [r for r in CHECKED if not r.kwargs & OBJECT_KWARGS], ids=str)
def test_organization_b_sees_none_of_organization_a_in_lists(route: Route, world: dict[str, Any]) -> None:
    if route.kwargs:
        pytest.fail(f"{route}: don't know how to fill the URL arguments {route.kwargs}; teach the isolation test")
    url = reverse(route.name)
    markers = _markers(world)
    outsiders = [("charlie", _client(world["charlie"]))]
    if classify(route) == "api":
        outsiders.append(("key of B", _client(secret=world["key_b"]._secret)))
    for who, client in outsiders:
        response = client.get(url)
        assert response.status_code < 500, f"{who} GET {url} crashed: {response.status_code}"
        body = _body(response)
        leaked = sorted(m for m in markers if m in body)
        assert not leaked, f"{who} GET {url} shows organization A's ids {leaked}"


@pytest.mark.parametrize("route", [r for r in ROUTES if classify(r) == "admin-rq"], ids=str)
def test_the_job_dashboard_is_for_superusers_only(route: Route, world: dict[str, Any]) -> None:
    """RQ's dashboard spans every tenant's jobs: a staff curator of one organization must not open it."""
    url = fill(route, {name: "0" if "index" in name else "x" for name in route.kwargs})
    response = _client(world["charlie"]).get(url)
    assert response.status_code in {302, 403, 404}, f"staff of B opened {url}: {response.status_code}"
