"""The API's routers, one module per area (govapi/README.md lists every endpoint)."""
