"""Catalog: sellpages, products and their append-only pricing rules."""
