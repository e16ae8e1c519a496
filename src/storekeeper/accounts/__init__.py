"""User accounts, roles, authentication and addresses."""
