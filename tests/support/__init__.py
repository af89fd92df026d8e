"""Helpers shared by the tests of several packages (servers, the tiny study, Chromium)."""
