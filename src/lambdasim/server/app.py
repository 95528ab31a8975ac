"""The Quart-Trio application: the Lambda API and lambdasim's own control paths."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from .. import __version__
from ..errors import LambdaError
from ..simulator import Simulator
from .lambda_api import create_lambda_blueprint, error_response

#: Seconds a request body may take to arrive; layer and image uploads are large.
BODY_TIMEOUT = 600


def create_app(simulator: Simulator) -> QuartTrio:
    """Return the application that serves `simulator` over HTTP."""
    app = QuartTrio("lambdasim")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT
    app.config["RESPONSE_TIMEOUT"] = None
    app.register_blueprint(create_lambda_blueprint(simulator))

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

    @app.get("/_lambdasim/code/<name>")
    async def function_code(name: str) -> Response:
        deployed = simulator.get_function(name)
        return Response(deployed.function.code, content_type="application/zip")

    return app
