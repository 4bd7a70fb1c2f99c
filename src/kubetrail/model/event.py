"""Typed views of the parts of an audit Event that kubetrail reads.

These ``msgspec`` structs decode only what the normalised columns need; every other key of the
event (``requestObject``, ``responseObject``, unknown extra fields) is skipped by the decoder and
kept verbatim in the raw JSON, so nothing is lost. One struct serves ``audit.k8s.io/v1`` and
``v1beta1``: v1beta1 adds the deprecated ``timestamp`` and ``ObjectMeta``, which v1 lacks.
"""

from __future__ import annotations

import msgspec


class UserInfo(msgspec.Struct, omit_defaults=True, gc=False):
    """``authentication/v1.UserInfo``."""

    username: str | None = None
    uid: str | None = None
    groups: list[str] | None = None


class ObjectReference(msgspec.Struct, omit_defaults=True, gc=False):
    """``audit.k8s.io/v1.ObjectReference``."""

    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    apiGroup: str | None = None
    apiVersion: str | None = None
    subresource: str | None = None


class ResponseStatus(msgspec.Struct, omit_defaults=True, gc=False):
    """The fields of ``metav1.Status`` that kubetrail indexes."""

    code: int | None = None
    reason: str | None = None


class EventHead(msgspec.Struct, omit_defaults=True, gc=False):
    """The indexed fields of one audit Event (or the envelope of an EventList).

    ``items`` is only set for an ``EventList`` document: each item stays raw JSON so that it can
    be validated and stored on its own.
    """

    kind: str | None = None
    apiVersion: str | None = None
    level: str | None = None
    auditID: str | None = None
    stage: str | None = None
    requestURI: str | None = None
    verb: str | None = None
    user: UserInfo | None = None
    impersonatedUser: UserInfo | None = None
    sourceIPs: list[str] | None = None
    userAgent: str | None = None
    objectRef: ObjectReference | None = None
    responseStatus: ResponseStatus | None = None
    requestReceivedTimestamp: str | None = None
    stageTimestamp: str | None = None
    timestamp: str | None = None
    annotations: dict[str, str] | None = None
    items: list[msgspec.Raw] | None = None


HEAD_DECODER: msgspec.json.Decoder[EventHead] = msgspec.json.Decoder(EventHead)
