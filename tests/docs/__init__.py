"""Tests of the documentation: every README and docs/ code block runs; the wheel installs."""
