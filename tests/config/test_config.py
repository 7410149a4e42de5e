"""Config: load YAML → expand ${ENV} → validate → defaults; ConfigStore reload."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from livechain.config import (
    ChainConfig,
    Config,
    ConfigError,
    ConfigStore,
    ProviderConfig,
    format_duration,
    load_config,
    parse_config,
)
from livechain.config.durations import UNITS, parse_duration

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
chains:
  ethereum:
    chain_id: 1
    providers:
      - id: alpha
        http_url: https://alpha.example/rpc
      - id: beta
        http_url: https://beta.example/rpc
        ws_url: wss://beta.example/ws
        priority: 7
"""


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), env=env or {})


def problems_of(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value.problems


def paths_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    return [path for path, _ in problems_of(text, env)]


def chain_yaml(chain: str = "", provider: str = "", *, providers: str = "", extra_chains: str = "") -> str:
    """One chain `ethereum` whose first provider is `alpha`; the extra lines are indented into place:
    `chain` keys into the chain, `provider` keys into `alpha`, `providers` items after it, `extra_chains`."""
    return (
        "chains:\n  ethereum:\n    chain_id: 1\n"
        + textwrap.indent(textwrap.dedent(chain), "    ")
        + "    providers:\n      - id: alpha\n        http_url: https://alpha.example/rpc\n"
        + textwrap.indent(textwrap.dedent(provider), "        ")
        + textwrap.indent(textwrap.dedent(providers), "      ")
        + textwrap.indent(textwrap.dedent(extra_chains), "  ")
    )


# ---- defaults and immutability ------------------------------------------------------------------------


def test_a_minimal_config_gets_every_documented_default() -> None:
    """Every key left out takes the documented default, resolved once at validation."""
    config = parse(MINIMAL)
    assert config.region == "local"
    assert (config.server.host, config.server.port, config.server.max_body_bytes) == (
        "127.0.0.1",
        4000,
        2_097_152,
    )
    assert (config.server.header_timeout, config.server.idle_timeout, config.server.shutdown_grace) == (
        10,
        75,
        10,
    )
    assert config.server.max_connections_per_ip == 512
    assert config.server.cors_origins == ("*",)
    ws = config.server.ws
    assert (ws.max_message_bytes, ws.max_subscriptions, ws.send_queue) == (1_048_576, 100, 2048)
    assert (ws.ping_interval, ws.ping_timeout) == (20.0, 20.0)
    assert (config.metrics.retention, config.metrics.max_entries, config.metrics.window) == (
        86_400,
        86_400,
        300,
    )
    assert (
        config.persistence.sqlite_path == "livechain.sqlite" and config.persistence.snapshot_interval == 3600
    )
    assert (config.logging.level, config.logging.format) == ("info", "json")
    chain = config.chains["ethereum"]
    assert chain.name == "ethereum"
    assert (chain.strategy, chain.deadline, chain.attempt_timeout, chain.max_attempts) == (
        "leaderboard",
        10,
        4,
        3,
    )
    assert (chain.max_lag_blocks, chain.batch_limit, chain.max_block_range, chain.health_interval) == (
        5,
        100,
        10_000,
        5,
    )
    breaker = chain.breaker
    assert (breaker.failure_threshold, breaker.recovery_timeout) == (5, 10)
    assert (breaker.success_threshold, breaker.half_open_probes) == (2, 1)
    assert chain.methods.allow == () and chain.methods.deny == ()
    alpha, beta = chain.providers
    assert alpha.ws_url is None and alpha.max_connections == 32 and alpha.headers == {}
    assert beta.ws_url == "wss://beta.example/ws"


def test_provider_priority_defaults_to_its_position_in_the_list() -> None:
    """effective_priority is the configured priority, else the provider's list index."""
    text = chain_yaml(
        providers="""
        - id: beta
          http_url: https://beta.example
          priority: -1
        - id: gamma
          http_url: https://gamma.example
        """
    )
    chain = parse(text).chains["ethereum"]
    assert [p.priority for p in chain.providers] == [None, -1, None]
    assert [p.effective_priority for p in chain.providers] == [0, -1, 2]
    assert [p.id for p in chain.providers_by_priority] == ["beta", "alpha", "gamma"]


def test_assigning_to_any_config_model_raises() -> None:
    """Every model is frozen: attribute assignment fails at every depth."""
    config = parse(MINIMAL)
    chain = config.chains["ethereum"]
    targets: list[tuple[Any, str, Any]] = [
        (config, "region", "x"),
        (config.server, "port", 1),
        (config.server.ws, "send_queue", 1),
        (chain, "chain_id", 2),
        (chain.breaker, "failure_threshold", 1),
        (chain.providers[0], "http_url", "https://evil.example"),
        (chain.providers[0].methods, "allow", ("*",)),
    ]
    for model, attribute, value in targets:
        with pytest.raises(pydantic.ValidationError):
            setattr(model, attribute, value)


def test_config_collections_are_immutable_too() -> None:
    """Lists become tuples and mappings are read-only, so no component can mutate shared config."""
    config = parse(chain_yaml(provider="headers: {X-Team: blue}\n"))
    provider = config.chains["ethereum"].providers[0]
    assert isinstance(config.chains["ethereum"].providers, tuple)
    with pytest.raises(TypeError):
        config.chains["base"] = config.chains["ethereum"]  # type: ignore[index]
    with pytest.raises(TypeError):
        provider.headers["X-Team"] = "red"  # type: ignore[index]
    assert hash(config) == hash(parse(chain_yaml(provider="headers: {X-Team: blue}\n")))


def test_a_model_built_twice_from_one_provider_instance_keeps_positions_apart() -> None:
    """Derived attributes are per parent: a ProviderConfig reused in two chains gets each chain's position."""
    shared = ProviderConfig(id="shared", http_url="https://shared.example")
    other = ProviderConfig(id="other", http_url="https://other.example")
    config = Config(
        chains={
            "one": ChainConfig(chain_id=1, providers=(shared,)),
            "two": ChainConfig(chain_id=2, providers=(other, shared)),
        }
    )
    assert config.chains["one"].providers[0].position == 0
    assert config.chains["two"].providers[1].position == 1


# ---- unknown keys, types, cross-field checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("bogus: 1\n" + MINIMAL, "bogus"),
        ("server: {ws: {pingg_interval: 5s}}\n" + MINIMAL, "server.ws.pingg_interval"),
        (chain_yaml("strategyy: priority\n"), "chains.ethereum.strategyy"),
        (chain_yaml("breaker: {failure_treshold: 3}\n"), "chains.ethereum.breaker.failure_treshold"),
        (chain_yaml(provider="url: https://x.example\n"), "chains.ethereum.providers[0].url"),
        (chain_yaml(provider="methods: {denyy: []}\n"), "chains.ethereum.providers[0].methods.denyy"),
    ],
)
def test_an_unknown_key_is_reported_at_its_exact_dotted_path(text: str, path: str) -> None:
    """Unknown keys are rejected everywhere, with the message `unknown key` at the key's path."""
    assert problems_of(text) == [(path, "unknown key")]


def test_several_problems_are_reported_together() -> None:
    """Validation collects every problem across the file rather than stopping at the first."""
    text = chain_yaml(
        "max_attempts: 0\nstrategy: fastest-ever\n",
        "ws_url: https://not-ws.example\n",
        extra_chains="""
        base:
          chain_id: 8453
          providers: []
        """,
    )
    text = "server: {port: 70000}\nlogging: {level: loud}\n" + text
    assert set(paths_of(text)) == {
        "server.port",
        "logging.level",
        "chains.ethereum.max_attempts",
        "chains.ethereum.strategy",
        "chains.ethereum.providers[0].ws_url",
        "chains.base.providers",
    }


def test_missing_required_keys_are_reported_as_required() -> None:
    """A missing chain_id, provider url or chains section is named at its path with `required`."""
    assert problems_of("server: {}\n") == [("chains", "required")]
    text = "chains:\n  ethereum:\n    providers:\n      - {id: a}\n"
    assert set(problems_of(text)) == {
        ("chains.ethereum.chain_id", "required"),
        ("chains.ethereum.providers[0].http_url", "required"),
    }


def test_duplicate_provider_ids_within_a_chain_are_rejected() -> None:
    """Provider ids are unique within a chain; the later duplicate is reported at its id path."""
    text = chain_yaml(providers="- id: alpha\n  http_url: https://other.example\n")
    [(path, message)] = problems_of(text)
    assert path == "chains.ethereum.providers[1].id"
    assert "duplicate provider id" in message


def test_the_same_provider_id_in_two_chains_is_fine() -> None:
    """Provider id uniqueness is per chain, not global."""
    text = chain_yaml(
        extra_chains="base: {chain_id: 8453, providers: [{id: alpha, http_url: 'https://a.example'}]}\n"
    )
    assert set(parse(text).chains) == {"ethereum", "base"}


def test_duplicate_chain_ids_across_chains_are_rejected() -> None:
    """chain_id is unique across chains, since routes accept the decimal chain id."""
    text = chain_yaml(
        extra_chains="mainnet: {chain_id: 1, providers: [{id: a, http_url: 'https://a.example'}]}\n"
    )
    [(path, message)] = problems_of(text)
    assert path == "chains.mainnet.chain_id"
    assert "ethereum" in message


def test_attempt_timeout_longer_than_deadline_is_rejected() -> None:
    """One attempt can never be given more time than the whole request."""
    assert problems_of(chain_yaml("deadline: 2s\nattempt_timeout: 3s\n")) == [
        ("chains.ethereum.attempt_timeout", "must be <= deadline")
    ]
    assert (
        parse(chain_yaml("deadline: 2s\nattempt_timeout: 2000ms\n")).chains["ethereum"].attempt_timeout == 2.0
    )


def test_a_chain_without_providers_is_rejected() -> None:
    """Every chain needs at least one provider."""
    text = "chains:\n  ethereum:\n    chain_id: 1\n    providers: []\n"
    assert problems_of(text) == [("chains.ethereum.providers", "at least one provider is required")]


@pytest.mark.parametrize(
    ("name", "fragment"), [("1", "all digits"), ("8453", "all digits"), ("Eth", "must match")]
)
def test_chain_names_must_be_lowercase_and_not_all_digits(name: str, fragment: str) -> None:
    """A chain name that could collide with a decimal chain-id route, or breaks the pattern, is rejected."""
    text = f"chains:\n  {name}:\n    chain_id: 5\n    providers: [{{id: a, http_url: 'https://a.example'}}]\n"
    [(path, message)] = problems_of(text)
    assert path == f"chains.{name}"
    assert fragment in message


@pytest.mark.parametrize("bad_id", ["Alpha", "-alpha", "al pha", "a" * 65])
def test_provider_ids_must_match_the_id_pattern(bad_id: str) -> None:
    """Provider ids are lowercase slugs: they appear in logs, metrics and the dashboard."""
    text = f"chains:\n  ethereum:\n    chain_id: 1\n    providers: [{{id: '{bad_id}', http_url: 'https://a.example'}}]\n"
    assert paths_of(text) == ["chains.ethereum.providers[0].id"]


def test_yaml_boolean_like_keys_stay_strings() -> None:
    """Keys are taken literally (`on:` is not True), so such a key is reported as an unknown key."""
    assert problems_of("on: 1\n" + MINIMAL) == [("on", "unknown key")]


def test_a_boolean_is_not_accepted_as_a_number() -> None:
    """`yes`/`true` never silently becomes 1 in an integer field."""
    assert paths_of(chain_yaml("max_attempts: true\n")) == ["chains.ethereum.max_attempts"]


# ---- durations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5", 1.5),
        (2, 2.0),
        (0.5, 0.5),
    ],
)
def test_durations_parse_to_float_seconds(raw: object, seconds: float) -> None:
    """Every documented duration form means the stated number of seconds."""
    assert parse_duration(raw) == seconds
    assert parse(chain_yaml(f"health_interval: {raw}\n")).chains["ethereum"].health_interval == seconds


@pytest.mark.parametrize("raw", ["5x", "abc", "-1s", "0", "0ms", "", "1 0s", "true", "1h30m", ".inf", "nan"])
def test_invalid_durations_are_reported_at_their_path(raw: str) -> None:
    """Malformed, negative, zero or non-finite durations are errors at the key that holds them."""
    [(path, message)] = problems_of(chain_yaml(f"health_interval: {raw!r}\n"))
    assert path == "chains.ethereum.health_interval"
    assert message.startswith("invalid duration")


def test_a_non_string_duration_like_a_boolean_is_rejected() -> None:
    """Booleans are not numbers of seconds."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(True)


def test_snapshot_interval_must_be_at_least_one_second() -> None:
    """Snapshots more often than once a second are rejected."""
    assert problems_of("persistence: {snapshot_interval: 500ms}\n" + MINIMAL) == [
        ("persistence.snapshot_interval", "must be at least 1s")
    ]


def test_empty_sqlite_path_disables_persistence() -> None:
    """`sqlite_path: ""` and `null` both mean no persistence."""
    for value in ('""', "null", "'${DB:-}'"):
        config = parse(f"persistence: {{sqlite_path: {value}}}\n" + MINIMAL)
        assert config.persistence.sqlite_path is None and not config.persistence.enabled


units = st.sampled_from(sorted(UNITS))
amounts = st.integers(min_value=1, max_value=10**6)


@given(amount=amounts, unit=units)
def test_any_integer_with_a_unit_parses_to_amount_times_unit(amount: int, unit: str) -> None:
    """`<n><unit>` is n × the unit's seconds, and formatting that value parses back to the same float."""
    seconds = parse_duration(f"{amount}{unit}")
    assert seconds == amount * UNITS[unit]
    assert parse_duration(format_duration(seconds)) == seconds


@given(seconds=st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trips_every_positive_float(seconds: float) -> None:
    """parse_duration(format_duration(x)) == x for every finite positive x."""
    assert parse_duration(format_duration(seconds)) == seconds


# ---- environment expansion ----------------------------------------------------------------------------


def test_a_missing_environment_variable_is_named_at_its_path() -> None:
    """`${VAR}` with VAR unset is an error at the value's dotted path, naming the variable."""
    text = chain_yaml(provider="ws_url: wss://alpha.example/${ALCHEMY_KEY}\n")
    assert problems_of(text) == [
        ("chains.ethereum.providers[0].ws_url", "environment variable ALCHEMY_KEY is not set")
    ]


def test_every_missing_variable_is_reported_not_just_the_first() -> None:
    """Expansion problems are collected across the whole tree, alongside validation problems elsewhere."""
    text = "server: {host: '${HOST}', port: '${PORT}'}\n" + chain_yaml("max_attempts: 0\n")
    problems = problems_of(text)
    assert ("server.host", "environment variable HOST is not set") in problems
    assert ("server.port", "environment variable PORT is not set") in problems
    assert "chains.ethereum.max_attempts" in [path for path, _ in problems]
    assert [path for path, _ in problems].count("server.port") == 1  # no second, derived problem


def test_variables_expand_in_values_and_their_results_are_validated() -> None:
    """`${VAR}` takes the value; an expanded string is coerced like a literal (port "4100" → 4100)."""
    config = parse(
        "server: {port: '${PORT}'}\n" + chain_yaml(provider="ws_url: wss://alpha.example/${KEY}\n"),
        env={"PORT": "4100", "KEY": "k1"},
    )
    assert config.server.port == 4100
    assert config.chains["ethereum"].providers[0].ws_url == "wss://alpha.example/k1"


@pytest.mark.parametrize(
    ("env", "expected"), [({}, "fallback"), ({"V": ""}, "fallback"), ({"V": "set"}, "set")]
)
def test_a_default_applies_when_the_variable_is_unset_or_empty(env: dict[str, str], expected: str) -> None:
    """`${VAR:-default}` is the value when non-empty, else the default."""
    assert parse("region: ${V:-fallback}\n" + MINIMAL, env).region == expected


def test_double_dollar_is_a_literal_dollar_and_a_lone_dollar_is_an_error() -> None:
    """`$$` escapes `$`; an unescaped `$` never silently stays in a value."""
    text = chain_yaml(provider="headers: {X-Token: 'a$$b$${X}'}\n")
    assert parse(text).chains["ethereum"].providers[0].headers["X-Token"] == "a$b${X}"
    [(path, message)] = problems_of(chain_yaml(provider="headers: {X-Token: 'a$b'}\n"))
    assert path == "chains.ethereum.providers[0].headers.X-Token" and "$$" in message


def test_keys_are_never_expanded() -> None:
    """Expansion is for values only: a `${...}` key stays literal (and is then an unknown key)."""
    assert problems_of("${KEY}: 1\n" + MINIMAL, env={"KEY": "region"}) == [("${KEY}", "unknown key")]


def test_livechain_region_from_the_environment_overrides_the_file() -> None:
    """LIVECHAIN_REGION, when set, wins over `region:`; when empty it does not."""
    assert parse("region: here\n" + MINIMAL, env={"LIVECHAIN_REGION": "eu-west"}).region == "eu-west"
    assert parse("region: here\n" + MINIMAL, env={"LIVECHAIN_REGION": ""}).region == "here"


# ---- secrets never leak -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("http_url", "ftp://host/v2/SECRET123"),
        ("http_url", "https:///v2/SECRET123"),
        ("http_url", "https://x.example/v2/SECRET123 trailing"),
        ("http_url", "https://x.example:99999/v2/SECRET123"),
        ("ws_url", "https://x.example/v2/SECRET123"),
        ("priority", "SECRET123"),
        ("headers", {"Authorization": "Bearer SECRET123\r\nX: y"}),
        ("headers", {"Bad Name": "SECRET123"}),
        ("headers", {"Host": "SECRET123"}),
    ],
)
def test_an_invalid_provider_value_is_reported_without_echoing_it(field: str, value: object) -> None:
    """Messages say what is wrong, never what the value was: URLs and headers carry API keys."""
    provider: dict[str, Any] = {"id": "alpha", "http_url": "https://x.example/v2/SECRET123", field: value}
    text = yaml.safe_dump({"chains": {"ethereum": {"chain_id": 1, "providers": [provider]}}})
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert info.value.problems, "the value must be rejected"
    assert all(path.startswith(f"chains.ethereum.providers[0].{field}") for path, _ in info.value.problems)
    assert "SECRET123" not in str(info.value)
    with pytest.raises(pydantic.ValidationError) as direct:
        Config.model_validate(yaml.safe_load(text))
    assert "SECRET123" not in str(direct.value)


def test_an_invalid_url_message_says_what_is_wrong() -> None:
    """The URL message names the requirement, e.g. `must be an http(s) URL`."""
    text = chain_yaml(providers="- id: beta\n  http_url: ftp://host/SECRET123\n")
    assert problems_of(text) == [("chains.ethereum.providers[1].http_url", "must be an http(s) URL")]


def test_provider_urls_and_headers_are_left_out_of_repr() -> None:
    """Logging a config object cannot leak a key."""
    config = parse(chain_yaml(provider="ws_url: wss://a.example/SECRET1\nheaders: {X-Key: SECRET2}\n"))
    text = repr(config) + str(config.chains["ethereum"].providers[0])
    assert "SECRET1" not in text and "SECRET2" not in text and "alpha.example" not in text


# ---- YAML and files -----------------------------------------------------------------------------------


def test_a_yaml_syntax_error_is_one_problem_at_file_line_column() -> None:
    """Broken YAML becomes a ConfigError located `<source>:line:col`, not a traceback."""
    with pytest.raises(ConfigError) as info:
        parse_config("server:\n  port: 1\n   host: [x\n", source="bad.yaml", env={})
    [(where, message)] = info.value.problems
    assert where.startswith("bad.yaml:3:")
    assert message.startswith("YAML syntax error")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    """A key given twice in one mapping is rejected; the second occurrence is located."""
    text = "server:\n  port: 1\n  host: a\n  port: 2\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="dup.yaml", env={})
    [(where, message)] = info.value.problems
    assert where == "dup.yaml:4:3"
    assert "duplicate key 'port'" in message


def test_yaml_merge_keys_still_work() -> None:
    """Anchors and `<<` merges are resolved, explicit keys winning over merged ones."""
    text = (
        "chains:\n"
        "  ethereum: &eth {chain_id: 1, deadline: 5s, providers: [{id: a, http_url: 'https://a.example'}]}\n"
        "  sepolia: {<<: *eth, chain_id: 11155111, deadline: 6s}\n"
    )
    config = parse(text)
    assert config.chains["ethereum"].deadline == 5.0
    assert config.chains["sepolia"].deadline == 6.0 and config.chains["sepolia"].chain_id == 11155111
    assert config.chains["sepolia"].providers[0].id == "a"


def test_an_empty_or_non_mapping_document_is_reported() -> None:
    """An empty file lacks `chains`; a list at the top level is not a config."""
    assert problems_of("") == [("chains", "required")]
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config("- a\n- b\n", env={})


def test_a_missing_file_is_a_config_error_with_a_clear_message(tmp_path: Path) -> None:
    """load_config never raises OSError: a missing file or a directory is a ConfigError naming the path."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert info.value.problems == [(str(tmp_path / "nope.yaml"), "config file not found")]
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path, env={})


def test_a_config_file_loads_and_its_errors_carry_the_file_name(tmp_path: Path) -> None:
    """load_config reads the file; YAML errors are located in it."""
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    assert load_config(good, env={}).chains["ethereum"].chain_id == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("chains: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert info.value.problems[0][0].startswith(f"{bad}:")


# ---- lookups and policies -----------------------------------------------------------------------------


def test_chains_are_found_by_name_or_decimal_chain_id() -> None:
    """Routes accept the chain name or its canonical decimal id; anything else finds nothing."""
    config = parse(
        chain_yaml(
            extra_chains="base: {chain_id: 8453, providers: [{id: a, http_url: 'https://a.example'}]}\n"
        )
    )
    assert config.chain_by_route("ethereum") is config.chains["ethereum"]
    assert config.chain_by_route("1") is config.chains["ethereum"]
    assert config.chain_by_route("8453") is config.chains["base"]
    for key in ("08453", "0x2105", "polygon", "", "+1", "١"):
        assert config.chain_by_route(key) is None


def test_provider_method_policy_excludes_denied_and_restricts_to_allowed() -> None:
    """deny globs exclude a provider; a non-empty allow list restricts it to those globs."""
    text = chain_yaml(
        "methods: {allow: ['debug_*'], deny: ['eth_sendRawTransaction']}\n",
        "methods: {allow: ['eth_*'], deny: ['eth_getLogs']}\n",
        providers="""
        - id: beta
          http_url: https://beta.example
        """,
    )
    chain = parse(text).chains["ethereum"]
    alpha, beta = chain.providers
    assert alpha.serves("eth_call") and not alpha.serves("eth_getLogs") and not alpha.serves("trace_block")
    assert not alpha.serves("ETH_CALL")  # case-sensitive
    assert beta.serves("trace_block")
    assert chain.methods.permits("debug_traceCall", default=False)
    assert not chain.methods.permits("eth_sendRawTransaction", default=True)
    assert chain.methods.permits("eth_call", default=True) and not chain.methods.permits("foo", default=False)


# ---- shipped files ------------------------------------------------------------------------------------


def test_the_shipped_example_and_public_configs_load_without_any_environment() -> None:
    """config/example.yaml and config/public.yaml are valid as shipped (defaults cover every ${...})."""
    load_config(REPO / "config" / "example.yaml", env={})
    public = load_config(REPO / "config" / "public.yaml", env={})
    assert {name: chain.chain_id for name, chain in public.chains.items()} == {
        "ethereum": 1,
        "base": 8453,
        "arbitrum": 42161,
        "optimism": 10,
        "polygon": 137,
    }
    for chain in public.chains.values():
        assert 2 <= len(chain.providers) <= 4
        assert all(p.http_url.startswith("https://") for p in chain.providers)
        assert all(p.ws_url is None or p.ws_url.startswith("wss://") for p in chain.providers)
        assert any(p.ws_url for p in chain.providers), "each chain needs a WebSocket provider to race"


def _schema_keys(model: type[pydantic.BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    nested = {
        "server": "ServerConfig", "ws": "WsServerConfig", "metrics": "MetricsConfig",
        "persistence": "PersistenceConfig", "logging": "LoggingConfig", "breaker": "BreakerConfig",
        "methods": "MethodPolicy", "cache": "CacheConfig / ChainCacheConfig", "integrity": "IntegrityConfig",
        "sessions": "SessionsConfig",
    }  # fmt: skip
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel) and name in nested:
            keys |= _schema_keys(annotation, path + ".")
    return keys


def _yaml_keys(node: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(f"{prefix}{key}")
            keys |= _yaml_keys(value, f"{prefix}{key}.")
    elif isinstance(node, list):
        for value in node:
            keys |= _yaml_keys(value, prefix)
    return keys


def test_the_example_config_documents_every_key_of_the_schema() -> None:
    """Each schema key (chains generalised to `ethereum`, providers to any item) appears in example.yaml."""
    raw = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    present = _yaml_keys(raw)
    expected = _schema_keys(Config) - {"chains"}
    expected |= {f"chains.ethereum.{k}" for k in _schema_keys(ChainConfig)}
    expected |= {f"chains.ethereum.providers.{k}" for k in _schema_keys(ProviderConfig)}
    assert expected - present == set()


# ---- ConfigStore --------------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "livechain.yaml"
    path.write_text(MINIMAL)
    return path


def test_a_good_reload_swaps_bumps_the_version_and_notifies_with_old_and_new(config_file: Path) -> None:
    """A successful reload replaces `current` atomically, increments `version`, reports what changed."""
    store = ConfigStore(config_file, load_config(config_file, env={}), env={})
    calls: list[tuple[Config, Config]] = []
    store.subscribe(lambda old, new: calls.append((old, new)))
    before = store.current
    config_file.write_text(
        MINIMAL.replace(
            "      - id: beta", "      - id: gamma\n        http_url: https://g.example\n      - id: beta"
        ).replace("priority: 7", "priority: 8")
        + "  base:\n    chain_id: 8453\n    providers: [{id: a, http_url: 'https://a.example'}]\n"
    )
    result = store.reload()
    assert result.ok and result.problems == []
    assert result.version == store.version == 2
    assert calls == [(before, store.current)]
    assert store.current is not before
    assert result.changed["chains_added"] == ["base"]
    assert result.changed["chains_removed"] == []
    assert result.changed["chains_changed"] == ["ethereum"]
    assert result.changed["providers_added"] == {"ethereum": ["gamma"]}
    assert result.changed["providers_removed"] == {}
    assert result.changed["providers_changed"] == {"ethereum": ["beta"]}  # priority and position changed


def test_a_reload_that_removes_things_lists_them(config_file: Path) -> None:
    """Removed chains and providers appear in `changed`."""
    store = ConfigStore(config_file, load_config(config_file, env={}), env={})
    config_file.write_text(
        "chains:\n  base:\n    chain_id: 8453\n    providers: [{id: a, http_url: 'https://a.example'}]\n"
    )
    changed = store.reload().changed
    assert changed["chains_added"] == ["base"] and changed["chains_removed"] == ["ethereum"]
    store.replace(parse(MINIMAL.replace("ethereum", "base").replace("chain_id: 1", "chain_id: 8453")))
    config_file.write_text(
        MINIMAL.replace("ethereum", "base")
        .replace("chain_id: 1", "chain_id: 8453")
        .split("      - id: beta")[0]
    )
    assert store.reload().changed["providers_removed"] == {"base": ["beta"]}


def test_a_bad_reload_keeps_the_last_good_config(config_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An invalid file is reported (ok False, problems) and changes nothing: same config, same version."""
    store = ConfigStore(config_file, load_config(config_file, env={}), env={})
    calls: list[object] = []
    store.subscribe(lambda old, new: calls.append(new))
    before = store.current
    config_file.write_text(MINIMAL.replace("https://alpha.example/rpc", "ftp://SECRET123.example"))
    with caplog.at_level(logging.WARNING, logger="livechain.config"):
        result = store.reload()
    assert not result.ok
    assert result.problems == [("chains.ethereum.providers[0].http_url", "must be an http(s) URL")]
    assert result.version == store.version == 1
    assert store.current is before and calls == []
    assert "SECRET123" not in caplog.text and "http_url" in caplog.text


def test_a_reload_with_no_changes_neither_swaps_nor_notifies(config_file: Path) -> None:
    """Reloading an unchanged file is ok but keeps the version, so subscribers never rebuild for nothing."""
    store = ConfigStore(config_file, load_config(config_file, env={}), env={})
    calls: list[object] = []
    store.subscribe(lambda old, new: calls.append(new))
    result = store.reload()
    assert result.ok and result.version == 1 and calls == []


def test_a_failing_subscriber_neither_blocks_the_swap_nor_other_subscribers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscriber that raises is logged; the swap stands and later subscribers still run."""
    store = ConfigStore(None, parse(MINIMAL), env={})
    seen: list[int] = []

    def broken(old: Config, new: Config) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.subscribe(lambda old, new: seen.append(new.server.port))
    replacement = parse("server: {port: 4100}\n" + MINIMAL)
    with caplog.at_level(logging.ERROR, logger="livechain.config"):
        store.replace(replacement)
    assert store.current is replacement and store.version == 2 and seen == [4100]
    assert "boom" in caplog.text


def test_unsubscribe_stops_notifications() -> None:
    """After unsubscribe() the callback is not called again (and a second unsubscribe is harmless)."""
    store = ConfigStore(None, parse(MINIMAL))
    calls: list[object] = []
    unsubscribe = store.subscribe(lambda old, new: calls.append(new))
    store.replace(parse(MINIMAL))
    unsubscribe()
    unsubscribe()
    store.replace(parse(MINIMAL))
    assert len(calls) == 1 and store.version == 3


def test_a_store_without_a_path_cannot_reload() -> None:
    """reload() without a file reports a problem instead of raising."""
    result = ConfigStore(None, parse(MINIMAL)).reload()
    assert not result.ok and result.version == 1 and result.problems
