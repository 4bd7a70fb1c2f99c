"""Collector-side policy: apply an audit Policy to each batch in the pipeline.

``PolicyConfig`` is the component's configuration (unknown keys are refused with a "did you
mean"); ``config.build()`` gives the runtime :class:`PolicyTransform`, which the pipeline calls
on each batch of decoded events. Dropped events are counted by reason (``level-none``,
``stage-omitted``), all intentional.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from kubetrail.errors import ConfigError
from kubetrail.model.decode import DecodedChunk
from kubetrail.model.event import HEAD_DECODER
from kubetrail.policy.apply import apply_decision
from kubetrail.policy.loader import load_policy_file
from kubetrail.policy.model import Policy
from kubetrail.policy.simulate import Judge


@dataclass(frozen=True)
class PolicyConfig:
    """Configuration of the collector-side policy.

    Attributes:
        path: the Policy file (YAML or JSON, ``audit.k8s.io/v1`` or ``v1beta1``).
        strict: refuse unknown fields instead of dropping them as kube-apiserver does
            (default ``False``).
    """

    path: str
    strict: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Build from a config mapping; unknown keys raise :class:`ConfigError`."""
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"policy: unknown key {key!r}{hint}")
        if "path" not in data:
            raise ConfigError("policy: 'path' is required")
        return cls(**dict(data))

    def build(self) -> PolicyTransform:
        """Load and validate the policy file.

        Raises:
            PolicyError: kube-apiserver would refuse the policy.
        """
        return PolicyTransform(load_policy_file(self.path, strict=self.strict))


class PolicyTransform:
    """Applies a policy to events: keeps, trims or drops each one."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._judge = Judge(policy)
        #: Events dropped so far, by reason.
        self.dropped: Counter[str] = Counter()

    def __call__(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Return the events of a batch as kube-apiserver would have written them."""
        out = []
        for event in events:
            decision = self._judge(event)
            written = apply_decision(event, decision)
            if written is None:
                self.dropped["level-none" if decision.level == "None" else "stage-omitted"] += 1
            else:
                out.append(written)
        return out

    def apply_chunk(self, chunk: DecodedChunk) -> int:
        """Apply the policy to a decoded chunk in place; return how many events it dropped.

        Each kept event's stored JSON becomes what kube-apiserver would have written under the
        policy (level set, bodies and managedFields trimmed); its indexed fields are re-read.
        """
        kept = DecodedChunk(chunk.source, rejections=chunk.rejections)
        dropped = 0
        for head, raw, redacted, position in zip(
            chunk.heads, chunk.raws, chunk.redacted, chunk.positions, strict=True
        ):
            event = msgspec.json.decode(raw)
            decision = self._judge(event)
            written = apply_decision(event, decision)
            if written is None:
                self.dropped["level-none" if decision.level == "None" else "stage-omitted"] += 1
                dropped += 1
                continue
            if written != event:
                raw = msgspec.json.encode(written)
                head = HEAD_DECODER.decode(raw)
            kept.heads.append(head)
            kept.raws.append(raw)
            kept.redacted.append(redacted)
            kept.positions.append(position)
        chunk.heads, chunk.raws = kept.heads, kept.raws
        chunk.redacted, chunk.positions = kept.redacted, kept.positions
        return dropped
