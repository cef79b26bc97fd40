"""Minimal stand-in for geni-lib, enough to run profile.py outside CloudLab.

It mirrors the names profile.py uses (geni.portal, geni.rspec.pg) and prints
an RSpec-like XML document; it validates nothing CloudLab would.
"""
