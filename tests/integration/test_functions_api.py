"""Function management through boto3 against the real server: every operation and its errors."""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.serverproc import ACCOUNT, PY_ECHO, REGION, ROLE, make_zip


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def wait_active(lam: Any, name: str) -> dict[str, Any]:
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return lam.get_function_configuration(FunctionName=name)


def test_create_get_update_delete_lifecycle(lam: Any, fn_name: str) -> None:
    created = lam.create_function(**create_kwargs(fn_name, PY_ECHO, MemorySize=256, Timeout=5))
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["State"] == "Pending" and created["StateReasonCode"] == "Creating"
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn_name}"
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(PY_ECHO).digest()).decode()
    assert created["CodeSize"] == len(PY_ECHO)
    assert created["Version"] == "$LATEST"
    assert created["PackageType"] == "Zip" and created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fn_name}"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", created["LastModified"])

    active = wait_active(lam, fn_name)
    assert active["State"] == "Active" and active["LastUpdateStatus"] == "Successful"
    assert active["RevisionId"] != created["RevisionId"]

    got = lam.get_function(FunctionName=fn_name)
    assert got["Configuration"]["FunctionName"] == fn_name
    assert got["Code"]["RepositoryType"] == "S3"
    with urllib.request.urlopen(got["Code"]["Location"]) as download:
        assert download.read() == PY_ECHO

    updated = lam.update_function_configuration(
        FunctionName=fn_name,
        Description="Changed-Description",
        MemorySize=512,
        Timeout=10,
        Environment={"Variables": {"ENV_A": "a"}},
    )
    assert updated["LastUpdateStatus"] == "InProgress"
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 0.1})
    conf = lam.get_function_configuration(FunctionName=fn_name)
    assert (conf["Description"], conf["MemorySize"], conf["Timeout"]) == ("Changed-Description", 512, 10)
    assert conf["Environment"] == {"Variables": {"ENV_A": "a"}}

    new_zip = make_zip({"handler.py": "def handler(e, c):\n    return 2\n"})
    code = lam.update_function_code(FunctionName=fn_name, ZipFile=new_zip)
    assert code["CodeSha256"] == base64.b64encode(hashlib.sha256(new_zip).digest()).decode()
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 0.1})
    got = lam.get_function(FunctionName=fn_name)
    with urllib.request.urlopen(got["Code"]["Location"]) as download:
        assert download.read() == new_zip

    assert lam.delete_function(FunctionName=fn_name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name)
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn_name}",
    )


def test_get_by_arn_and_partial_arn(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn_name}"
    assert lam.get_function_configuration(FunctionName=arn)["FunctionName"] == fn_name
    assert lam.get_function_configuration(FunctionName=f"{ACCOUNT}:function:{fn_name}")["FunctionArn"] == arn
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"arn:aws:lambda:ap-southeast-1:{ACCOUNT}:function:{fn_name}")
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')",
    )
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=f"{arn}:$LATEST", Qualifier="1")
    assert error_of(exc)[0] == "InvalidParameterValueException"
    lam.delete_function(FunctionName=arn)


def test_duplicate_create_conflicts(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    assert error_of(exc) == ("ResourceConflictException", 409, f"Function already exist: {fn_name}")
    lam.delete_function(FunctionName=fn_name)


@pytest.mark.parametrize(
    ("overrides", "code", "status", "message"),
    [
        ({"Role": "r1"}, "ValidationException", 400, "Value 'r1' at 'role' failed to satisfy constraint"),
        (
            {"Runtime": "non-existent-runtime"},
            "InvalidParameterValueException",
            400,
            "Value non-existent-runtime at 'runtime'",
        ),
        (
            {"Runtime": "PYTHON3.9"},
            "InvalidParameterValueException",
            400,
            "Member must satisfy enum value set: [nodejs20.x",
        ),
        (
            {"Runtime": "python3.7"},
            "InvalidParameterValueException",
            400,
            "The runtime parameter of python3.7 is no longer supported",
        ),
        (
            {"Runtime": "java21"},
            "InvalidParameterValueException",
            400,
            "The runtime java21 is not installed on this lambdad host",
        ),
        (
            {"MemorySize": 100},
            "ValidationException",
            400,
            "Value '100' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
        ),
        ({"MemorySize": 10241}, "InvalidParameterValueException", 400, "less than or equal to 10240"),
        ({"Timeout": 0}, "ValidationException", 400, "at 'timeout' failed to satisfy constraint"),
        ({"Timeout": 901}, "InvalidParameterValueException", 400, "less than or equal to 900"),
        (
            {"EphemeralStorage": {"Size": 10241}},
            "InvalidParameterValueException",
            400,
            "less than or equal to 10240",
        ),
        (
            {"Description": "x" * 257},
            "ValidationException",
            400,
            "at 'description' failed to satisfy constraint: Member must have length less than or equal to 256",
        ),
        ({"Handler": "nohandler"}, "InvalidParameterValueException", 400, "Handler 'nohandler' is not valid"),
        (
            {"Environment": {"Variables": {"AWS_REGION": "x"}}},
            "InvalidParameterValueException",
            400,
            "Reserved keys used in this request: AWS_REGION",
        ),
        (
            {"Environment": {"Variables": {"LARGE_VAR": "x" * 4097}}},
            "InvalidParameterValueException",
            400,
            'exceeded the 4KB limit. String measured: {"LARGE_VAR"',
        ),
        (
            {"Architectures": ["x86_64", "arm64"]},
            "ValidationException",
            400,
            "at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1",
        ),
        (
            {"Code": {"ZipFile": b"garbage"}},
            "InvalidParameterValueException",
            400,
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
        ),
        (
            {"Code": {"S3Bucket": "bucket", "S3Key": "k"}},
            "InvalidParameterValueException",
            400,
            "Code.S3Bucket/S3Key is not supported by lambdad yet",
        ),
    ],
)
def test_create_validation_errors(
    lam_unchecked: Any, fn_name: str, overrides: dict[str, Any], code: str, status: int, message: str
) -> None:
    lam = lam_unchecked
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs(fn_name, PY_ECHO, **overrides))
    got_code, got_status, got_message = error_of(exc)
    assert (got_code, got_status) == (code, status), got_message
    assert message in got_message
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=fn_name)


def test_function_name_rules(lam_unchecked: Any) -> None:
    lam = lam_unchecked
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs("a" * 65, PY_ECHO))
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    assert "Member must have length less than or equal to 64" in error_of(exc)[2]
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs("invalid:function:name", PY_ECHO))
    assert error_of(exc)[:2] == ("ValidationException", 400)


def test_env_vars_near_limit_succeed(lam: Any, fn_name: str) -> None:
    variables = {"LARGE_VAR": "x" * (4096 - len('{"LARGE_VAR":""}'))}
    created = lam.create_function(**create_kwargs(fn_name, PY_ECHO, Environment={"Variables": variables}))
    assert created["Environment"]["Variables"] == variables
    lam.delete_function(FunctionName=fn_name)


def test_not_found_operations(lam: Any) -> None:
    missing = "fn-does-not-exist"
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{missing}"
    for call in (
        lambda: lam.get_function(FunctionName=missing),
        lambda: lam.get_function_configuration(FunctionName=missing),
        lambda: lam.delete_function(FunctionName=missing),
        lambda: lam.update_function_code(FunctionName=missing, ZipFile=PY_ECHO),
        lambda: lam.update_function_configuration(FunctionName=missing, Timeout=5),
        lambda: lam.list_tags(Resource=arn),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("ResourceNotFoundException", 404, f"Function not found: {arn}")
        assert (
            exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"]
            == "ResourceNotFoundException"
        )


def test_list_functions_paginates(lam: Any) -> None:
    names = sorted(f"page-{i:03d}" for i in range(23))
    for name in names:
        lam.create_function(**create_kwargs(name, PY_ECHO))
    seen: list[str] = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 5}):
        assert len(page["Functions"]) <= 5
        seen += [f["FunctionName"] for f in page["Functions"] if f["FunctionName"].startswith("page-")]
    assert seen == names
    first = lam.list_functions(MaxItems=7)
    assert len(first["Functions"]) == 7 and "NextMarker" in first
    with pytest.raises(ClientError) as exc:
        lam.list_functions(FunctionVersion="invalid")
    assert error_of(exc)[0] == "ValidationException"
    for name in names:
        lam.delete_function(FunctionName=name)


def test_tags(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO, Tags={"A": "tag-a"}))
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn_name}"
    assert lam.list_tags(Resource=arn)["Tags"] == {"A": "tag-a"}
    lam.tag_resource(Resource=arn, Tags={"B": "tag-b", "C": "tag-c"})
    lam.tag_resource(Resource=arn, Tags={"C": "tag-c-newsuffix", "D": "tag-d"})
    assert lam.list_tags(Resource=arn)["Tags"] == {
        "A": "tag-a",
        "B": "tag-b",
        "C": "tag-c-newsuffix",
        "D": "tag-d",
    }
    lam.untag_resource(Resource=arn, TagKeys=["A", "B", "nonexisting"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"C": "tag-c-newsuffix", "D": "tag-d"}
    assert lam.get_function(FunctionName=fn_name)["Tags"] == {"C": "tag-c-newsuffix", "D": "tag-d"}
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource=arn, Tags={f"{i}_key": "v" for i in range(49)})
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        "Number of tags exceeds resource tag limit.",
    )
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource=f"{arn}:1", Tags={"X": "y"})
    assert "Tags on function aliases and versions are not supported" in error_of(exc)[2]
    with pytest.raises(ClientError) as exc:
        lam.tag_resource(Resource="arn:aws:something", Tags={"X": "y"})
    assert error_of(exc)[0] == "ValidationException"
    lam.delete_function(FunctionName=fn_name)


def test_account_settings_and_concurrency(lam: Any, fn_name: str) -> None:
    before = lam.get_account_settings()
    assert before["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert before["AccountLimit"]["CodeSizeZipped"] == 52428800
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    after = lam.get_account_settings()
    assert after["AccountUsage"]["FunctionCount"] == before["AccountUsage"]["FunctionCount"] + 1
    assert after["AccountUsage"]["TotalCodeSize"] == before["AccountUsage"]["TotalCodeSize"] + len(PY_ECHO)
    assert (
        lam.put_function_concurrency(FunctionName=fn_name, ReservedConcurrentExecutions=5)[
            "ReservedConcurrentExecutions"
        ]
        == 5
    )
    assert lam.get_function_concurrency(FunctionName=fn_name)["ReservedConcurrentExecutions"] == 5
    unreserved = before["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == unreserved - 5
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=fn_name, ReservedConcurrentExecutions=950)
    assert "below its minimum value of [100]" in error_of(exc)[2]
    lam.delete_function_concurrency(FunctionName=fn_name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=fn_name)
    lam.delete_function(FunctionName=fn_name)


def test_revision_id_precondition(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    wait_active(lam, fn_name)
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=fn_name, Timeout=9, RevisionId="wrong")
    assert error_of(exc)[:2] == ("PreconditionFailedException", 412)
    revision = lam.get_function_configuration(FunctionName=fn_name)["RevisionId"]
    lam.update_function_configuration(FunctionName=fn_name, Timeout=9, RevisionId=revision)
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 0.1})
    lam.delete_function(FunctionName=fn_name)


def test_code_location_url_is_signed(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    location = lam.get_function(FunctionName=fn_name)["Code"]["Location"]
    tampered = re.sub(r"signature=[0-9a-f]{4}", "signature=0000", location)
    assert tampered != location
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(tampered)
    exc.value.close()
    assert exc.value.code == 403
    lam.delete_function(FunctionName=fn_name)


def test_aws_cli_round_trip(server: Any, tmp_path: Any, fn_name: str) -> None:
    package = tmp_path / "function.zip"
    package.write_bytes(PY_ECHO)
    out = server.aws_cli(
        "lambda",
        "create-function",
        "--function-name",
        fn_name,
        "--runtime",
        "python3.11",
        "--role",
        ROLE,
        "--handler",
        "handler.handler",
        "--zip-file",
        f"fileb://{package}",
    )
    assert f'"FunctionName": "{fn_name}"' in out.stdout
    listed = server.aws_cli(
        "lambda", "list-functions", "--query", "Functions[].FunctionName", "--output", "text"
    )
    assert fn_name in listed.stdout.split()
    missing = server.aws_cli("lambda", "get-function", "--function-name", "nope-missing", check=False)
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
    server.aws_cli("lambda", "delete-function", "--function-name", fn_name)
