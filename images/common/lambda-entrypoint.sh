#!/bin/sh
# Entrypoint of the lambdasim stand-in images for the python and nodejs runtimes.
#
# Like the official AWS Lambda base images, it takes the handler as its only argument (the
# container command) and execs the runtime interface client at /var/runtime/bootstrap, which
# talks to the Runtime API at $AWS_LAMBDA_RUNTIME_API (host:port).
set -eu

program=lambda-entrypoint.sh

if [ "$#" -gt 1 ]; then
    echo "$program: expected at most one argument (the handler), got $#: $*" >&2
    exit 1
fi
if [ "$#" -eq 1 ]; then
    export _HANDLER="$1"
fi
if [ -z "${_HANDLER:-}" ]; then
    echo "$program: the handler is missing. Pass it as the container command" \
        "(for example lambda_function.handler) or set _HANDLER." >&2
    exit 1
fi

# The official images start the Runtime Interface Emulator when AWS_LAMBDA_RUNTIME_API is
# unset. The stand-ins do not contain the emulator.
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    echo "$program: AWS_LAMBDA_RUNTIME_API is not set. This lambdasim stand-in image has no" \
        "Runtime Interface Emulator: run it through lambdasim, or set AWS_LAMBDA_RUNTIME_API" \
        "to the host:port of a Runtime API server." >&2
    exit 1
fi

exec /var/runtime/bootstrap
