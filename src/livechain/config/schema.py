"""The config schema: strict (unknown keys rejected), frozen (lists are tuples, mappings are ``FrozenDict``).

Defaults are resolved once, here, at validation: a provider's priority defaults to its list position, a chain
knows its name. Messages never echo a value — provider URLs and headers carry API keys — and the URL and
header fields are left out of ``repr()`` for the same reason.

Cross-field problems (duplicate ids, ``attempt_timeout > deadline`` ...) are raised as one pydantic error of
type ``livechain_problems`` whose context carries every ``(relative path parts, message)``; ``load.py``
expands them into dotted paths.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from .costs import BudgetConfig, CostConfig, SloConfig, Tier
from .fields import (  # noqa: F401 — re-exported: the config's names live here
    CHAIN_NAME_RE,
    PROBLEMS_ERROR,
    PROVIDER_ID_RE,
    REGION_RE,
    RESERVED_HEADERS,
    STRATEGY_NAMES,
    AutoDuration,
    ChainName,
    Duration,
    FrozenDict,
    Glob,
    HeaderName,
    HeaderValue,
    HttpUrl,
    Int,
    NonNegativeInt,
    Origin,
    PositiveInt,
    ProviderId,
    Size,
    Strategy,
    Text,
    WsUrl,
    check_pattern,
    empty_to_none,
    fail,
    not_bool,
    problems_error,
)


class _Model(BaseModel):
    # revalidate_instances: a model instance passed in is validated into a new one, so validation may set the
    # private, derived attributes (a provider's position, a chain's name) without two parents sharing one.
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, revalidate_instances="always"
    )


class MethodPolicy(_Model):
    """Method globs (``fnmatch``, case-sensitive)."""

    allow: tuple[Glob, ...] = ()
    deny: tuple[Glob, ...] = ()

    def allows(self, method: str) -> bool:
        """True when ``method`` matches an allow glob."""
        return any(fnmatchcase(method, glob) for glob in self.allow)

    def denies(self, method: str) -> bool:
        """True when ``method`` matches a deny glob."""
        return any(fnmatchcase(method, glob) for glob in self.deny)

    def permits(self, method: str, *, default: bool) -> bool:
        """Chain rule: deny wins, then allow, then ``default`` (whether the method is in the default read set)."""
        if self.denies(method):
            return False
        return self.allows(method) or default


class BreakerConfig(_Model):
    failure_threshold: PositiveInt = 5
    recovery_timeout: Duration = 10.0
    success_threshold: PositiveInt = 2
    half_open_probes: PositiveInt = 1


class ProviderConfig(_Model):
    id: ProviderId
    http_url: HttpUrl = Field(repr=False)
    ws_url: Annotated[WsUrl | None, BeforeValidator(empty_to_none)] = Field(default=None, repr=False)
    priority: Int | None = None
    max_connections: PositiveInt = 32
    headers: Annotated[dict[HeaderName, HeaderValue], AfterValidator(FrozenDict)] = Field(
        default_factory=FrozenDict, repr=False
    )
    methods: MethodPolicy = Field(default_factory=MethodPolicy)
    #: the eth_getLogs block range this provider accepts (None: unknown until a refusal says)
    max_logs_range: PositiveInt | None = None
    #: may a larger eth_getLogs range be split into several requests to it (false: pay-per-request plans)
    split_logs: bool = True
    #: can it answer state queries about old blocks ("auto": probed at start, learned from pruned-state errors)
    archive: bool | Literal["auto"] = "auto"
    #: what a request costs (None: free); `tier`: free | paid | reserve (default: free without a cost, else
    #: paid); `budget`: spend allowed per day/month (see config/costs.py)
    cost: CostConfig | None = None
    tier: Tier | None = None
    budget: BudgetConfig | None = None
    #: Livechain's health checks and probes to it per second at most; past it a check is skipped (a paid plan is
    #: not burnt on Livechain's own probing; with the default `health_interval` it sends ~0.4 a second)
    own_rate: Annotated[float, Field(gt=0)] = 10.0

    _position: int = PrivateAttr(default=0)

    @property
    def position(self) -> int:
        """Index in the chain's provider list."""
        return self._position

    @property
    def effective_priority(self) -> int:
        """``priority`` if configured, else the position in the list (lower goes first)."""
        return self.priority if self.priority is not None else self._position

    @property
    def effective_tier(self) -> Tier:
        return self.tier if self.tier is not None else ("free" if self.cost is None else "paid")

    def serves(self, method: str) -> bool:
        """Per-provider policy: deny globs exclude; a non-empty allow list restricts to its globs."""
        if self.methods.denies(method):
            return False
        return not self.methods.allow or self.methods.allows(method)


def _check_providers(value: tuple[ProviderConfig, ...]) -> tuple[ProviderConfig, ...]:
    if not value:
        raise fail("providers", "at least one provider is required")
    return value


class CachedMethod(_Model):
    """How long a method's head-dependent answers live: at most until the next head, and `ttl` when shorter."""

    ttl: Annotated[Duration | None, BeforeValidator(empty_to_none)] = None


class ChainCacheConfig(_Model):
    enabled: bool = True
    #: add, remove or re-time methods: method → {ttl: 2s} (added or re-timed) | false (never cached)
    methods: Annotated[dict[Text, CachedMethod | Literal[False]], AfterValidator(FrozenDict)] = Field(
        default_factory=FrozenDict
    )


class Quorum(_Model):
    """Ask `quorum` providers at once; the answer most of them give wins (a majority, or the client gets an
    error saying they disagree); the outvoted ones are recorded."""

    quorum: Annotated[int, BeforeValidator(not_bool), Field(ge=2, le=16)]


class Highest(_Model):
    """Ask `highest` providers at once; the highest quantity wins (nonces, block numbers)."""

    highest: Annotated[int, BeforeValidator(not_bool), Field(ge=2, le=16)]


#: how several providers answer one method: broadcast (every healthy one at once, the first success answers;
#: eth_sendRawTransaction), highest (3 at once, or {highest: N}), first_non_null (one after another until one
#: answers non-null), {quorum: K}; false removes a default
Consensus = Literal["broadcast", "highest", "first_non_null"] | Quorum | Highest | Literal[False]
CONSENSUS_DEFAULTS = {"eth_getTransactionCount": "highest"}


def _yaml_off(value: object) -> object:
    """YAML reads a bare `off` as false: it means "off" here."""
    return "off" if value is False else value


class IntegrityConfig(_Model):
    #: off | observe (a failed check is logged, counted, shown; the answer flows) | enforce (the answer is
    #: discarded, the request fails over, the provider is quarantined for `quarantine`)
    mode: Annotated[Literal["off", "observe", "enforce"], BeforeValidator(_yaml_off)] = "observe"
    quarantine: Duration = 30.0
    #: false for a chain whose block hash is not keccak256(rlp(header)) in Ethereum's layout (e.g. zkSync Era)
    header_hash: bool = True
    #: empty answers (a null by hash, no logs) confirmed with a second provider, at most this many per second
    #: in observe (off the request path); in enforce every one, before the client gets it
    confirm_per_second: Annotated[float, Field(ge=0)] = 2.0


class SessionsConfig(_Model):
    """Per-client consistency: a client (an API key, a WebSocket connection, an X-Livechain-Session value) is
    never served a block below the highest it was already given."""

    enabled: bool = True
    max: PositiveInt = 10_000  # sessions remembered per chain (the least recently active forgotten first)
    idle: Duration = 600.0  # a session inactive this long is forgotten


class FiltersConfig(_Model):
    """Stateful filters (eth_newFilter …), served by Livechain from its raced feeds."""

    ttl: Duration = 300.0  # a filter not polled this long expires ("filter not found": clients recreate it)
    max: PositiveInt = 10_000  # filters on the chain
    max_per_client: PositiveInt = 100  # filters per API key, else per client address
    max_entries: PositiveInt = 10_000  # entries buffered per filter between two polls (past it: an error)


class CacheConfig(_Model):
    """The response cache of this process (every chain shares its bytes)."""

    enabled: bool = True
    max_bytes: Size = 64 * 1024 * 1024
    max_entry_bytes: Size = 1024 * 1024


class ChainConfig(_Model):
    chain_id: PositiveInt
    strategy: Strategy = "leaderboard"
    deadline: Duration = 10.0
    attempt_timeout: Duration = 4.0
    max_attempts: PositiveInt = 3
    max_lag_blocks: NonNegativeInt = 5
    batch_limit: PositiveInt = 100
    max_block_range: NonNegativeInt = 10_000
    health_interval: Duration = 5.0
    ws_liveness: Duration = 10.0
    race_window: Duration = 30.0
    hedge_after: Annotated[Duration | None, BeforeValidator(empty_to_none)] = None  # None/"" = no hedging
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    methods: MethodPolicy = Field(default_factory=MethodPolicy)
    #: None: the providers' `finalized` block tag; N: N blocks behind the best head (chains without the tag)
    finality_depth: NonNegativeInt | None = None
    cache: ChainCacheConfig = Field(default_factory=ChainCacheConfig)
    #: identical requests in flight at the same time share one upstream attempt
    coalesce: bool = True
    #: a provider's head further than this above every other provider's is not believed (see README)
    max_head_lead: PositiveInt = 64
    consensus: Annotated[dict[Text, Consensus], AfterValidator(FrozenDict)] = Field(default_factory=FrozenDict)
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    #: how far back eth_subscribe's `fromBlock` (a resumed subscription) may reach, in blocks
    max_resume_blocks: PositiveInt = 1_000
    #: the service level `cheapest` routes by (config/costs.py)
    slo: SloConfig = Field(default_factory=SloConfig)
    #: a gap in the head stream longer than this is not backfilled block by block: it skips ahead (logged, an event)
    max_backfill_blocks: PositiveInt = 1_000
    #: no new head for this long: the chain (a provider: its head) is stalled. auto: 3 × the observed block
    #: time, at least 3 s, 60 s before a block time is known (see livechain.chains.stall)
    stall_after: AutoDuration = "auto"
    providers: Annotated[tuple[ProviderConfig, ...], AfterValidator(_check_providers)]

    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """The chain's key in ``chains`` (empty for a ChainConfig built outside a Config)."""
        return self._name

    def provider(self, provider_id: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    @property
    def providers_by_priority(self) -> tuple[ProviderConfig, ...]:
        """Providers by ``effective_priority``, ties in list order."""
        return tuple(sorted(self.providers, key=lambda p: (p.effective_priority, p.position)))

    @model_validator(mode="after")
    def _cross_check(self) -> ChainConfig:
        problems: list[tuple[tuple[object, ...], str]] = []
        if self.attempt_timeout > self.deadline:
            problems.append((("attempt_timeout",), "must be <= deadline"))
        first_index: dict[str, int] = {}
        for index, provider in enumerate(self.providers):
            provider._position = index
            if provider.id in first_index:
                problems.append(
                    (
                        ("providers", index, "id"),
                        f"duplicate provider id (also providers[{first_index[provider.id]}])",
                    )
                )
            else:
                first_index[provider.id] = index
        if problems:
            raise problems_error(problems)
        return self


class WsServerConfig(_Model):
    max_message_bytes: PositiveInt = 1_048_576
    max_subscriptions: PositiveInt = 100
    send_queue: PositiveInt = 2048
    ping_interval: Duration = 20.0
    ping_timeout: Duration = 20.0


class ServerConfig(_Model):
    host: Text = "127.0.0.1"
    port: Annotated[int, BeforeValidator(not_bool), Field(ge=0, le=65535)] = 4000
    max_body_bytes: PositiveInt = 2_097_152
    header_timeout: Duration = 10.0
    idle_timeout: Duration = 75.0
    shutdown_grace: Duration = 10.0
    max_connections_per_ip: PositiveInt = 512
    cors_origins: tuple[Origin, ...] = ("*",)
    ws: WsServerConfig = Field(default_factory=WsServerConfig)


class MetricsConfig(_Model):
    retention: Duration = 86_400.0
    max_entries: PositiveInt = 86_400
    window: Duration = 300.0

    @model_validator(mode="after")
    def _cross_check(self) -> MetricsConfig:
        if self.window > self.retention:
            raise problems_error([(("window",), "must be <= retention")])
        return self


def _at_least_one_second(value: float) -> float:
    if value < 1.0:
        raise fail("duration", "must be at least 1s")
    return value


class PersistenceConfig(_Model):
    sqlite_path: Annotated[Text | None, BeforeValidator(empty_to_none)] = "livechain.sqlite"
    snapshot_interval: Annotated[Duration, AfterValidator(_at_least_one_second)] = 3600.0
    compare: tuple[Text, ...] = ()  # other SQLite files whose snapshots (other regions) are loaded read-only

    @property
    def enabled(self) -> bool:
        return self.sqlite_path is not None


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class LoggingConfig(_Model):
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Literal["json", "text"] = "json"


class RateLimit(_Model):
    rate: Annotated[float, Field(ge=0)] = 0.0  # JSON-RPC requests per second; 0 = unlimited
    burst: Annotated[int, BeforeValidator(not_bool), Field(ge=0)] = 0  # bucket size; 0 = max(1, rate)


class ApiKey(_Model):
    name: ProviderId  # shown in logs and metrics instead of the key
    key: Annotated[Text, Field(min_length=8)] = Field(repr=False)
    rate: Annotated[float, Field(ge=0)] = 0.0
    burst: Annotated[int, BeforeValidator(not_bool), Field(ge=0)] = 0


class AuthConfig(_Model):
    keys: tuple[ApiKey, ...] = ()  # when non-empty, every JSON-RPC request needs one of these keys
    per_ip: RateLimit = Field(default_factory=RateLimit)
    trust_forwarded_for: bool = False  # take the client IP from X-Forwarded-For (only behind your own proxy)

    @model_validator(mode="after")
    def _cross_check(self) -> AuthConfig:
        problems: list[tuple[tuple[object, ...], str]] = []
        names: dict[str, int] = {}
        keys: dict[str, int] = {}
        for index, entry in enumerate(self.keys):
            if entry.name in names:
                problems.append((("keys", index, "name"), f"duplicate key name (also keys[{names[entry.name]}])"))
            if entry.key in keys:
                problems.append((("keys", index, "key"), f"duplicate key (also keys[{keys[entry.key]}])"))
            names.setdefault(entry.name, index)
            keys.setdefault(entry.key, index)
        if problems:
            raise problems_error(problems)
        return self


class Config(_Model):
    region: Annotated[str, check_pattern(REGION_RE, "region")] = "local"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    persistence: PersistenceConfig = Field(default_factory=PersistenceConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    chains: Annotated[dict[ChainName, ChainConfig], AfterValidator(FrozenDict)]

    _by_id: dict[int, ChainConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems: list[tuple[tuple[object, ...], str]] = []
        by_id: dict[int, ChainConfig] = {}
        for name, chain in self.chains.items():
            chain._name = name
            other = by_id.get(chain.chain_id)
            if other is not None:
                problems.append(
                    (("chains", name, "chain_id"), f"chain_id already used by chain {other.name}")
                )
            else:
                by_id[chain.chain_id] = chain
        if not self.chains:
            problems.append((("chains",), "at least one chain is required"))
        if problems:
            raise problems_error(problems)
        self._by_id = by_id
        return self

    def chain_by_route(self, key: str) -> ChainConfig | None:
        """The chain a route segment names: its name, or its chain id in canonical decimal (``8453``)."""
        chain = self.chains.get(key)
        if chain is not None:
            return chain
        if key.isascii() and key.isdigit() and str(int(key)) == key:
            return self._by_id.get(int(key))
        return None
