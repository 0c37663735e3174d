"""S3 credential errors name where the credentials came from: the orchestrator's connection, block or
resource when the client was given one (``S3ClientFactory``), boto3's chain otherwise; nothing is stored
when they fail, and the name survives a trip between processes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kitops_flows.api import KitOpsClient
from kitops_flows.aws import S3ClientFactory, credentials_named
from kitops_flows.errors import BOTO3_CREDENTIALS, S3CredentialsError, S3SourceError
from kitops_flows.s3.uris import s3_error
from kitops_flows.store import LocalStore

SOURCE = "Airflow connection 'aws_nightly'"


def _without_credentials(s3: Any, monkeypatch: pytest.MonkeyPatch) -> S3ClientFactory:
    """A factory like the plugins build, whose connection holds no keys (real boto3, real moto server)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup either

    def make(config: Any) -> Any:
        return boto3.session.Session().client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region,
                                              config=config)

    return S3ClientFactory(make, SOURCE)


def _ctx(root: Path, kitfile: str) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(kitfile)
    return root


def test_pack_from_s3_without_credentials_names_the_connection(s3: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    s3.client().create_bucket(Bucket="cred-bkt")
    s3.client().put_object(Bucket="cred-bkt", Key="train/a.csv", Body=b"1\n")
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), s3_session=_without_credentials(s3, monkeypatch))
    ctx = _ctx(tmp_path / "ctx", "manifestVersion: 1.0.0\npackage: {name: c}\ndatasets:\n  - {name: train, path: train}\n")
    with pytest.raises(S3CredentialsError) as err:
        kit.pack(ctx, reference="c/m:v1", sources={"train": "s3://cred-bkt/train/"})
    assert str(err.value).startswith("s3://cred-bkt/train/: no AWS credentials found while ")
    assert str(err.value).endswith(f"check {SOURCE}: it gave none")
    assert kit.list() == []  # nothing half-made
    with pytest.raises(S3CredentialsError, match="aws_nightly"):  # the fingerprinting path of pack_if_changed
        kit.pack_if_changed(ctx, reference="c/m:v1", sources={"train": "s3://cred-bkt/train/"})


def test_unpack_to_s3_without_credentials_names_the_connection(s3: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    s3.client().create_bucket(Bucket="cred-out")
    ctx = _ctx(tmp_path / "ctx", "manifestVersion: 1.0.0\npackage: {name: c}\nmodel: {name: m, path: m.bin}\n")
    (ctx / "m.bin").write_bytes(b"weights")
    home = LocalStore(tmp_path / "home")
    KitOpsClient(store=home).pack(ctx, reference="c/m:v1")
    kit = KitOpsClient(store=home, s3_session=_without_credentials(s3, monkeypatch))
    with pytest.raises(S3CredentialsError, match=f"s3://cred-out/serve/: no AWS credentials .*check {SOURCE}"):
        kit.unpack_to_s3("c/m:v1", None, "s3://cred-out/serve/")
    assert s3.client().list_objects_v2(Bucket="cred-out").get("KeyCount", 0) == 0


def test_access_denied_names_the_source_and_survives_pickling() -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")
    plain = s3_error(denied, "s3://b/p/", "listing the prefix")
    assert isinstance(plain, S3CredentialsError) and isinstance(plain, S3SourceError)
    assert str(plain) == (f"s3://b/p/: access denied while listing the prefix (AccessDenied); check "
                          f"{BOTO3_CREDENTIALS} and the bucket policy")
    with pytest.raises(S3CredentialsError) as err, credentials_named(boto3.session.Session()):
        raise s3_error(denied, "s3://b/p/", "listing the prefix")
    assert err.value.credentials == BOTO3_CREDENTIALS  # a plain boto3 session: boto3's chain it is
    factory = S3ClientFactory(lambda config: None, "Prefect AwsCredentials block 'prod-aws'")
    with pytest.raises(S3CredentialsError) as err, credentials_named(factory):
        raise s3_error(denied, "s3://b/p/", "listing the prefix")
    named = str(err.value)
    assert "check Prefect AwsCredentials block 'prod-aws' and the bucket policy" in named
    copy = pickle.loads(pickle.dumps(err.value))  # Dagster's multiprocess executor, Dask workers
    assert type(copy) is S3CredentialsError and str(copy) == named
