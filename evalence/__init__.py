"""Evalence project package: settings and cross-cutting plumbing."""
