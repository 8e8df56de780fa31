"""Layers through boto3: publish, list, get, delete, permissions, functions using them from /opt."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_kwargs
from tests.integration.test_functions_api import error_of, wait_active
from tests.integration.test_versions_aliases import wait_updated
from tests.serverproc import ACCOUNT, PY_ECHO, REGION, make_zip

needs_bwrap = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")


def layer_arn(name: str, version: int | None = None) -> str:
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}"
    return f"{base}:{version}" if version is not None else base


def publish(lam: Any, name: str, files: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return dict(lam.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip(files)}, **kwargs))


def unique() -> str:
    return f"layer-{uuid.uuid4().hex[:10]}"


def test_layer_version_lifecycle(lam: Any) -> None:
    name = unique()
    first = publish(
        lam,
        name,
        {"python/one.py": "X = 1\n"},
        CompatibleRuntimes=["python3.11"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
        Description="first",
    )
    assert first["LayerArn"] == layer_arn(name)
    assert first["LayerVersionArn"] == layer_arn(name, 1)
    assert first["Version"] == 1
    assert first["LicenseInfo"] == "MIT"
    assert first["CompatibleRuntimes"] == ["python3.11"]
    assert first["Content"]["CodeSize"] > 0 and len(first["Content"]["CodeSha256"]) == 44
    with urllib.request.urlopen(first["Content"]["Location"], timeout=10) as downloaded:
        assert downloaded.status == 200 and downloaded.read()[:2] == b"PK"
    second = publish(lam, name, {"python/one.py": "X = 2\n"}, CompatibleRuntimes=["nodejs20.x"])
    assert second["Version"] == 2 and "LicenseInfo" not in second

    got = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["LayerVersionArn"] == layer_arn(name, 1) and got["Description"] == "first"
    by_arn = lam.get_layer_version_by_arn(Arn=layer_arn(name, 2))
    assert by_arn["Version"] == 2 and by_arn["LayerArn"] == layer_arn(name)

    versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    assert "Content" not in versions[0] and "LayerArn" not in versions[0]
    python_only = lam.list_layer_versions(LayerName=name, CompatibleRuntime="python3.11")["LayerVersions"]
    assert [v["Version"] for v in python_only] == [1]
    paged = lam.list_layer_versions(LayerName=name, MaxItems=1)
    assert [v["Version"] for v in paged["LayerVersions"]] == [2]
    rest = lam.list_layer_versions(LayerName=name, Marker=paged["NextMarker"])["LayerVersions"]
    assert [v["Version"] for v in rest] == [1]

    listed = {item["LayerName"]: item for item in lam.list_layers()["Layers"]}
    assert listed[name]["LatestMatchingVersion"]["Version"] == 2
    matching = {item["LayerName"]: item for item in lam.list_layers(CompatibleRuntime="python3.11")["Layers"]}
    assert matching[name]["LatestMatchingVersion"]["Version"] == 1

    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    lam.delete_layer_version(LayerName=name, VersionNumber=2)  # idempotent
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version(LayerName=name, VersionNumber=2)
    assert error_of(exc) == ("ResourceNotFoundException", 404, "The resource you requested does not exist.")
    third = publish(lam, name, {"python/one.py": "X = 3\n"})
    assert third["Version"] == 3, "numbers are never reused"
    assert "CompatibleRuntimes" not in third


def test_layer_errors(lam: Any, lam_unchecked: Any) -> None:
    name = unique()
    publish(lam, name, {"a.txt": "a"})
    for number in (0, -1):
        with pytest.raises(ClientError) as exc:
            lam_unchecked.get_layer_version(LayerName=name, VersionNumber=number)
        assert error_of(exc) == ("InvalidParameterValueException", 400, "Layer Version Cannot be less than 1")
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version(LayerName=f"{name}-nope", VersionNumber=1)
    assert error_of(exc)[0] == "ResourceNotFoundException"
    assert lam.list_layer_versions(LayerName=f"{name}-nope")["LayerVersions"] == []
    lam.delete_layer_version(LayerName=f"{name}-nope", VersionNumber=1)
    with pytest.raises(ClientError) as exc:
        lam.publish_layer_version(LayerName=name, Content={"S3Bucket": "bucket", "S3Key": "key.zip"})
    assert error_of(exc)[0] == "InvalidParameterValueException" and "not supported" in error_of(exc)[2]
    with pytest.raises(ClientError) as exc:
        lam.publish_layer_version(LayerName=name, Content={"ZipFile": b"not a zip"})
    assert error_of(exc)[0] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        lam_unchecked.list_layers(CompatibleRuntime="runtimedoesnotexist")
    assert error_of(exc)[0] == "ValidationException"


def test_layer_permissions(lam: Any) -> None:
    name = unique()
    publish(lam, name, {"a.txt": "a"})
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert error_of(exc) == (
        "ResourceNotFoundException",
        404,
        "No policy is associated with the given resource.",
    )
    added = lam.add_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion", Principal="*"
    )
    assert json.loads(added["Statement"]) == {
        "Sid": "s1",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "lambda:GetLayerVersion",
        "Resource": layer_arn(name, 1),
    }
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="s1", Action="lambda:GetLayerVersion", Principal="*"
        )
    assert error_of(exc)[:2] == ("ResourceConflictException", 409)
    with pytest.raises(ClientError) as exc:
        lam.add_layer_version_permission(
            LayerName=name,
            VersionNumber=1,
            StatementId="s2",
            Action="lambda:GetLayerVersion",
            Principal="*",
            RevisionId=str(uuid.uuid4()),
        )
    assert error_of(exc)[:2] == ("PreconditionFailedException", 412)
    second = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="s2",
        Action="lambda:GetLayerVersion",
        Principal=ACCOUNT,
        RevisionId=added["RevisionId"],
    )
    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == second["RevisionId"]
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17" and doc["Id"] == "default"
    assert [s["Sid"] for s in doc["Statement"]] == ["s1", "s2"]
    assert doc["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="s2")
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="s2")
    assert error_of(exc)[2] == "Statement s2 is not found in resource policy."
    missing = f"Layer version {layer_arn(name, 2)} does not exist."
    with pytest.raises(ClientError) as exc:
        lam.get_layer_version_policy(LayerName=name, VersionNumber=2)
    assert error_of(exc) == ("ResourceNotFoundException", 404, missing)
    with pytest.raises(ClientError) as exc:
        lam.remove_layer_version_permission(LayerName=name, VersionNumber=2, StatementId="s1")
    assert error_of(exc) == ("ResourceNotFoundException", 404, missing)


def test_function_layer_errors(lam: Any, lam_unchecked: Any, fn_name: str) -> None:
    name = unique()
    publish(lam, name, {"a.txt": "1"})
    publish(lam, name, {"a.txt": "2"})
    with pytest.raises(ClientError) as exc:
        lam.create_function(
            **create_kwargs(fn_name, PY_ECHO, Layers=[layer_arn(name, 1), layer_arn(name, 2)])
        )
    assert error_of(exc) == (
        "InvalidParameterValueException",
        400,
        "Two different versions of the same layer are not allowed to be referenced in the same function. "
        f"{layer_arn(name, 1)} and {layer_arn(name, 2)} are versions of the same layer.",
    )
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs(fn_name, PY_ECHO, Layers=[layer_arn(name, 9)]))
    assert error_of(exc)[2] == f"Layer version {layer_arn(name, 9)} does not exist."
    six = [layer_arn(f"{name}-{i}", 1) for i in range(6)]
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs(fn_name, PY_ECHO, Layers=six))
    assert error_of(exc) == ("InvalidParameterValueException", 400, "Cannot reference more than 5 layers.")
    other_region = f"arn:aws:lambda:eu-west-3:{ACCOUNT}:layer:{name}:1"
    with pytest.raises(ClientError) as exc:
        lam.create_function(**create_kwargs(fn_name, PY_ECHO, Layers=[other_region]))
    assert "Layers are not in the same region as the function" in error_of(exc)[2]
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=fn_name)
    assert error_of(exc)[0] == "ResourceNotFoundException", "nothing half-applied"


def test_combined_size_limit(lam: Any, fn_name: str) -> None:
    name = unique()
    big = os.urandom(1)  # unzipped sizes are counted, so a highly compressible file is enough
    files = {f"blob{i}.bin": big * 60_000_000 for i in range(3)}
    publish(lam, name, files)
    with pytest.raises(ClientError) as exc:
        lam.create_function(
            **create_kwargs(fn_name, make_zip({"h.py": "x" * 90_000_000}), Layers=[layer_arn(name, 1)])
        )
    code, status, message = error_of(exc)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message.startswith(
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. "
        "The actual size is "
    )
    assert message.endswith(" bytes.") and int(message.split()[-2]) == 270_000_000


@needs_bwrap
def test_python_function_imports_from_layers_later_wins(lam: Any, fn_name: str) -> None:
    base, override = unique(), unique()
    one = publish(
        lam, base, {"python/shared.py": "WHO = 'base'\n", "python/onlybase.py": "V = 1\n", "bin/tool": "1"}
    )
    two = publish(lam, override, {"python/shared.py": "WHO = 'override'\n"})
    source = (
        "import os, shared, onlybase\n"
        "def handler(event, context):\n"
        "    return {'who': shared.WHO, 'base': onlybase.V, 'tool': os.path.exists('/opt/bin/tool'),\n"
        "            'writable': os.access('/opt/python', os.W_OK)}\n"
    )
    created = lam.create_function(
        **create_kwargs(
            fn_name, make_zip({"handler.py": source}), Layers=[one["LayerVersionArn"], two["LayerVersionArn"]]
        )
    )
    assert [layer["Arn"] for layer in created["Layers"]] == [one["LayerVersionArn"], two["LayerVersionArn"]]
    assert created["Layers"][0]["CodeSize"] == one["Content"]["CodeSize"]
    wait_active(lam, fn_name)
    got = lam.get_function(FunctionName=fn_name)["Configuration"]["Layers"]
    assert [layer["Arn"] for layer in got] == [one["LayerVersionArn"], two["LayerVersionArn"]]
    result = json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read())
    assert result == {"who": "override", "base": 1, "tool": True, "writable": False}

    lam.update_function_configuration(
        FunctionName=fn_name, Layers=[two["LayerVersionArn"], one["LayerVersionArn"]]
    )
    wait_updated(lam, fn_name)
    result = json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read())
    assert result.get("who") == "base", result

    lam.delete_layer_version(LayerName=base, VersionNumber=1)
    # a deleted layer version keeps working for the functions that reference it (a cold start here)
    lam.update_function_configuration(FunctionName=fn_name, Environment={"Variables": {"COLD": "1"}})
    wait_updated(lam, fn_name)
    result = json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read())
    assert result.get("who") == "base", result
    assert "Layers" not in lam.update_function_configuration(FunctionName=fn_name, Layers=[])


@needs_bwrap
def test_node_function_requires_from_layer(lam: Any, fn_name: str) -> None:
    name = unique()
    layer = publish(
        lam, name, {"nodejs/node_modules/greeter/index.js": "exports.greet = (n) => `hi ${n}`;\n"}
    )
    source = "const { greet } = require('greeter');\nexports.handler = async () => ({ msg: greet('opt') });\n"
    lam.create_function(
        **create_kwargs(
            fn_name,
            make_zip({"index.js": source}),
            Runtime="nodejs20.x",
            Handler="index.handler",
            Layers=[layer["LayerVersionArn"]],
        )
    )
    wait_active(lam, fn_name)
    assert json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read()) == {"msg": "hi opt"}


def test_list_functions_all_versions(lam: Any, fn_name: str) -> None:
    lam.create_function(**create_kwargs(fn_name, PY_ECHO))
    wait_active(lam, fn_name)
    lam.publish_version(FunctionName=fn_name)
    plain = [f for f in lam.list_functions()["Functions"] if f["FunctionName"] == fn_name]
    assert [f["Version"] for f in plain] == ["$LATEST"]
    everything: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    while True:
        page = lam.list_functions(FunctionVersion="ALL", MaxItems=2, **marker)
        everything += page["Functions"]
        if "NextMarker" not in page:
            break
        marker = {"Marker": page["NextMarker"]}
    mine = [f for f in everything if f["FunctionName"] == fn_name]
    assert [f["Version"] for f in mine] == ["$LATEST", "1"]
    assert mine[1]["FunctionArn"].endswith(f":{fn_name}:1")
    assert len({f["FunctionArn"] for f in everything}) == len(everything)
