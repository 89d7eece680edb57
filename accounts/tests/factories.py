"""factory_boy factories for accounts models. The cross-tenant URL test finds factories of every app here and in
`<app>/tests/factories.py`: a new tenant-owned model needs a factory there."""

from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone

from accounts import services
from accounts.choices import AuditAction, Role, Scope
from accounts.models import ApiKey, AuditLog, AuditVerification, Invitation, Membership, Organization, User, hash_secret


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        if extracted:
            self.set_password(extracted)
        else:
            self.set_unusable_password()
        if create:
            self.save(update_fields=["password"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANALYST


class InvitationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.test")
    role = Role.VIEWER
    token_hash = factory.Sequence(lambda n: hash_secret(f"invitation-token-{n}"))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timezone.timedelta(days=7))


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Creates the key through the service; the secret is on `key._secret` for the test to use."""

    class Meta:
        model = ApiKey

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    scopes = factory.LazyFunction(lambda: list(Scope.values))

    @classmethod
    def _create(cls, model_class: type[ApiKey], **kwargs: Any) -> ApiKey:
        key, secret = services.api_key_create(
            organization=kwargs["organization"],
            name=kwargs["name"],
            scopes=kwargs["scopes"],
            expires_at=kwargs.get("expires_at"),
        )
        key._secret = secret
        return key


class AuditLogFactory(factory.django.DjangoModelFactory):
    """Appends through the service so the chain stays valid."""

    class Meta:
        model = AuditLog

    organization = factory.SubFactory(OrganizationFactory)
    action = AuditAction.ORG_UPDATED

    @classmethod
    def _create(cls, model_class: type[AuditLog], **kwargs: Any) -> AuditLog:
        return services.audit_log_write(
            organization=kwargs["organization"], action=kwargs["action"], data=kwargs.get("data") or {"factory": True}
        )


class AuditVerificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditVerification

    organization = factory.SubFactory(OrganizationFactory)
