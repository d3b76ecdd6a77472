"""GET /v1/catalogue: every service and "一件事" bundle as data (a new service needs no code)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from govplatform import catalogue as data
from govplatform.api.deps import TerminalDep
from govplatform.errors import errors
from govplatform.schemas import Catalogue

router = APIRouter(tags=["catalogue"])


@router.get("/v1/catalogue", response_model=Catalogue, responses=errors(401, 422), operation_id="getCatalogue")
def get_catalogue(terminal: TerminalDep) -> JSONResponse:
    """Items with their forms (and prefill sources), materials, commitments and departments."""
    catalogue = data.load_catalogue()
    Catalogue.model_validate(catalogue)  # the data keeps the published shape; served exactly as it is
    return JSONResponse(catalogue)
