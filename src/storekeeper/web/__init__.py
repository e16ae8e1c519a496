"""Server-rendered pages for staff at /admin."""
