"""HTTP routers, one per resource, mounted under /v1 (health and readiness at the root)."""

from fastapi import APIRouter

from app.api import cost, datasets, finetunes, jobs, searches, spaces, zoos

api_router = APIRouter(prefix="/v1")
api_router.include_router(spaces.router)
api_router.include_router(cost.router)
api_router.include_router(datasets.router)
api_router.include_router(zoos.router)
api_router.include_router(searches.router)
api_router.include_router(finetunes.router)
api_router.include_router(jobs.router)
