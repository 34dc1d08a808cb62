"""Configuration: pydantic models over TOML tables; every error names the key and its line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from .errors import ConfigError
from .loops import LoopChoice
from .wire.protocol import MAX_FRAME, SeedUrlText, Url

TABLES = ("seed", "user")
LogLevel = Literal["debug", "info", "warning", "error"]
M = TypeVar("M", bound=BaseModel)
# a TOML file can only spell a path as a string: read one (with `~` expanded) despite strict mode
DataDir = Annotated[Path, Strict(False), AfterValidator(lambda p: p.expanduser())]


def _storage(value: str) -> str:
    if value == "sqlite" or re.fullmatch(r"nats://[^\s/]+(/[A-Za-z0-9_-]+)?", value):
        return value
    raise ValueError("must be 'sqlite' or nats://HOST:PORT,HOST:PORT,... (optionally /FLEET)")


class SeedConfig(BaseModel):
    """The `[seed]` table; see config.example.toml for what each key means."""

    model_config = ConfigDict(extra="forbid", strict=True)

    host: str = "127.0.0.1"
    port: int = Field(5001, ge=0, le=65535)
    name: str | None = Field(None, min_length=1, max_length=64)
    url: SeedUrlText | None = None
    peers: list[SeedUrlText] = []
    data_dir: DataDir | None = None
    # where the replicated state lives: "sqlite" (this seed's own database) or a fleet's NATS
    # JetStream cluster, "nats://H1:P1,H2:P2,H3:P3" (optionally "/FLEET" after the hosts)
    storage: Annotated[str, AfterValidator(_storage)] = "sqlite"
    log_level: LogLevel = "info"
    loop: LoopChoice | None = None  # the event loop (node/loops.py); unset: P2P_LOOP, else asyncio
    max_frame: int = Field(MAX_FRAME, ge=MAX_FRAME, le=16 * 1024 * 1024)
    max_connections: int = Field(10_000, ge=1)
    max_connections_per_address: int = Field(64, ge=1)
    new_names_per_minute: float = Field(30.0, gt=0)
    max_watch: int = Field(1_000, ge=1)
    rate: float = Field(200.0, gt=0)
    burst: float = Field(400.0, ge=1)
    peer_rate: float = Field(5_000.0, gt=0)
    peer_burst: float = Field(10_000.0, ge=1)
    max_seed_urls: int = Field(64, ge=0, le=1000)
    max_presence_per_peer: int = Field(200_000, ge=1)
    lease_days: float = Field(30.0, gt=0)
    claim_window: float = Field(1.0, ge=0)
    lookup_timeout: float = Field(2.0, gt=0)
    unreachable_after: float = Field(30.0, gt=0)
    first_sync_wait: float = Field(10.0, ge=0)
    session_max_age: float = Field(86_400.0, gt=0)
    ping_interval: float = Field(20.0, gt=0)
    queue_bytes: int = Field(1024 * 1024, ge=2 * MAX_FRAME)
    link_queue_bytes: int = Field(8 * 1024 * 1024, ge=2 * MAX_FRAME)
    relay_rate: int = Field(64 * 1024, ge=1)
    relay_burst: int = Field(1024 * 1024, ge=64 * 1024)
    mail_days: float = Field(21.0, gt=0)
    mail_per_recipient: int = Field(1000, ge=1)
    mail_per_recipient_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    mail_per_sender: int = Field(1000, ge=1)
    mail_per_sender_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    mail_per_pair: int = Field(128, ge=1)
    mail_per_pair_bytes: int = Field(1024 * 1024, ge=64 * 1024)
    mail_max_bytes: int = Field(1024 * 1024 * 1024, ge=64 * 1024)
    # mail of a sender name less than an hour old, growing to the full per-sender quota by
    # `mail_sender_grown_days`; shares of `mail_max_bytes` per source
    mail_new_sender: int = Field(128, ge=1)
    mail_new_sender_bytes: int = Field(64 * 1024, ge=1024)
    mail_sender_grown_days: float = Field(1.0, gt=0)
    mail_per_address_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024)
    mail_per_peer_link_bytes: int = Field(512 * 1024 * 1024, ge=64 * 1024)
    mail_per_stranger_link_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    take_max_ids: int = Field(256, ge=1, le=400)
    publish_rate: float = Field(20.0, gt=0)
    publish_burst: float = Field(1_000.0, ge=1)
    # per-link budgets (a second, and the burst): configured peers, then strangers
    stranger_days: float = Field(1.0, ge=0)
    peer_link_names: float = Field(1_000.0, gt=0)
    peer_link_names_burst: float = Field(1_000_000.0, ge=1)
    peer_link_presence: float = Field(2_000.0, gt=0)
    peer_link_presence_burst: float = Field(400_000.0, ge=1)
    peer_link_mail_bytes: float = Field(1024 * 1024.0, gt=0)
    peer_link_mail_bytes_burst: float = Field(1024 * 1024 * 1024.0, ge=64 * 1024)
    peer_link_takes: float = Field(1_000.0, gt=0)
    peer_link_takes_burst: float = Field(100_000.0, ge=1)
    peer_link_relay_bytes: float = Field(16 * 1024 * 1024.0, gt=0)
    peer_link_relay_bytes_burst: float = Field(64 * 1024 * 1024.0, ge=64 * 1024)
    stranger_link_names: float = Field(2.0, gt=0)
    stranger_link_names_burst: float = Field(2_000.0, ge=1)
    stranger_link_presence: float = Field(20.0, gt=0)
    stranger_link_presence_burst: float = Field(2_000.0, ge=1)
    stranger_link_mail_bytes: float = Field(16 * 1024.0, gt=0)
    stranger_link_mail_bytes_burst: float = Field(1024 * 1024.0, ge=64 * 1024)
    stranger_link_takes: float = Field(2.0, gt=0)
    stranger_link_takes_burst: float = Field(200.0, ge=1)
    stranger_link_relay_bytes: float = Field(64 * 1024.0, gt=0)
    stranger_link_relay_bytes_burst: float = Field(1024 * 1024.0, ge=64 * 1024)
    # r3 seed broadcast: offer the tree (off: flood every change as revision 2 does); the ids a
    # link may announce or graft (a second, burst) for a configured peer, then for a stranger
    broadcast_tree: bool = True
    peer_link_ids: float = Field(10_000.0, gt=0)
    peer_link_ids_burst: float = Field(1_000_000.0, ge=1)
    stranger_link_ids: float = Field(50.0, gt=0)
    stranger_link_ids_burst: float = Field(5_000.0, ge=1)

    def seed_name(self, port: int) -> str:
        return self.name or f"seed-{port}"


def _key_line(text: str, table: str, key: str) -> int | None:
    """The line where `key` is set inside `[table]` (or the table header), 1-based."""
    current = None
    header_line = None
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=") if key else None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        match = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
        if match:
            current = match.group(1).strip().strip('"')
            if current == table and header_line is None:
                header_line = number
            continue
        if current == table and pattern is not None and pattern.match(line):
            return number
    return header_line


def read_table(path: Path, table: str) -> dict[str, Any]:
    """Read one table of a TOML file; unknown tables and syntax errors are ConfigErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for top, value in data.items():
        if top not in TABLES or not isinstance(value, dict):
            line = _key_line(text, "", top) or _key_line(text, top, "")
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(
                f"{where}: unknown table or key {top!r}; the file holds the tables "
                + " and ".join(f"[{t}]" for t in TABLES)
            )
    return {"__text__": text, **data.get(table, {})}


def build(model: type[M], path: Path | None, table: str, overrides: dict[str, Any]) -> M:
    """Validate file values overlaid with command-line overrides (those that were given).

    An override of None is a flag not given: the file's value stays, and an error in it is
    reported with the file, key and line.
    """
    values: dict[str, Any] = read_table(path, table) if path else {}
    text = values.pop("__text__", "")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values.update(overrides)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        full = ".".join(str(p) for p in err["loc"])
        line = _key_line(text, table, key) if path and key not in overrides else None
        where = (
            f"{path}:{line}: " if line else (f"{path}: " if path and key not in overrides else "")
        )
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            raise ConfigError(
                f"{where}[{table}] unknown key {key!r}; known keys: {known}"
            ) from None
        raise ConfigError(f"{where}[{table}] {full}: {err['msg']}") from None


class UserConfig(BaseModel):
    """The `[user]` table; see config.example.toml for what each key means."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None
    seeds: list[SeedUrlText] = ["ws://127.0.0.1:5001"]
    host: str | None = None
    port: int = Field(0, ge=0, le=65535)
    advertise: Url | None = None
    relay_only: bool = False
    data_dir: DataDir | None = None
    log_level: LogLevel = "warning"
    loop: LoopChoice | None = None  # as the seed's
    expire_after: float = Field(21 * 86_400.0, gt=0)
    ack_timeout: float = Field(10.0, gt=0)
    retry_max: float = Field(30.0, gt=0)
    direct_timeout: float = Field(2.0, gt=0)
    batch_chats: bool = True  # r3: offer and accept `chats` frames on direct links
    relay_memory: float = Field(600.0, ge=0)
    relay_ack_timeout: float = Field(30.0, gt=0)
    max_frame: int = Field(MAX_FRAME, ge=MAX_FRAME, le=16 * 1024 * 1024)
    max_peer_connections: int = Field(256, ge=1)
    max_peer_connections_per_address: int = Field(16, ge=1)
    peer_rate: float = Field(10_000.0, gt=0)
    peer_burst: float = Field(20_000.0, ge=1)
    inbound_lookup_rate: float = Field(10.0, gt=0)
    inbound_lookup_burst: float = Field(20.0, ge=1)
    stranger_rate: float = Field(1.0, gt=0)
    stranger_burst: float = Field(10.0, ge=1)
    stranger_messages: int = Field(100, ge=1)
    stranger_bytes: int = Field(256 * 1024, ge=16 * 1024)
