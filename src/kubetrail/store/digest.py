"""Signed digest files of the chain's head, to keep outside the store (like CloudTrail's).

``kubetrail verify --export DIR`` writes, per cluster, ``DIR/<cluster>/<cluster>-<time>.json``:
the head of the cluster's chain (sequence number and hash), the counts, the file name and
SHA-256 of the previous digest file of that cluster, and an Ed25519 signature over the
canonical JSON of all of it. Kept elsewhere (another machine, write-once storage), they pin
what the chain held at each export: someone who rewrites the whole store, chain included,
cannot make it match an earlier signed head. ``kubetrail verify --digests DIR`` checks the
signatures, the links between digest files, and that the store's chain still holds each
signed head.

The signing key is an Ed25519 private key in PEM (PKCS #8), by default next to the store
(``<db>.signing-key.pem``, created with mode 0600 at the first export).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import StoreError
from .verify import ChainStore, Problem, VerifyReport

PUBLIC_KEY_FILE = "kubetrail-digest-public-key.pem"
_VERSION = 1


def key_path_for(db_path: str) -> Path:
    """The default signing-key file of a store."""
    return Path(f"{db_path}.signing-key.pem")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Read the Ed25519 signing key, creating it (mode 0600) when the file does not exist.

    Raises:
        StoreError: the file exists but is not an Ed25519 private key in PEM.
    """
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise StoreError(f"{path}: not a readable PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"{path}: the signing key must be Ed25519")
    return key


def public_pem(key: Ed25519PublicKey) -> bytes:
    """The public key in PEM (SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class DigestFile:
    """One written digest file."""

    cluster: str
    path: Path
    head_seq: int
    head: str


def export_digests(
    report: VerifyReport, out_dir: Path, key: Ed25519PrivateKey, now: datetime | None = None
) -> list[DigestFile]:
    """Write one signed digest file per cluster of a passed verification.

    Args:
        report: the result of :func:`kubetrail.store.verify.verify_store`; it must be ``ok``.
        out_dir: the folder (created); one sub-folder per cluster.
        key: the signing key.
        now: the digest time (default the clock).

    Raises:
        StoreError: the report has problems (a digest never vouches for a broken chain).
    """
    if not report.ok:
        raise StoreError("verification failed: no digest written")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PUBLIC_KEY_FILE).write_bytes(public_pem(key.public_key()))
    written = []
    for cluster, result in report.clusters.items():
        folder = out_dir / cluster
        folder.mkdir(exist_ok=True)
        previous = _latest(folder)
        body: dict[str, Any] = {
            "version": _VERSION,
            "cluster": cluster,
            "digest_time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "chain_head_seq": result.head_seq,
            "chain_head_hash": result.head,
            "records": result.records,
            "events": result.events,
            "removed_events": result.removed_events,
            "previous_digest_file": previous.name if previous else None,
            "previous_digest_sha256": _file_sha256(previous) if previous else None,
            "public_key_sha256": _fingerprint(key.public_key()),
            "signature_algorithm": "Ed25519",
        }
        if result.heads:  # ClickHouse: one chain per writer; sign every head
            body["chain_heads"] = {w: {"seq": q, "hash": h} for w, (q, h) in result.heads.items()}
        body["signature"] = base64.b64encode(key.sign(_canonical(body))).decode()
        path = folder / f"{cluster}-{now:%Y%m%dT%H%M%S%fZ}.json"
        path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        written.append(DigestFile(cluster, path, result.head_seq, result.head))
    return written


def check_digests(
    store: ChainStore, digest_dir: Path, public_key: Ed25519PublicKey
) -> list[Problem]:
    """Check every digest file under ``digest_dir`` against its signature, its predecessor and
    the store's chain; return the problems (empty when all hold)."""
    problems: list[Problem] = []
    for folder in sorted(p for p in digest_dir.iterdir() if p.is_dir()):
        cluster = folder.name
        chain = _chain_of(store, cluster)
        previous: Path | None = None
        for path in _digest_files(folder):
            problems += _check_one(cluster, path, previous, chain, public_key)
            previous = path
    return problems


def _check_one(
    cluster: str,
    path: Path,
    previous: Path | None,
    chain: dict[Any, Any],
    public_key: Ed25519PublicKey,
) -> list[Problem]:
    def problem(detail: str, seq: int | None = None) -> Problem:
        return Problem(cluster, "digest_mismatch", f"{path.name}: {detail}", seq=seq)

    try:
        body = json.loads(path.read_text())
        signature = base64.b64decode(body.pop("signature"))
        public_key.verify(signature, _canonical(body))
    except (ValueError, KeyError, TypeError, OSError, InvalidSignature):
        return [problem("unreadable, or its signature does not verify")]
    found: list[Problem] = []
    expected = (previous.name, _file_sha256(previous)) if previous else (None, None)
    if (body.get("previous_digest_file"), body.get("previous_digest_sha256")) != expected:
        found.append(problem("does not link to the digest file before it"))
    seq, head = body.get("chain_head_seq"), body.get("chain_head_hash")
    heads = body.get("chain_heads")
    if isinstance(heads, dict):
        for writer, signed in sorted(heads.items()):
            record = chain.get((writer, signed.get("seq")))
            if record is None:
                found.append(
                    problem(
                        f"writer {writer}: the chain no longer has record "
                        f"{signed.get('seq')} (truncated or deleted?)"
                    )
                )
            elif record.record_hash != signed.get("hash"):
                found.append(
                    problem(
                        f"writer {writer}: record {signed.get('seq')} differs from the signed head"
                    )
                )
    elif isinstance(seq, int) and seq >= 0:
        record = chain.get(seq)
        if record is None:
            found.append(problem(f"the chain no longer has record {seq} (truncated?)", seq))
        elif record.record_hash != head:
            found.append(problem(f"chain record {seq} differs from the signed head", seq))
    return found


def _chain_of(store: ChainStore, cluster: str) -> dict[Any, Any]:
    """A cluster's records by seq (embedded store) or by (writer, seq) (ClickHouse)."""
    if getattr(store, "dialect", None) == "clickhouse":
        from .clickhouse_chain import read_records

        stored = read_records(store, cluster, with_keys=False)  # type: ignore[arg-type]
        return {(s.writer, s.record.seq): s.record for s in stored}
    return {r.seq: r for r in store.chain_records(cluster)}


def _digest_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def _latest(folder: Path) -> Path | None:
    files = _digest_files(folder)
    return files[-1] if files else None


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
