from evalence.consumers import TenantConsumer


class OrganizationEventsConsumer(TenantConsumer):
    """Live events of the active organization (job status, audit verifications) for any signed-in member."""
