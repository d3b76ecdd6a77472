"""The wire contract between terminals and the government service platform.

Both sides import this package: the OpenAPI document (`openapi.json`) and the request
signing scheme (`signing.py`) live here once, so the kiosk never depends on the server's
code and the server never on the kiosk's.
"""
