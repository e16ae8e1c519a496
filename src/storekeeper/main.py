"""The ASGI application object for servers: `uvicorn storekeeper.main:app`."""

from storekeeper.app import create_app

app = create_app()
