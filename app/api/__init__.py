"""HTTP routers, one per resource, mounted under /v1 (health and readiness at the root)."""

from fastapi import APIRouter

from app.api import cost, datasets, finetunes, jobs, keys, latency_tables, links, searches, spaces, validations, zoos

api_router = APIRouter(prefix="/v1")
api_router.include_router(spaces.router)
api_router.include_router(cost.router)
api_router.include_router(datasets.router)
api_router.include_router(zoos.router)
api_router.include_router(searches.router)
api_router.include_router(latency_tables.router)
api_router.include_router(finetunes.router)
api_router.include_router(validations.router)
api_router.include_router(jobs.router)
api_router.include_router(keys.router)
api_router.include_router(links.router)
