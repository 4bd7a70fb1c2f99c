"""Policy errors that carry kube-apiserver field paths.

``PolicyError`` (from :mod:`kubetrail.errors`) is the root; the subclasses here add structure::

    PolicyError
    ├── PolicyDecodeError      the document does not decode (bad YAML, wrong type, bad apiVersion)
    └── PolicyValidationError  it decodes but kube-apiserver's validation refuses it (.errors)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubetrail.errors import PolicyError


def go_quote(value: str) -> str:
    """Quote a string roughly as Go's ``%q`` does (exact for printable text)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def render_value(value: Any) -> str:
    """Render a bad value the way apimachinery's field errors print it."""
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class FieldError:
    """One validation error, as apimachinery's ``field.Error``.

    Attributes:
        path: the field path (``rules[0].nonResourceURLs[1]``).
        kind: ``Required``, ``Invalid`` or ``Unsupported``.
        value: the bad value (``None`` for Required).
        detail: the explanation after the value.
    """

    path: str
    kind: str
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        """The message without the path (``Invalid value: "x": ...``)."""
        if self.kind == "Required":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if self.kind == "Unsupported":
            return f"Unsupported value: {render_value(self.value)}: {self.detail}"
        return f"Invalid value: {render_value(self.value)}: {self.detail}"

    def __str__(self) -> str:
        return f"{self.path}: {self.body()}"


def aggregate(messages: list[str]) -> str:
    """Join messages as apimachinery's aggregate does: one as itself, several as ``[a, b]``."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


class PolicyDecodeError(PolicyError):
    """The document cannot be decoded at all (kube-apiserver: ``failed decoding: ...``).

    Attributes:
        reason: what is wrong, in kube-apiserver's words where it has some.
        path: the field path involved, when known.
    """

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


class PolicyValidationError(PolicyError):
    """kube-apiserver's validation refuses the policy.

    Attributes:
        errors: every field error, in kube-apiserver's order.
    """

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        self.errors = errors
        super().__init__(message or aggregate([str(e) for e in errors]))
