"""Load policy files strictly, with errors that name the file, the path and the line.

``policy support-triage.yaml: rollout.stages[1].live_fraction (line 42): 1.5 is above 1.0``
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from govflow.policies.checks import PathT, cross_check
from govflow.policies.errors import GovflowError
from govflow.policies.model import Policy


class PolicyIssue(BaseModel):
    """One problem in a policy file: the file, the path in the document, its line, and what is wrong."""

    source: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path or ("line" if self.line else "")
        if self.line:
            where = f"{self.path} (line {self.line})" if self.path else f"line {self.line}"
        return f"policy {self.source}: {where + ': ' if where else ''}{self.message}"


class PolicyError(GovflowError):
    """A policy file is not valid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --- YAML: strict booleans, no duplicate keys, line numbers --------------------------------------


MAX_POLICY_BYTES = 256 * 1024
"""A policy is a page or two of YAML; anything far larger is refused before it is parsed."""


class _AliasRefused(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (``on``/``no`` stay strings), no duplicate keys, and no
    aliases: a policy never needs them, and nested aliases expand exponentially (a 14-line file
    grew a process to 6.7 GB)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _AliasRefused(self.peek_event().start_mark.line + 1)  # type: ignore[no-untyped-call]
        return super().compose_node(parent, index)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        self.key, self.line = key, line


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _compose(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for lines) and its data, read strictly."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _lines(node: yaml.Node, path: PathT = (), out: dict[PathT, int] | None = None) -> dict[PathT, int]:
    """Map each path in the document to the line (1-based) where its value starts."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            out[child] = key_node.start_mark.line + 1
            _lines(value_node, child, out)
            out[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)
    return out


def _line_for(lines: dict[PathT, int], path: PathT) -> int | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def format_path(path: Iterable[str | int]) -> str:
    """A document path as people write it: ``actions[0].approval.quorum``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- pydantic errors -> issues ------------------------------------------------------------------


def _document_path(loc: tuple[str | int, ...], lines: dict[PathT, int]) -> PathT:
    """Pydantic puts union members and validator names in error paths; keep the document's keys.

    A part that is not in the document (a missing or extra key) is kept only at the end.
    """
    path: PathT = ()
    for i, part in enumerate(loc):
        if (*path, part) in lines or (i == len(loc) - 1 and not _is_tag(part)):
            path = (*path, part)
    return path


def _is_tag(part: str | int) -> bool:
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


def _model_at(path: PathT) -> type[BaseModel] | None:
    model: Any = Policy
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else None
    return annotation


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _meant(path: PathT, parent: type[BaseModel] | None) -> str:
    """What an unknown key was probably meant to be: a key one level down (``people`` under ``reviewers``),
    or a near spelling (``stop_rule``)."""
    if parent is None:
        return ""
    key, keys = str(path[-1]), _keys_of(parent)
    for home in keys:
        child = _model_at((*path[:-1], home))
        if child is not None and key in _keys_of(child):
            return f" ({key!r} goes under {home!r})"
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _pydantic_issues(source: str, exc: ValidationError, lines: dict[PathT, int]) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    for err in exc.errors():
        path = _document_path(tuple(err["loc"]), lines)
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(path[:-1])
            valid = f"; valid keys here: {', '.join(_keys_of(parent))}" if parent else ""
            message = f"unknown key {path[-1]!r}{_meant(path, parent)}{valid}"
        elif kind == "missing":
            message = f"{path[-1]!r} is required" if path else "a required key is missing"
        elif kind in ("literal_error", "enum"):
            message = f"{err['input']!r} is not allowed: {err['msg'].replace('Input should be ', 'use ')}"
        elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
            bound = next(iter(err.get("ctx", {}).values()), "?")
            word = {
                "less_than_equal": "above",
                "less_than": "not below",
                "greater_than_equal": "below",
                "greater_than": "not above",
            }[kind]
            message = f"{err['input']} is {word} {bound}"
        elif kind == "too_short":
            message = f"needs at least {err.get('ctx', {}).get('min_length', 1)} item(s); it is empty"
        elif kind == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")
        else:
            message = f"{err['msg']} (got {err['input']!r})" if "input" in err else err["msg"]
        if any(i.path == format_path(path) for i in issues):
            continue  # a union reports once per member; the first says enough
        issues.append(PolicyIssue(source=source, path=format_path(path), line=_line_for(lines, path), message=message))
    # A list whose item failed is also reported as empty; the item's error is the real one.
    return [
        i
        for i in issues
        if not (
            i.message.startswith("needs at least") and any(o is not i and o.path.startswith(i.path) for o in issues)
        )
    ]


# --- entry points -------------------------------------------------------------------------------


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate a policy document; raise :class:`PolicyError` listing every problem."""

    def fail(message: str, line: int | None = None, path: str = "") -> PolicyError:
        return PolicyError([PolicyIssue(source=source, path=path, line=line, message=message)])

    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_POLICY_BYTES:
        raise fail(f"the document is {size:,} bytes; a policy may be at most {MAX_POLICY_BYTES:,}")
    try:
        node, data = _compose(text)
    except _DuplicateKey as dup:
        raise fail(f"key {dup.key!r} appears twice in one mapping", dup.line) from None
    except _AliasRefused as alias:
        raise fail("YAML aliases (*name) are not allowed in a policy: write the value out", alias.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise fail(f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None) from None
    if node is None or not isinstance(data, dict):
        raise fail("a policy is a YAML mapping (version, name, owner, ...)", 1)
    lines = _lines(node)
    try:
        policy = Policy.model_validate(data, context={"new_policy": True})
    except ValidationError as exc:
        raise PolicyError(_pydantic_issues(source, exc, lines)) from None
    problems = cross_check(policy)
    if problems:
        raise PolicyError(
            [PolicyIssue(source=source, path=format_path(p), line=_line_for(lines, p), message=m) for p, m in problems]
        )
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load a policy file; errors name the file, the path in the document and the line."""
    path = Path(path)

    def fail(message: str) -> PolicyError:
        return PolicyError([PolicyIssue(source=str(path), path="", line=None, message=message)])

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise fail(f"the file is over {MAX_POLICY_BYTES:,} bytes, the most a policy may be")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise fail(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, offset {exc.start}") from None
    return parse_policy(text, source=str(path))


def issues_at(source: Path, found: list[tuple[PathT, str]]) -> list[PolicyIssue]:
    """Problems found in a loaded policy file after loading (``policy check --app``), each with its line."""
    try:
        node, _ = _compose(source.read_text())
        lines = _lines(node) if node is not None else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, _DuplicateKey, _AliasRefused):
        lines = {}
    return [PolicyIssue(source=str(source), path=format_path(path), line=_line_for(lines, path), message=message)
            for path, message in found]  # fmt: skip


def policy_digest(policy: Policy) -> str:
    """sha256 of the policy's canonical JSON: the same for the same meaning, whatever the layout."""
    from govflow.policies.digest import digest

    return digest(policy.as_json())


@functools.lru_cache(maxsize=64)
def policy_from_json(text: str) -> Policy:
    """A policy from its JSON form (as the worker hands it to a workflow), parsed once per text.

    Policies are immutable, so caching by content is safe, and deterministic in workflows.
    """
    return Policy.model_validate_json(text)
