"""The reference government service platform: the HTTP API kiosks call (see govapi/README.md).

Run it with `python -m govplatform serve`; `create_app` in `govplatform.app` builds the
FastAPI application. Domain data (catalogue, residents, policies) are plain modules here.
"""
