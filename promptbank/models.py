"""Prompt bank models arrive with their issue; tenant-owned models inherit evalence.tenancy.TenantModel."""
