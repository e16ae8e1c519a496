"""Carts, checkout and orders."""
