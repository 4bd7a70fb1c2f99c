"""The configuration file: defaults, validation with the key named, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrail.config import Config, load_config, parse_config, parse_listen
from kubetrail.errors import ConfigError
from kubetrail.web.auth import hash_token

EXAMPLE = Path(__file__).parents[1] / "deploy" / "kubetrail.example.yaml"


def test_defaults() -> None:
    config = load_config(None, env={})
    assert config == Config()
    assert config.server.listen == "127.0.0.1:8080"


def test_example_config_parses() -> None:
    config = load_config(EXAMPLE, env={})
    assert [c.name for c in config.server.clusters] == ["prod", "staging"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sever": {}}, "sever: unknown key; did you mean 'server'?"),
        ({"server": {"limits": {"max_body": 1}}}, "server.limits.max_body: unknown key; did you"),
        ({"server": {"listen": "8080"}}, "server.listen"),
        ({"server": {"demo": "yes"}}, "server.demo: expected true or false"),
        ({"server": {"limits": {"max_pending_batches": 0}}}, "max_pending_batches: must be"),
        ({"server": {"clusters": [{"name": "Prod!"}]}}, "server.clusters[0].name"),
        ({"server": {"clusters": [{"name": "a", "token_sha256": ["x"]}]}}, "token_sha256"),
        ({"server": {"clusters": [{"name": "a"}, {"name": "a"}]}}, "listed twice"),
        ({"server": {"clusters": {"name": "a"}}}, "server.clusters: expected a list"),
        ({"server": {"tls": {"cert": "c.pem"}}}, "cert and key must be given together"),
        ({"collect": {"poll_seconds": "fast"}}, "collect.poll_seconds: expected a number"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_errors_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(data)
    assert message in str(info.value)


def test_env_overrides_secrets(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("server:\n  clusters:\n    - name: prod-eu\n")
    env = {
        "KUBETRAIL_CLUSTER_TOKEN_PROD_EU": "s3cret",
        "KUBETRAIL_CLUSTER_TOKEN_DEV": "d3v",
        "KUBETRAIL_ADMIN_TOKEN": "adm",
        "KUBETRAIL_COLLECT_TOKEN": "col",
    }
    config = load_config(path, env=env)
    clusters = {c.name: c.token_sha256 for c in config.server.clusters}
    assert clusters == {"prod-eu": [hash_token("s3cret")], "dev": [hash_token("d3v")]}
    assert config.server.admin_token_sha256 == [hash_token("adm")]
    assert config.collect.token == "col"


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:8443") == ("0.0.0.0", 8443)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ConfigError):
        parse_listen("localhost:http")


def _keys(cls: type, prefix: str) -> list[str]:
    import dataclasses

    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            out += _keys(type(default), f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def test_every_key_is_documented() -> None:
    from kubetrail.config import ClusterConfig

    text = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    keys = _keys(Config, "")
    assert "server.limits.max_pending_batches" in keys
    missing = [k for k in keys if f"`{k}`" not in text and f"`{k}," not in text]
    assert not missing, f"not in docs/configuration.md: {missing}"
    for name in _keys(ClusterConfig, ""):
        assert f"| `{name}` |" in text


def test_detect_section() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.detect.variable_values()["ci_identities"][0] == "system:serviceaccount:jenkins:*"
    assert [s.type for s in config.detect.sinks] == ["alertmanager", "webhook"]
    for data, message in [
        ({"detect": {"sinks": [{"type": "pager"}]}}, "detect.sinks[0].type"),
        ({"detect": {"sinks": [{"type": "slack", "url": "x"}]}}, "detect.sinks[0].url"),
        ({"detect": {"sinks": [{"min_severity": "loud"}]}}, "min_severity"),
        ({"detect": {"schedule_seconds": 0}}, "detect.schedule_seconds"),
        ({"detect": {"rule_dir": []}}, "detect.rule_dir: unknown key; did you mean 'rule_dirs'?"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config(data)
        assert message in str(info.value)
