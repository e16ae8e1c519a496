"""Storekeeper: inventory, reservation and order service for online shops."""

__version__ = "0.1.0"
