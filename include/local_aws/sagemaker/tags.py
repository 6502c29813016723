"""Tags on any SageMaker resource, by ARN: AddTags, ListTags, DeleteTags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from local_aws.sagemaker.api import operation
from local_aws.sagemaker.store import Store

if TYPE_CHECKING:
    from local_aws.sagemaker.backend import Backend

KIND = "tags"


class Tags:
    def __init__(self, store: Store):
        self.store = store

    def add(self, arn: str, tags: list[dict[str, str]]) -> list[dict[str, str]]:
        with self.store.lock:
            current = {t["Key"]: t["Value"] for t in self.get(arn)}
            current.update({t["Key"]: t.get("Value", "") for t in tags})
            merged = [{"Key": k, "Value": v} for k, v in current.items()]
            if merged:
                self.store.create(KIND, arn, {"Tags": merged})
            return merged

    def get(self, arn: str) -> list[dict[str, str]]:
        record = self.store.get(KIND, arn)
        return record["Tags"] if record else []

    def remove(self, arn: str, keys: list[str]) -> None:
        with self.store.lock:
            kept = [t for t in self.get(arn) if t["Key"] not in set(keys)]
            self.store.create(KIND, arn, {"Tags": kept})

    def drop(self, arn: str) -> None:
        self.store.delete(KIND, arn)


@operation("AddTags")
def add_tags(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": backend.tags.add(p["ResourceArn"], p["Tags"])}


@operation("ListTags")
def list_tags(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    tags = backend.tags.get(p["ResourceArn"])
    start = int(p.get("NextToken") or 0)
    limit = int(p.get("MaxResults") or 50)
    response: dict[str, Any] = {"Tags": tags[start : start + limit]}
    if start + limit < len(tags):
        response["NextToken"] = str(start + limit)
    return response


@operation("DeleteTags")
def delete_tags(backend: Backend, p: dict[str, Any]) -> dict[str, Any]:
    backend.tags.remove(p["ResourceArn"], p["TagKeys"])
    return {}
