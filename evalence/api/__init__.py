"""API plumbing shared by every app: the tenant base viewset, permissions, parsing, paging and throttling."""
