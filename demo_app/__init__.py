"""Etcher-like demo app."""
