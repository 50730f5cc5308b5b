"""Tests of packaging/third_party_licenses.py: what a bundle ships, and under which texts."""
