"""Function URLs through boto3 and urllib: configs, auth (NONE with a policy, AWS_IAM with SigV4), CORS, events."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.integration.test_functions_api import error_of, wait_active
from tests.serverproc import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, make_zip

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

ECHO_EVENT = make_zip(
    {
        "handler.py": "import json\n"
        "def handler(event, context):\n"
        "    if event.get('rawPath') == '/plain':\n        return {'just': 'json'}\n"
        "    return {'statusCode': 201, 'headers': {'X-Echo': 'yes'}, 'cookies': ['a=1', 'b=2'],\n"
        "            'body': json.dumps(event)}\n"
    }
)


def fetch(
    server: ServerProcess, url: str, path: str = "/", **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    host = url.split("//", 1)[1].split("/", 1)[0]
    request = urllib.request.Request(
        server.endpoint + path, headers={"Host": host, **kwargs.pop("headers", {})}, **kwargs
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_url_config_lifecycle_and_errors(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, ECHO_EVENT))
    created = lam.create_function_url_config(FunctionName=fn_name, AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionUrl"].endswith(
        f".lambda-url.{REGION}.localhost:{created['FunctionUrl'].rsplit(':', 1)[1]}"
    )
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=fn_name, AuthType="NONE")
    assert error_of(exc)[:2] == ("ResourceConflictException", 409)
    got = lam.get_function_url_config(FunctionName=fn_name)
    assert got["InvokeMode"] == "BUFFERED" and got["FunctionUrl"] == created["FunctionUrl"]
    updated = lam.update_function_url_config(FunctionName=fn_name, AuthType="AWS_IAM")
    assert updated["AuthType"] == "AWS_IAM"
    assert [
        c["AuthType"] for c in lam.list_function_url_configs(FunctionName=fn_name)["FunctionUrlConfigs"]
    ] == ["AWS_IAM"]
    lam.delete_function_url_config(FunctionName=fn_name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=fn_name)
    assert error_of(exc) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName="doesnotexist", AuthType="NONE")
    assert error_of(exc) == ("ResourceNotFoundException", 404, "Function does not exist")
    lam.delete_function(FunctionName=fn_name)


def test_public_url_needs_policy_then_maps_events(server: ServerProcess, lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, ECHO_EVENT))
    wait_active(lam, fn_name)
    url = lam.create_function_url_config(
        FunctionName=fn_name,
        AuthType="NONE",
        Cors={
            "AllowOrigins": ["https://example.com"],
            "AllowMethods": ["POST"],
            "AllowHeaders": ["x-custom"],
            "MaxAge": 60,
        },
    )["FunctionUrl"]
    assert fetch(server, url)[:3:2] == (403, b'{"Message":"Forbidden"}')
    lam.add_permission(
        FunctionName=fn_name,
        StatementId="url",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    assert fetch(server, url)[0] == 403, "InvokeFunction must be granted too"
    lam.add_permission(
        FunctionName=fn_name, StatementId="invoke", Action="lambda:InvokeFunction", Principal="*"
    )

    status, headers, body = fetch(
        server,
        url,
        "/some/path?a=1&b=x%20y&a=2",
        method="POST",
        data=bytes(range(256)),
        headers={
            "Content-Type": "application/octet-stream",
            "Cookie": "c1=v1; c2=v2",
            "Origin": "https://example.com",
        },
    )
    assert status == 201, body
    assert headers["x-echo"] == "yes" and headers["access-control-allow-origin"] == "https://example.com"
    event = json.loads(body)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path" and event["rawQueryString"] == "a=1&b=x%20y&a=2"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["content-type"] == "application/octet-stream"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == bytes(range(256))

    status, _, body = fetch(server, url, "/plain")
    assert (status, json.loads(body)) == (200, {"just": "json"})

    status, headers, _ = fetch(
        server,
        url,
        method="OPTIONS",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert status == 200
    assert headers["access-control-allow-methods"] == "POST" and headers["access-control-max-age"] == "60"
    lam.delete_function(FunctionName=fn_name)


def test_iam_url_requires_sigv4(server: ServerProcess, lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, ECHO_EVENT))
    wait_active(lam, fn_name)
    url = lam.create_function_url_config(FunctionName=fn_name, AuthType="AWS_IAM")["FunctionUrl"]
    assert fetch(server, url, "/plain")[0] == 403
    host = url.split("//", 1)[1].rstrip("/")
    signed = AWSRequest(method="GET", url=f"{server.endpoint}/plain", headers={"Host": host})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "lambda", REGION).add_auth(signed)
    status, _, body = fetch(server, url, "/plain", headers=dict(signed.headers.items()))
    assert (status, json.loads(body)) == (200, {"just": "json"})
    lam.delete_function(FunctionName=fn_name)


def test_url_public_command_grants_in_one_step(server: ServerProcess, lam: Any, fn_name: str) -> None:
    import subprocess
    import sys

    lam.create_function(**create_kwargs(fn_name, ECHO_EVENT))
    wait_active(lam, fn_name)
    url = lam.create_function_url_config(FunctionName=fn_name, AuthType="NONE")["FunctionUrl"]
    assert fetch(server, url)[0] == 403
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    command = [sys.executable, "-m", "lambdad", "url-public", fn_name, "--endpoint-url", server.endpoint]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "granted: FunctionURLAllowPublicAccess, FunctionURLInvokeAllowPublicAccess" in first.stdout
    assert url in first.stdout
    assert fetch(server, url)[0] == 201, "the handler answers 201 once the URL is public"
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and "already public" in again.stdout
