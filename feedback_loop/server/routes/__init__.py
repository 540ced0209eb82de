"""The API's routers, one module per area."""

from feedback_loop.server.routes import health, ingest, keys, models, monitoring, registry

ROUTERS = (
    health.router,
    models.router,
    ingest.router,
    monitoring.router,
    registry.router,
    keys.router,
)
