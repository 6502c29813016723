"""The SageMaker Pipelines definition language: expressions, conditions, step dependencies.

Pure functions over the JSON the SageMaker SDK writes (``Pipeline(...).definition()``):
``{"Get": "Parameters.X" | "Execution.PipelineExecutionId" | "Steps.S.<property path>"}``,
``{"Std:Join": {"On": ",", "Values": [...]}}``, ``{"Std:JsonGet": {"PropertyFile": {"Get":
"Steps.S.PropertyFiles.F"}, "Path": "a.b[0]"}}`` and the condition types Equals,
GreaterThan(OrEqualTo), LessThan(OrEqualTo), In, Not and Or.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

_TOKEN = re.compile(r"""([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]""")


class DefinitionError(ValueError):
    """A definition or expression that cannot be evaluated; the message says where."""


def parse_definition(text: str) -> dict[str, Any]:
    try:
        definition = json.loads(text)
    except ValueError as exc:
        raise DefinitionError(f"PipelineDefinition is not valid JSON: {exc}") from exc
    if not isinstance(definition, dict) or not isinstance(definition.get("Steps"), list):
        raise DefinitionError("PipelineDefinition must be a JSON object with a Steps list")
    names = [str(s.get("Name")) for s in all_steps(definition["Steps"])]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"PipelineDefinition: step names must be unique: {duplicates}")
    return definition


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, those inside a Condition step's branches included."""
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments", {})
            yield from all_steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))


def path_tokens(path: str) -> list[str | int]:
    """``Outputs['train'].S3Output.S3Uri`` → ``["Outputs", "train", "S3Output", "S3Uri"]``."""
    tokens: list[str | int] = []
    for part in path.split("."):
        pos = 0
        while pos < len(part):
            match = _TOKEN.match(part, pos)
            if match is None:
                raise DefinitionError(f"cannot read the property path {path!r} at {part[pos:]!r}")
            name, index, quoted, dquoted = match.groups()
            tokens.append(int(index) if index is not None else (name or quoted or dquoted or ""))
            pos = match.end()
    return tokens


def walk(value: Any, tokens: list[str | int], where: str) -> Any:
    """Follow ``tokens`` into a describe response; a name on a list picks the member whose
    ``...Name`` field has it (``Outputs['train']`` is the output named train)."""
    for token in tokens:
        if isinstance(token, int) and isinstance(value, list) and token < len(value):
            value = value[token]
        elif isinstance(token, str) and isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(token, str) and isinstance(value, list):
            named = [
                item
                for item in value
                if isinstance(item, dict)
                and any(k.endswith("Name") and v == token for k, v in item.items())
            ]
            if not named:
                raise DefinitionError(f"{where}: no member named {token!r}")
            value = named[0]
        else:
            raise DefinitionError(f"{where}: {token!r} is not there")
    return value


def referenced_steps(value: Any) -> set[str]:
    """The steps an expression (or a step's Arguments) reads from: its data dependencies."""
    found: set[str] = set()
    if isinstance(value, dict):
        get = value.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            found.add(path_tokens(get)[1])  # type: ignore[arg-type]
        for item in value.values():
            found |= referenced_steps(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_steps(item)
    return found


def dependencies(step: dict[str, Any]) -> set[str]:
    """What must finish before ``step`` starts: its DependsOn and the steps its Arguments
    read (for a Condition step, its conditions only: the branches run after it)."""
    arguments = step.get("Arguments", {})
    if step.get("Type") == "Condition":
        arguments = arguments.get("Conditions", [])
    return set(step.get("DependsOn", [])) | referenced_steps(arguments)


# Resolving ``{"Get": ...}`` is the caller's: parameters, execution variables and step
# properties live in the execution. ``read_json(s3_uri)`` fetches a property file.
Getter = Callable[[str], Any]


def resolve(value: Any, get: Getter, read_json: Callable[[str], Any]) -> Any:
    """``value`` with every expression replaced by what it evaluates to now."""
    if isinstance(value, list):
        return [resolve(v, get, read_json) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return get(value["Get"])
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        parts = resolve(join.get("Values", []), get, read_json)
        return str(join.get("On", "")).join(str(p) for p in parts)
    if set(value) == {"Std:JsonGet"}:
        spec = value["Std:JsonGet"]
        uri = resolve(spec["PropertyFile"], get, read_json) if "PropertyFile" in spec else None
        if uri is None:
            uri = resolve(spec.get("S3Uri"), get, read_json)
        document = read_json(uri)
        return walk(document, path_tokens(spec["Path"]), f"JsonGet {spec['Path']!r} in {uri}")
    return {k: resolve(v, get, read_json) for k, v in value.items()}


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b or _number(a) == _number(b),
    "GreaterThan": lambda a, b: _number(a) > _number(b),
    "GreaterThanOrEqualTo": lambda a, b: _number(a) >= _number(b),
    "LessThan": lambda a, b: _number(a) < _number(b),
    "LessThanOrEqualTo": lambda a, b: _number(a) <= _number(b),
}


def evaluate(condition: dict[str, Any], get: Getter, read_json: Callable[[str], Any]) -> bool:
    kind = condition.get("Type")
    if kind in _COMPARE:
        left = resolve(condition["LeftValue"], get, read_json)
        right = resolve(condition["RightValue"], get, read_json)
        try:
            return _COMPARE[kind](left, right)
        except TypeError as exc:
            raise DefinitionError(f"{kind}: cannot compare {left!r} with {right!r}") from exc
    if kind == "In":
        query = resolve(condition["QueryValue"], get, read_json)
        return any(
            query == v or _number(query) == _number(v)
            for v in resolve(condition["Values"], get, read_json)
        )
    if kind == "Not":
        return not evaluate(condition["Condition"], get, read_json)
    if kind == "Or":
        return any(evaluate(c, get, read_json) for c in condition["Conditions"])
    raise DefinitionError(f"unknown condition type {kind!r}")
