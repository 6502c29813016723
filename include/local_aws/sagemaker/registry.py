"""The Model Registry: model package groups, and model packages in them (versioned) or on
their own (unversioned), with approval status and customer metadata."""

from __future__ import annotations

from typing import Any

from local_aws.sagemaker.api import list_page, now, operation, pick, shape_response
from local_aws.sagemaker.backend import Backend
from local_aws.sagemaker.errors import ConflictException, ValidationException

GROUPS = "model-package-groups"  # keyed by lower-cased group name (ARNs lower-case it)
PACKAGES = "model-packages"  # keyed by ARN

DEFAULT_APPROVAL = "PendingManualApproval"
MAX_ADDITIONAL_SPECS = 15

# Request fields that are not part of the package itself: they choose where it goes
# (group or name), tag it, or make the call idempotent.
_NOT_ECHOED = ("ModelPackageGroupName", "ModelPackageName", "Tags", "ClientToken")
# UpdateModelPackage fields that replace the stored value as given.
_REPLACED_ON_UPDATE = (
    "ModelApprovalStatus",
    "ApprovalDescription",
    "InferenceSpecification",
    "SourceUri",
    "ModelCard",
    "ModelLifeCycle",
    "ModelPackageRegistrationType",
)


def caller_identity(backend: Backend) -> dict[str, Any]:
    """CreatedBy/LastModifiedBy: the identity moto's STS reports for local credentials."""
    return {
        "IamIdentity": {
            "Arn": f"arn:aws:sts::{backend.account_id}:user/moto",
            "PrincipalId": "AKIAIOSFODNN7EXAMPLE",
        }
    }


# -- name and ARN resolution -----------------------------------------------------------------
def _group_key(backend: Backend, name_or_arn: str) -> str | None:
    """The store key of a group given by name or ARN; None for an ARN of another account."""
    if not name_or_arn.startswith("arn:"):
        return name_or_arn.lower()
    prefix = backend.arn("model-package-group", "")
    value = name_or_arn.lower()
    return value[len(prefix) :] if value.startswith(prefix) else None


def _group_arn(backend: Backend, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return backend.arn("model-package-group", name_or_arn)


def get_group(backend: Backend, name_or_arn: str) -> dict[str, Any]:
    key = _group_key(backend, name_or_arn)
    record = backend.store.get(GROUPS, key) if key is not None else None
    if record is None:
        raise ValidationException(
            f"ModelPackageGroup {_group_arn(backend, name_or_arn)} does not exist."
        )
    return record


def _package_key(backend: Backend, name_or_arn: str) -> str:
    """A package's ARN from its ARN, its name (unversioned) or 'group/version'."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.lower()
    return backend.arn("model-package", name_or_arn)


def get_model_package(backend: Backend, name_or_arn: str) -> dict[str, Any]:
    """The stored package (e.g. to resolve a CreateModel container's ModelPackageName)."""
    key = _package_key(backend, name_or_arn)
    record = backend.store.get(PACKAGES, key)
    if record is None:
        raise ValidationException(f"ModelPackage {key} does not exist.")
    return record


# -- model package groups --------------------------------------------------------------------
@operation("CreateModelPackageGroup")
def create_model_package_group(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    name = p["ModelPackageGroupName"]
    arn = backend.arn("model-package-group", name)
    record = {
        "ModelPackageGroupName": name,
        "ModelPackageGroupArn": arn,
        "ModelPackageGroupDescription": p.get("ModelPackageGroupDescription"),
        "CreationTime": now(),
        "CreatedBy": caller_identity(backend),
        "ModelPackageGroupStatus": "Completed",
        "ManagedConfiguration": p.get("ManagedConfiguration"),
        # Versions are never reused, even after a delete: the counter lives on the group.
        "_LastVersion": 0,
        "_LastCreationTime": 0.0,
    }
    with backend.store.lock:
        # The Amazon provider's hook tells "exists" from other errors by this prefix.
        if backend.store.exists(GROUPS, name.lower()):
            raise ValidationException(f"Model Package Group already exists: {arn}")
        backend.store.create(GROUPS, name.lower(), record)
    backend.tags.add(arn, p.get("Tags", []))
    return {"ModelPackageGroupArn": arn}


@operation("DescribeModelPackageGroup")
def describe_model_package_group(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response(
        "DescribeModelPackageGroup", get_group(backend, p["ModelPackageGroupName"])
    )


@operation("ListModelPackageGroups")
def list_model_package_groups(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    # Nothing is shared with this account from others.
    records = (
        [] if p.get("CrossAccountFilterOption") == "CrossAccount" else backend.store.values(GROUPS)
    )
    return list_page(
        records,
        dict(p, SortOrder=p.get("SortOrder", "Ascending")),  # the API's default, unlike jobs'
        name_key="ModelPackageGroupName",
        summary=_group_summary,
        result_key="ModelPackageGroupSummaryList",
    )


def _group_summary(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "ModelPackageGroupName",
        "ModelPackageGroupArn",
        "ModelPackageGroupDescription",
        "CreationTime",
        "ModelPackageGroupStatus",
        "ManagedConfiguration",
    )
    return pick(r, keys)


@operation("DeleteModelPackageGroup")
def delete_model_package_group(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    with backend.store.lock:
        group = get_group(backend, p["ModelPackageGroupName"])
        key = group["__key"]
        versions = sorted(
            r["ModelPackageVersion"]
            for r in backend.store.values(PACKAGES)
            if r.get("_GroupKey") == key
        )
        if versions:
            raise ConflictException(
                f"Model Package Group {group['ModelPackageGroupArn']} still has "
                f"{len(versions)} model package version(s) ({', '.join(map(str, versions))}): "
                "delete them with DeleteModelPackage before deleting the group"
            )
        backend.store.delete(GROUPS, key)
    backend.tags.drop(group["ModelPackageGroupArn"])
    return {}


# -- model packages --------------------------------------------------------------------------
@operation("CreateModelPackage")
def create_model_package(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    group_name, name = p.get("ModelPackageGroupName"), p.get("ModelPackageName")
    if group_name and name:
        raise ValidationException(
            "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
            "Cannot determine which one to use. Give ModelPackageGroupName for a versioned "
            "package in a model group, or ModelPackageName for an unversioned package."
        )
    if not group_name and not name:
        raise ValidationException(
            "Missing ARN. Give ModelPackageGroupName for a versioned package in a model "
            "group, or ModelPackageName for an unversioned package."
        )
    if group_name and p.get("Tags"):
        raise ValidationException(
            "Tags are not supported in Model Package versions. Please add them to the "
            "Model Package Group"
        )
    _check_additional_specs(p.get("AdditionalInferenceSpecifications") or [])
    record = {k: v for k, v in p.items() if k not in _NOT_ECHOED}
    record.update(
        ModelPackageStatus="Completed",
        ModelPackageStatusDetails={"ValidationStatuses": [], "ImageScanStatuses": []},
        CertifyForMarketplace=p.get("CertifyForMarketplace", False),
        CreatedBy=caller_identity(backend),
        LastModifiedBy=caller_identity(backend),
        _ClientToken=p.get("ClientToken"),
    )
    with backend.store.lock:
        existing = _by_client_token(backend, p.get("ClientToken"))
        if existing is not None:
            # A retried call (boto3 fills ClientToken in): the same package, not a new version.
            return {"ModelPackageArn": existing["ModelPackageArn"]}
        if group_name:
            arn = _new_version(backend, group_name, record)
        else:
            assert name is not None
            arn = backend.arn("model-package", name)
            if backend.store.exists(PACKAGES, arn):
                raise ValidationException(f"Model Package already exists: {arn}")
            stamp = now()
            record.update(
                ModelPackageName=name,
                ModelPackageArn=arn,
                CreationTime=stamp,
                LastModifiedTime=stamp,
                _Type="Unversioned",
            )
            backend.store.create(PACKAGES, arn, record)
    if name:
        backend.tags.add(arn, p.get("Tags", []))
    return {"ModelPackageArn": arn}


def _new_version(backend: Backend, group_name: str, record: dict[str, Any]) -> str:
    """Store ``record`` as the group's next version; the caller holds the store lock."""
    group = get_group(backend, group_name)
    key = group["__key"]
    version = group.get("_LastVersion", 0) + 1
    # Strictly increasing, so "latest first" by CreationTime is also by version.
    stamp = max(now(), group.get("_LastCreationTime", 0.0) + 1e-6)
    arn = backend.arn("model-package", f"{key}/{version}")
    # Count the version first: a crash in between leaves a gap, never a reused number.
    backend.store.update(GROUPS, key, {"_LastVersion": version, "_LastCreationTime": stamp})
    record.update(
        # For a versioned package the name is the group's.
        ModelPackageName=group["ModelPackageGroupName"],
        ModelPackageGroupName=group["ModelPackageGroupName"],
        ModelPackageVersion=version,
        ModelPackageArn=arn,
        CreationTime=stamp,
        LastModifiedTime=stamp,
        ModelApprovalStatus=record.get("ModelApprovalStatus") or DEFAULT_APPROVAL,
        _GroupKey=key,
        _Type="Versioned",
    )
    backend.store.create(PACKAGES, arn, record)
    return arn


def _by_client_token(backend: Backend, token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    return next((r for r in backend.store.values(PACKAGES) if r.get("_ClientToken") == token), None)


def _check_additional_specs(specs: list[dict[str, Any]]) -> None:
    if len(specs) > MAX_ADDITIONAL_SPECS:
        raise ValidationException(
            f"Total number of additional Inference Specifications can not exceed "
            f"{MAX_ADDITIONAL_SPECS} (got {len(specs)})"
        )


@operation("DescribeModelPackage")
def describe_model_package(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return shape_response("DescribeModelPackage", get_model_package(backend, p["ModelPackageName"]))


@operation("ListModelPackages")
def list_model_packages(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    group_key: str | None = None
    if p.get("ModelPackageGroupName"):
        group_key = _group_key(backend, p["ModelPackageGroupName"])
        if group_key is None:
            return {"ModelPackageSummaryList": []}
    # The API lists only unversioned packages by default; a group holds only versioned ones.
    wanted = p.get("ModelPackageType") or ("Both" if group_key else "Unversioned")
    status = p.get("ModelApprovalStatus")

    def keep(r: dict[str, Any]) -> bool:
        return (
            (group_key is None or r.get("_GroupKey") == group_key)
            and (status is None or r.get("ModelApprovalStatus") == status)
            and (wanted == "Both" or r.get("_Type") == wanted)
        )

    return list_page(
        backend.store.values(PACKAGES),
        dict(p, SortOrder=p.get("SortOrder", "Ascending")),  # the API's default
        name_key="ModelPackageName",
        summary=_package_summary,
        result_key="ModelPackageSummaryList",
        extra_filter=keep,
    )


def _package_summary(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "ModelPackageName",
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelPackageDescription",
        "CreationTime",
        "ModelPackageStatus",
        "ModelApprovalStatus",
        "ModelLifeCycle",
        "ModelPackageRegistrationType",
    )
    summary = pick(r, keys)
    if r.get("_Type") == "Versioned":
        # SageMaker's summaries of versions carry the group and version, not a name.
        summary.pop("ModelPackageName", None)
    return summary


@operation("UpdateModelPackage")
def update_model_package(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    to_set = p.get("CustomerMetadataProperties") or {}
    to_remove = p.get("CustomerMetadataPropertiesToRemove") or []
    both = sorted(set(to_set) & set(to_remove))
    if both:
        raise ValidationException(
            f"CustomerMetadataProperties and CustomerMetadataPropertiesToRemove both name "
            f"{', '.join(both)}: set a key or remove it, not both"
        )
    with backend.store.lock:
        current = get_model_package(backend, p["ModelPackageArn"])
        specs = (current.get("AdditionalInferenceSpecifications") or []) + (
            p.get("AdditionalInferenceSpecificationsToAdd") or []
        )
        _check_additional_specs(specs)
        # Everything is checked before the change: a record is never half-updated.
        fields: dict[str, Any] = {k: p[k] for k in _REPLACED_ON_UPDATE if k in p}
        if "AdditionalInferenceSpecificationsToAdd" in p:
            fields["AdditionalInferenceSpecifications"] = specs
        if to_set or to_remove:
            props = dict(current.get("CustomerMetadataProperties") or {}, **to_set)
            for key in to_remove:
                props.pop(key, None)
            fields["CustomerMetadataProperties"] = props or None
        fields.update(LastModifiedTime=now(), LastModifiedBy=caller_identity(backend))
        backend.store.update(PACKAGES, current["__key"], fields)
    return {"ModelPackageArn": current["ModelPackageArn"]}


@operation("DeleteModelPackage")
def delete_model_package(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    with backend.store.lock:
        record = get_model_package(backend, p["ModelPackageName"])
        backend.store.delete(PACKAGES, record["__key"])
    backend.tags.drop(record["ModelPackageArn"])
    return {}
