"""Init errors of a Node.js function, as the Node runtime client reports them."""

from __future__ import annotations

import json

import pytest
from conftest import EXECUTION_ROLE, make_zip, unique_name

pytestmark = pytest.mark.docker


def test_missing_module_is_import_error(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("node-missing")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=EXECUTION_ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"other.mjs": "export const x = 1;\n"})},
    )

    for _ in range(2):  # the same error again: no stuck container
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        body = json.loads(response["Payload"].read())

        assert response["StatusCode"] == 200
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ImportModuleError"
        assert body["errorMessage"].startswith("Error: Cannot find module 'app'")
