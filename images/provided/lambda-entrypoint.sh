#!/bin/sh
# Entrypoint of the lambdasim stand-in images for the provided (custom runtime) runtimes.
#
# The function's own bootstrap is the runtime: $LAMBDA_TASK_ROOT/bootstrap, or else
# /opt/bootstrap from a layer. It talks to the Runtime API at $AWS_LAMBDA_RUNTIME_API.
# The handler, the optional container command, reaches it as $_HANDLER.
set -eu

program=lambda-entrypoint.sh

if [ "$#" -gt 1 ]; then
    echo "$program: expected at most one argument (the handler), got $#: $*" >&2
    exit 1
fi
if [ "$#" -eq 1 ]; then
    export _HANDLER="$1"
fi

# The official images start the Runtime Interface Emulator when AWS_LAMBDA_RUNTIME_API is
# unset. The stand-ins do not contain the emulator.
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    echo "$program: AWS_LAMBDA_RUNTIME_API is not set. This lambdasim stand-in image has no" \
        "Runtime Interface Emulator: run it through lambdasim, or set AWS_LAMBDA_RUNTIME_API" \
        "to the host:port of a Runtime API server." >&2
    exit 1
fi

task_root=${LAMBDA_TASK_ROOT:-/var/task}
cd "$task_root"
for bootstrap in "$task_root/bootstrap" /opt/bootstrap; do
    # A bootstrap without the execute bit fails here with "Permission denied" and exit
    # status 126, before any request to the Runtime API.
    if [ -e "$bootstrap" ]; then
        exec "$bootstrap"
    fi
done

echo "$program: no bootstrap found: the function must contain $task_root/bootstrap" \
    "or a layer must contain /opt/bootstrap." >&2
exit 127
