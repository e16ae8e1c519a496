"""The storefront at /shop: server-rendered pages for customers on the domain services."""
