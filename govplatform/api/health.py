"""GET /v1/health: unsigned, so a technician can check reachability and clock before enrolling."""
from __future__ import annotations

import time

from fastapi import APIRouter

from govplatform.errors import errors
from govplatform.schemas import Health
from govplatform.settings import PLATFORM_VERSION

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=Health, responses=errors(), operation_id="health")
def health() -> Health:
    """Liveness, version and the platform clock (signing allows 300 s of skew)."""
    return Health(status="ok", version=PLATFORM_VERSION, server_time=int(time.time()))
