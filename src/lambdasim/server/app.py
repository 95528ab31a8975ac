"""The Quart-Trio application: the Lambda API and lambdasim's own control paths."""

from __future__ import annotations

import datetime

from quart import Response
from quart_trio import QuartTrio

from .. import __version__
from ..errors import LambdaError, ResourceNotFoundException
from ..pool import EnvironmentInfo
from ..simulator import Simulator
from .lambda_api import create_lambda_blueprint, error_response
from .layer_api import create_layer_content_blueprint
from .registry_api import create_registry_blueprint

#: Seconds a request body may take to arrive; layer and image uploads are large.
BODY_TIMEOUT = 600


def _timestamp(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def environment_shape(info: EnvironmentInfo) -> dict[str, object]:
    """Return one execution environment as the introspection API shows it."""
    return {
        "Id": info.id,
        "FunctionName": info.function,
        "Version": info.version,
        "State": info.state,
        "ContainerId": info.container_id,
        "StartedAt": _timestamp(info.started_at),
        "LastUsed": _timestamp(info.last_used),
        "CredentialExpiry": _timestamp(info.credential_expiry),
        "Invocations": info.invocations,
    }


def create_app(simulator: Simulator) -> QuartTrio:
    """Return the application that serves `simulator` over HTTP."""
    app = QuartTrio("lambdasim")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT
    app.config["RESPONSE_TIMEOUT"] = None
    app.register_blueprint(create_lambda_blueprint(simulator))
    app.register_blueprint(create_registry_blueprint(simulator))
    app.register_blueprint(create_layer_content_blueprint(simulator))

    @app.errorhandler(LambdaError)
    async def lambda_error(error: LambdaError) -> Response:
        return error_response(error)

    @app.get("/_lambdasim/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "docker": await simulator.backend.ping(),
        }

    @app.get("/_lambdasim/environments")
    async def environments() -> dict[str, object]:
        statistics = simulator.pool.statistics()
        return {
            "Environments": [environment_shape(info) for info in statistics.environments],
            "Starting": statistics.starting,
            "Idle": statistics.idle,
            "Busy": statistics.busy,
            "Draining": statistics.draining,
            "Stopping": statistics.stopping,
            "Waiting": statistics.waiting,
        }

    @app.post("/_lambdasim/functions/<name>/stop-environments")
    async def stop_environments(name: str) -> dict[str, object]:
        deployed = simulator.get_function(name)
        return {"Stopped": simulator.pool.stop_function(deployed.name)}

    @app.post("/_lambdasim/environments/<environment_id>/expire-credentials")
    async def expire_credentials(environment_id: str) -> Response | dict[str, object]:
        if not simulator.pool.expire_credentials(environment_id):
            return error_response(
                ResourceNotFoundException(f"Execution environment not found: {environment_id}")
            )
        return {"Expired": environment_id}

    @app.get("/_lambdasim/code/<name>")
    async def function_code(name: str) -> Response:
        deployed = simulator.get_function(name)
        return Response(deployed.function.code, content_type="application/zip")

    return app
