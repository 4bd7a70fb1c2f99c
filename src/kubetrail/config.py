"""The configuration file of ``kubetrail serve`` and ``kubetrail collect`` (one YAML file).

Every section is a dataclass; :func:`load_config` builds them from YAML and refuses unknown
keys with a "did you mean" hint and the dotted path of the key (``server.limits.max_body``).
Secrets never need to be in the file: tokens are stored as SHA-256 hashes, and environment
variables override them (``KUBETRAIL_CLUSTER_TOKEN_<NAME>``, ``KUBETRAIL_ADMIN_TOKEN``,
``KUBETRAIL_COLLECT_TOKEN``, ``KUBETRAIL_CH_PASSWORD``). Every key is documented in
``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError
from .store.factory import StoreConfig
from .store.location import PASSWORD_ENV

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class TLSConfig:
    """TLS of the server: certificate, key and the CA that signs client certificates."""

    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None


@dataclass
class LimitsConfig:
    """Bounds on what one request and the write queue may hold."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_decompressed_bytes: int = 128 * 1024 * 1024
    max_pending_batches: int = 16
    parse_workers: int = 2
    retry_after_seconds: int = 1
    #: Acknowledged bytes the webhook spool may hold before the store has them (0: no spool).
    max_spool_bytes: int = 256 * 1024 * 1024
    #: Recent event keys kept in memory to count duplicates at admission.
    dedupe_keys: int = 1_000_000


@dataclass
class MetricsConfig:
    """The API server's ``/metrics`` endpoint, scraped for its audit counters (issue 9).

    Attributes:
        url: ``https://HOST:6443/metrics`` (any http(s) URL serving the Prometheus text format).
        token_file: a file holding a bearer token (read at every scrape, so it may rotate).
        ca_file: the CA bundle that signs the endpoint's certificate (default: system CAs).
        interval: time between two scrapes (``60s``).
        timeout_seconds: per scrape.
    """

    url: str = ""
    token_file: str | None = None
    ca_file: str | None = None
    interval: str = "60s"
    timeout_seconds: float = 10.0


@dataclass
class ClusterConfig:
    """One cluster allowed to send events.

    Attributes:
        name: the cluster name stored with every event it sends.
        token_sha256: hex SHA-256 hashes of its bearer tokens.
        cert_names: client-certificate CN or DNS SAN values that identify it (default: ``name``).
        environment: a label such as ``production`` or ``development``; clusters of different
            environments never share a store file.
        retention: how long its events are kept (``400d``); default ``server.retention.default``.
        store: a DuckDB file of its own instead of ``server.db``.
        max_size: size cap of that file (``50GB``): the oldest batches are evicted above it.
        metrics: the API server's metrics endpoint, scraped for its audit error counters.
    """

    name: str = ""
    token_sha256: list[str] = field(default_factory=list)
    cert_names: list[str] = field(default_factory=list)
    environment: str = ""
    retention: str | None = None
    store: str | None = None
    max_size: str | None = None
    metrics: MetricsConfig | None = None


@dataclass
class RetentionConfig:
    """Retention that ``kubetrail serve`` enforces on a schedule (and ``retention apply``).

    Attributes:
        default: retention of clusters without their own (``None``: keep forever).
        interval: time between two runs in the server.
        max_size: size cap of ``server.db`` (``None``: no cap).
    """

    default: str | None = None
    interval: str = "1h"
    max_size: str | None = None


@dataclass
class UserConfig:
    """A person who may log in to the web UI, or script the ``/api`` with a token.

    Attributes:
        name: the login name.
        role: ``viewer`` (read only) or ``admin`` (also changes alerts and settings).
        password_hash: scrypt hash of the password (``kubetrail certs hash-password``).
        token_sha256: hex SHA-256 of API tokens that act as this user.
    """

    name: str = ""
    role: str = "viewer"
    password_hash: str = ""
    token_sha256: list[str] = field(default_factory=list)


@dataclass
class ServerConfig:
    """Settings of ``kubetrail serve``."""

    listen: str = "127.0.0.1:8080"
    db: str = "kubetrail.duckdb"
    redact: bool = True
    demo: bool = False
    demo_events: int = 50_000
    admin_token_sha256: list[str] = field(default_factory=list)
    drain_seconds: int = 30
    tls: TLSConfig = field(default_factory=TLSConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    clusters: list[ClusterConfig] = field(default_factory=list)
    users: list[UserConfig] = field(default_factory=list)
    secure_cookies: bool = True
    retention: RetentionConfig = field(default_factory=RetentionConfig)


@dataclass
class CollectConfig:
    """Settings of ``kubetrail collect``."""

    file: str = "/var/log/kubernetes/audit/audit.log"
    #: ``auto`` (per file), ``jsonl``, ``cri`` or ``docker``; see docs/container-logs.md.
    format_in: str = "auto"
    checkpoint: str | None = None
    server: str | None = None
    token: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    db: str | None = None
    cluster: str = "default"
    batch_lines: int = 400
    poll_seconds: float = 0.5
    max_backoff_seconds: float = 30.0


@dataclass
class SinkConfig:
    """One alert sink (``detect.sinks[]``); see docs/detections.md.

    Attributes:
        type: stdout, webhook, slack or alertmanager.
        name: a name for metrics and delivery states (default: the type).
        url: the webhook / Slack / Alertmanager URL (Alertmanager: its base URL).
        secret: the webhook's HMAC key; ``secret_env`` names a variable that holds it instead.
        min_severity: the lowest severity sent (default ``low``).
        rules: only these rule ids (``*`` wildcards); empty means every rule.
        timeout_seconds: per request.
    """

    type: str = "stdout"
    name: str = ""
    url: str = ""
    secret: str = ""
    secret_env: str = ""
    min_severity: str = "low"
    rules: list[str] = field(default_factory=list)
    timeout_seconds: float = 5.0


@dataclass
class VariableConfig:
    """Values for a rule variable (``detect.variables[]``): an allow-list or watch-list."""

    name: str = ""
    values: list[str] = field(default_factory=list)


@dataclass
class DetectConfig:
    """Detections of ``kubetrail serve`` (and ``kubetrail rules``); see docs/detections.md.

    Attributes:
        enabled: run detections in the server.
        builtin: load the built-in rule pack.
        rule_dirs: directories (or files) of user rules; a rule with a built-in id overrides it.
        disabled: ids of rules to disable.
        variables: values replacing the pack's variables by name.
        sinks: where alerts go.
        policy: the audit policy the API servers use, checked against the rules at start-up.
        cooldown_seconds: how long an open alert absorbs new matches of its key.
        schedule_seconds: how often threshold, first-seen and silence rules run.
    """

    enabled: bool = True
    builtin: bool = True
    rule_dirs: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    variables: list[VariableConfig] = field(default_factory=list)
    sinks: list[SinkConfig] = field(default_factory=list)
    policy: str | None = None
    cooldown_seconds: int = 3600
    schedule_seconds: int = 30

    def variable_values(self) -> dict[str, list[str]]:
        """The variables as a mapping."""
        return {v.name: list(v.values) for v in self.variables}


@dataclass
class Config:
    """The whole configuration file."""

    server: ServerConfig = field(default_factory=ServerConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    #: The ``store`` section (engine, url, database, cluster, ...): where ``serve`` and a local
    #: ``collect --db`` write; absent means the embedded store at ``server.db``.
    store: StoreConfig | None = None
    detect: DetectConfig = field(default_factory=DetectConfig)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a configuration file; ``None`` gives the defaults.

    Args:
        path: the YAML file, or ``None``.
        env: the environment whose secrets override the file (default ``os.environ``).

    Raises:
        ConfigError: the file cannot be read, or a key or value is invalid (the message names
            the key).
    """
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    config = parse_config(data, where=str(path or "<defaults>"))
    apply_env(config, os.environ if env is None else env)
    return config


def parse_config(data: Any, where: str = "<config>") -> Config:
    """Build a :class:`Config` from decoded YAML; see :func:`load_config`."""
    store = None
    if isinstance(data, dict) and "store" in data:
        data = dict(data)
        section = data.pop("store")
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: store: expected a mapping")
        try:
            store = StoreConfig.from_mapping(section)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    config = _build(Config, data, where, "")
    config.store = store
    validate(config, where)
    return config


def apply_env(config: Config, env: Mapping[str, str]) -> None:
    """Apply secret overrides from the environment (plain tokens are hashed here)."""
    from .web.auth import hash_token  # the one place tokens are hashed

    by_env = {_env_name(c.name): c for c in config.server.clusters}
    for key, value in env.items():
        if key.startswith("KUBETRAIL_CLUSTER_TOKEN_") and value:
            suffix = key.removeprefix("KUBETRAIL_CLUSTER_TOKEN_")
            cluster = by_env.get(suffix)
            if cluster is None:
                cluster = ClusterConfig(name=suffix.lower().replace("_", "-"))
                config.server.clusters.append(cluster)
                by_env[suffix] = cluster
            cluster.token_sha256.append(hash_token(value))
    if token := env.get("KUBETRAIL_ADMIN_TOKEN"):
        config.server.admin_token_sha256.append(hash_token(token))
    if token := env.get("KUBETRAIL_COLLECT_TOKEN"):
        config.collect.token = token
    if config.store is not None and (password := env.get(PASSWORD_ENV)):
        config.store = dataclasses.replace(config.store, password=password)


def _env_name(cluster: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", cluster.upper())


def validate(config: Config, where: str) -> None:
    """Check values that types alone cannot (names, hashes, listen address, bounds)."""
    server = config.server
    parse_listen(server.listen, f"{where}: server.listen")
    seen: set[str] = set()
    for i, cluster in enumerate(server.clusters):
        key = f"server.clusters[{i}]"
        if not _NAME.match(cluster.name):
            raise ConfigError(f"{where}: {key}.name: {cluster.name!r} is not a valid cluster name")
        if cluster.name in seen:
            raise ConfigError(f"{where}: {key}.name: cluster {cluster.name!r} is listed twice")
        seen.add(cluster.name)
        for h in cluster.token_sha256:
            if not _SHA256.match(h):
                raise ConfigError(
                    f"{where}: {key}.token_sha256: expected 64 lowercase hex digits "
                    "(see `kubetrail certs hash-token`)"
                )
        if cluster.metrics is not None:
            _validate_metrics(cluster.metrics, f"{where}: {key}.metrics")
    _validate_retention(server, where)
    for h in server.admin_token_sha256:
        if not _SHA256.match(h):
            raise ConfigError(f"{where}: server.admin_token_sha256: expected 64 hex digits")
    _validate_users(server.users, where)
    if bool(server.tls.cert) != bool(server.tls.key):
        raise ConfigError(f"{where}: server.tls: cert and key must be given together")
    if server.tls.client_ca and not server.tls.cert:
        raise ConfigError(f"{where}: server.tls.client_ca needs server.tls.cert and key")
    _validate_detect(config.detect, where)
    for name in (
        "max_body_bytes",
        "max_decompressed_bytes",
        "max_pending_batches",
        "parse_workers",
        "dedupe_keys",
    ):
        if getattr(server.limits, name) < 1:
            raise ConfigError(f"{where}: server.limits.{name}: must be at least 1")
    if server.limits.max_spool_bytes < 0:
        raise ConfigError(f"{where}: server.limits.max_spool_bytes: must be 0 (off) or more")
    formats = ("auto", "jsonl", "cri", "docker")  # sources.containerlog.FORMATS
    if config.collect.format_in not in formats:
        raise ConfigError(
            f"{where}: collect.format_in: {config.collect.format_in!r} is not one of "
            + ", ".join(formats)
        )


def _validate_metrics(metrics: MetricsConfig, key: str) -> None:
    from .store.retention import parse_duration

    if not metrics.url.startswith(("http://", "https://")):
        raise ConfigError(f"{key}.url: an http(s) URL is required")
    parse_duration(metrics.interval, f"{key}.interval")
    if metrics.timeout_seconds <= 0:
        raise ConfigError(f"{key}.timeout_seconds: must be more than 0")


def _validate_users(users: list[UserConfig], where: str) -> None:
    from .web.passwords import is_password_hash

    names: set[str] = set()
    for i, user in enumerate(users):
        key = f"{where}: server.users[{i}]"
        if not user.name.strip() or user.name in names:
            raise ConfigError(f"{key}.name: empty or listed twice")
        names.add(user.name)
        if user.role not in ("viewer", "admin"):
            raise ConfigError(f"{key}.role: {user.role!r}; expected 'viewer' or 'admin'")
        if user.password_hash and not is_password_hash(user.password_hash):
            raise ConfigError(
                f"{key}.password_hash: not a scrypt hash (see `kubetrail certs hash-password`)"
            )
        if any(not _SHA256.match(h) for h in user.token_sha256):
            raise ConfigError(f"{key}.token_sha256: expected 64 lowercase hex digits")


def _validate_retention(server: ServerConfig, where: str) -> None:
    from .store.retention import parse_duration, parse_size

    if server.retention.default is not None:
        parse_duration(server.retention.default, f"{where}: server.retention.default")
    parse_duration(server.retention.interval, f"{where}: server.retention.interval")
    if server.retention.max_size is not None:
        parse_size(server.retention.max_size, f"{where}: server.retention.max_size")
    environments: dict[str, set[str]] = {}
    for i, cluster in enumerate(server.clusters):
        key = f"{where}: server.clusters[{i}]"
        if cluster.retention is not None:
            parse_duration(cluster.retention, f"{key}.retention")
        if cluster.max_size is not None:
            if not cluster.store:
                raise ConfigError(f"{key}.max_size: applies to a cluster with its own store")
            parse_size(cluster.max_size, f"{key}.max_size")
        path = str(Path(cluster.store or server.db).resolve())
        if cluster.environment:
            environments.setdefault(path, set()).add(cluster.environment)
    for path, envs in environments.items():
        if len(envs) > 1:
            raise ConfigError(
                f"{where}: server.clusters: environments {', '.join(sorted(envs))} would share "
                f"the store {path}; give clusters of different environments their own `store`"
            )


_SINK_TYPES = ("stdout", "webhook", "slack", "alertmanager")
_SEVERITIES = ("info", "low", "medium", "high", "critical")


def _validate_detect(detect: DetectConfig, where: str) -> None:
    for i, sink in enumerate(detect.sinks):
        key = f"detect.sinks[{i}]"
        if sink.type not in _SINK_TYPES:
            raise ConfigError(f"{where}: {key}.type: {sink.type!r}; use {', '.join(_SINK_TYPES)}")
        if sink.min_severity not in _SEVERITIES:
            raise ConfigError(
                f"{where}: {key}.min_severity: {sink.min_severity!r}; use {', '.join(_SEVERITIES)}"
            )
        if sink.type != "stdout" and not sink.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: {key}.url: an http(s) URL is required")
    for name in ("cooldown_seconds", "schedule_seconds"):
        if getattr(detect, name) < 1:
            raise ConfigError(f"{where}: detect.{name}: must be at least 1")


def parse_listen(value: str, key: str = "listen") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8080`` for IPv6).

    Raises:
        ConfigError: the value is not ``HOST:PORT`` with a port in 0..65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{key}: {value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix or 'the file'}: expected a mapping")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{where}: {dotted}: unknown key{hint}")
        values[key] = _convert(hints[key], value, where, dotted)
    return cls(**values)


def _convert(hint: Any, value: Any, where: str, key: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, key + ".")  # type: ignore[arg-type]
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list")
        return [_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: {key}: unsupported value {value!r}")  # pragma: no cover
