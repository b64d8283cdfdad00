"""Server settings: every flag of `taskservice serve`, each also a TASKSERVICE_* environment variable."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taskservice.core.board.sql.turns import Fairness
from taskservice.core.engine import validation
from taskservice.core.model.errors import InvalidRequest
from taskservice.core.model.limits import MAX_WEIGHT

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_UNIT_BYTES = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, None: 1}


def parse_size(text: str) -> int:
    """'256MiB', '1GiB', '512KiB' or plain bytes ('1048576') -> bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: use e.g. 256MiB, 1GiB, 0 or a number of bytes")
    return int(match.group(1)) * _UNIT_BYTES[match.group(2)]


def parse_duration(text: str) -> float:
    """'250ms', '30s', '5m', '1h' or plain seconds ('90', '1.5') -> seconds."""
    try:
        return validation.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    # An SQLite file (the embedded default, one server), or a postgresql:// URL that several servers share.
    db: str = "taskservice.db"
    # How an SQLite --db decides: "memory" keeps the queue in this process, "sql" runs the lifecycle in SQL as on
    # PostgreSQL (the file the only truth). Until "sql" replaces it.
    # Engine processes, each a whole server on the same ports (SO_REUSEPORT) under one supervisor; 0: one per core.
    procs: int = 1
    # Set by a supervisor for the processes it runs: "slot/count/folder of the sibling sockets".
    supervised: str = ""
    metrics_port_file: str = ""
    workers: int = 4
    max_queue: int = 100_000
    # Bytes the queued tasks' args and labels may take in all.
    max_queue_bytes: int = 2**30
    # 0 means tasks without their own time limit run unbounded.
    default_time_limit: float = 0.0
    stop_grace: float = 5.0
    # Seconds running tasks get to finish after SIGTERM/SIGINT before they are stopped.
    drain: float = 10.0
    tasks: tuple[str, ...] = ()
    # The task types this server claims (empty: all it has loaded); for servers sharing a PostgreSQL database.
    only_types: tuple[str, ...] = ()
    # Labels (key, value) a task must carry for this server to claim it; for servers sharing PostgreSQL too.
    only_labels: tuple[tuple[str, str], ...] = ()
    # How tasks take turns within a priority (board/sql/turns.py).
    fairness: Fairness = field(default_factory=Fairness)
    # Every path argument must stay inside this folder.
    data_root: str = "data"
    # File tasks stop writing before their output would leave less than this free on its file system.
    min_free_space: int = 256 * 2**20
    # Where the server keeps per-task logs; empty: "<db file name without its suffix>-state" beside the db.
    state_dir: str = ""
    # The most the task logs may take in all; past it the logs of the oldest finished tasks go (0: no cap).
    max_logs_size: int = 2**30
    # TOML file of the commands the `command` task type may run; empty: none.
    commands: str = ""
    port_file: str = ""
    log_level: str = "INFO"
    # "text" for people, "json" for log collectors: one JSON object per line.
    log_format: str = "text"
    # TLS: a certificate and key make the server speak TLS only; a client CA also requires client certificates.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Bearer tokens, one per line; when set, every TaskService RPC needs one (health stays open).
    auth_token_file: str = ""
    # host:port for Prometheus metrics over HTTP; empty: no metrics endpoint.
    metrics_listen: str = ""
    # host:port of the HTTP/JSON API and the dashboard, in the same process; "off": none.
    http_listen: str = "127.0.0.1:8080"
    http_port_file: str = ""
    # The one origin whose pages may call the HTTP API from a browser (CORS); empty: none.
    http_cors_origin: str = ""
    # The path the HTTP face is served under, for a proxy that forwards /PREFIX/... unchanged ("/tasks"; "": root).
    http_path_prefix: str = ""
    # Host names the HTTP face answers besides loopback ones when it listens on loopback (DNS rebinding); listening
    # elsewhere, any Host unless this names some. "*": any; "*.example.com": that domain's names.
    http_allowed_hosts: tuple[str, ...] = ()
    # Open HTTP connections at most (never more than a quarter of the open files limit); past it, 503 and closed.
    http_max_connections: int = 4096
    # The task type the legacy POST /API/tasks call submits; empty: that call is off.
    legacy_task_type: str = ""
    # "process": every Python handler runs in a worker process; types may ask for one with isolation="process".
    isolation: str = "thread"
    # Worker processes (0: one per core); a process is replaced after this many tasks, or past this RSS (0: never).
    process_workers: int = 0
    process_max_tasks: int = 0
    process_max_rss: int = 0
    # With a shared database: how long a claim's lease lasts, how often a server renews its leases (and reaps the
    # expired ones of servers that died).
    lease: float = 30.0
    renew: float = 10.0
    # How often an idle server looks for work and stops without a hint (the hints come at once; this is the fallback).
    poll: float = 1.0
    # How long ended tasks (and their logs) are kept, unless a task was submitted with its own; 0 keeps them for ever.
    retention: float = 7 * 86400.0
    # How often the server pings an idle connection, so proxies and NATs keep WatchProgress streams open.
    keepalive_seconds: float = 30.0
    max_message_bytes: int = 16 * 1024 * 1024


def _env(environ: Mapping[str, str], name: str, default: str) -> str:
    return environ.get(f"TASKSERVICE_{name.upper().replace('-', '_')}", default)


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    d = Settings()
    p = argparse.ArgumentParser(
        prog="taskservice serve",
        description="Run the task service. Every flag can also be set as TASKSERVICE_<FLAG> (e.g. TASKSERVICE_DB).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def add_duration(flag: str, default: float | str, help: str) -> None:
        value = _env(env, flag.removeprefix("--").replace("-", "_"), str(default))
        p.add_argument(flag, type=parse_duration, default=parse_duration(value), help=help)

    p.add_argument("--listen", default=_env(env, "listen", d.listen), help="host:port to serve on (port 0: any)")
    p.add_argument(
        "--db",
        default=_env(env, "db", d.db),
        help="where tasks live: an SQLite file (one server), or postgresql://user@host/db (servers sharing it)",
    )
    p.add_argument(
        "--procs",
        type=int,
        default=int(_env(env, "procs", str(d.procs))),
        help="engine processes, each serving the same ports, sharing the database (0: one per core)",
    )
    p.add_argument("--supervised", default="", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=int(_env(env, "workers", str(d.workers))), help="worker threads")
    p.add_argument(
        "--max-queue",
        type=int,
        default=int(_env(env, "max_queue", str(d.max_queue))),
        help="queued tasks before Submit answers RESOURCE_EXHAUSTED",
    )
    p.add_argument(
        "--max-queue-bytes",
        type=parse_size,
        default=parse_size(_env(env, "max_queue_bytes", "1GiB")),
        help="bytes of args and labels the queued tasks may take in all before Submit answers RESOURCE_EXHAUSTED",
    )
    add_duration("--default-time-limit", "0", "time limit of tasks submitted without one (0: none)")
    add_duration(
        "--stop-grace", d.stop_grace, "how long a handler may take to return after a stop before it is abandoned"
    )
    add_duration("--drain", d.drain, "on SIGTERM/SIGINT: how long running tasks get to finish")
    env_tasks = [m for m in _env(env, "tasks", "").split(",") if m]
    p.add_argument(
        "--tasks",
        action="append",
        metavar="MODULE",
        default=None,
        help="import MODULE to register its task types (repeatable; env: comma-separated)",
    )
    p.add_argument(
        "--only-types",
        default=_env(env, "only_types", ""),
        metavar="TYPE,...",
        help="claim only tasks of these types (servers sharing a PostgreSQL database: a GPU node, a node near the "
        "data); the other types are left to the other servers",
    )
    p.add_argument(
        "--only-labels",
        default=_env(env, "only_labels", ""),
        metavar="KEY=VALUE,...",
        help="claim only tasks carrying every one of these labels (servers sharing a PostgreSQL database)",
    )
    p.add_argument(
        "--fairness-label",
        default=_env(env, "fairness_label", ""),
        metavar="KEY",
        help="within a priority, tasks take turns by this label's value (e.g. customer), whatever the limits; "
        "default: by the groups of the limits (every server on a database should say the same)",
    )
    p.add_argument(
        "--fairness-weights",
        default=_env(env, "fairness_weights", ""),
        metavar="VALUE=WEIGHT,...",
        help="with --fairness-label: a value's share of turns (default 1), e.g. bigco=3,trial=0.5",
    )
    p.add_argument("--data-root", default=_env(env, "data_root", d.data_root), help="folder path args must stay in")
    p.add_argument(
        "--min-free-space",
        type=parse_size,
        default=parse_size(_env(env, "min_free_space", str(d.min_free_space))),
        help="file tasks fail rather than leave less than this free where they write (e.g. 256MiB, 1GiB; 0: no check)",
    )
    p.add_argument(
        "--state-dir",
        default=_env(env, "state_dir", ""),
        help="folder for task logs (default: beside the db, named after it: tasks.db -> tasks-state)",
    )
    add_duration(
        "--lease",
        d.lease,
        "shared database: a running task's lease; another server reaps it this long after its server died",
    )
    add_duration("--renew", d.renew, "shared database: how often a server renews its leases and reaps expired ones")
    add_duration("--poll", d.poll, "how often an idle server looks for work and stops without a hint")
    add_duration("--retention", d.retention, "how long ended tasks and their logs are kept (e.g. 7d, 12h; 0: for ever)")
    p.add_argument(
        "--max-logs-size",
        type=parse_size,
        default=parse_size(_env(env, "max_logs_size", str(d.max_logs_size))),
        help="cap of all task logs together; past it the oldest finished tasks' logs are removed (0: no cap)",
    )
    p.add_argument("--commands", default=_env(env, "commands", ""), help="TOML file of commands tasks may run")
    p.add_argument("--port-file", default=_env(env, "port_file", ""), help="write the bound port here once serving")
    p.add_argument("--log-level", default=_env(env, "log_level", d.log_level), help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument(
        "--log-format", choices=("text", "json"), default=_env(env, "log_format", d.log_format), help="log line format"
    )
    p.add_argument("--tls-cert", default=_env(env, "tls_cert", ""), help="PEM certificate chain: serve TLS only")
    p.add_argument("--tls-key", default=_env(env, "tls_key", ""), help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca", default=_env(env, "tls_client_ca", ""), help="PEM CA bundle: require client certificates"
    )
    p.add_argument(
        "--auth-token-file",
        default=_env(env, "auth_token_file", ""),
        help="file of bearer tokens, one per line; re-read on SIGHUP",
    )
    p.add_argument(
        "--metrics-listen", default=_env(env, "metrics_listen", ""), help="host:port serving Prometheus /metrics"
    )
    p.add_argument(
        "--metrics-port-file",
        default=_env(env, "metrics_port_file", ""),
        help="write the bound metrics port here once serving",
    )
    p.add_argument(
        "--http-listen",
        default=_env(env, "http_listen", d.http_listen),
        help="host:port of the HTTP/JSON API and the dashboard (port 0: any; off: none)",
    )
    p.add_argument(
        "--http-port-file", default=_env(env, "http_port_file", ""), help="write the bound HTTP port here once serving"
    )
    p.add_argument(
        "--isolation",
        choices=("thread", "process"),
        default=_env(env, "isolation", d.isolation),
        help="where Python handlers run: worker threads, or worker processes (every core, a stop that kills)",
    )
    p.add_argument(
        "--process-workers",
        type=int,
        default=int(_env(env, "process_workers", str(d.process_workers))),
        help="worker processes for handlers run in processes (0: one per core)",
    )
    p.add_argument(
        "--process-max-tasks",
        type=int,
        default=int(_env(env, "process_max_tasks", str(d.process_max_tasks))),
        help="replace a worker process after this many tasks (0: never)",
    )
    p.add_argument(
        "--process-max-rss",
        type=parse_size,
        default=parse_size(_env(env, "process_max_rss", str(d.process_max_rss))),
        help="kill a worker process holding more memory than this, e.g. 1GiB, while it runs a task (which fails "
        "MemoryLimitExceeded) or after (0: never)",
    )
    p.add_argument(
        "--legacy-task-type",
        default=_env(env, "legacy_task_type", ""),
        help="the task type the legacy POST /API/tasks call submits, or command:NAME for a command of --commands; "
        "default: off",
    )
    p.add_argument(
        "--http-path-prefix",
        default=_env(env, "http_path_prefix", ""),
        help="serve the HTTP API and the dashboard under this path (e.g. /tasks/), for a proxy that forwards it as it "
        "is; default: at the root",
    )
    p.add_argument(
        "--http-cors-origin",
        default=_env(env, "http_cors_origin", ""),
        help="the one origin (e.g. https://ops.example.com) whose pages may call the HTTP API; default: none",
    )
    p.add_argument(
        "--http-allowed-hosts",
        default=_env(env, "http_allowed_hosts", ""),
        help="comma-separated Host names the HTTP face answers besides loopback ones (e.g. tasks.example.com, "
        "*.example.com, or * for any); a listener on loopback otherwise answers only localhost, 127.0.0.1, [::1]",
    )
    p.add_argument(
        "--http-max-connections",
        type=int,
        default=int(_env(env, "http_max_connections", str(d.http_max_connections))),
        help="open HTTP connections at most (and at most a quarter of the open files limit); past it a new one is "
        "answered 503 and closed",
    )
    p.set_defaults(env_tasks=env_tasks)
    return p


def _default_state_dir(db: str) -> str:
    """Beside the SQLite file, named after it; with a database URL (logs live in the database), in ./."""
    if db.startswith(("postgresql://", "postgres://")):
        return "taskservice-state"
    return str(Path(db).with_name(Path(db).stem + "-state"))


def _labels(p: argparse.ArgumentParser, text: str, flag: str = "--only-labels") -> tuple[tuple[str, str], ...]:
    """`key=value,key=value` as sorted pairs; a usage error when a pair has no `=`, a key twice, or a label no task
    could carry (the limits a Submit's labels are held to)."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, equals, value = item.partition("=")
        if not equals or key.strip() in pairs:
            p.error(f"{flag} takes key=value pairs, each key once, separated by commas; got {item!r}")
        pairs[key.strip()] = value.strip()
    try:
        validation.check_labels(pairs)
    except InvalidRequest as exc:
        p.error(f"{flag}: {'; '.join(f'{field}: {why}' for field, why in exc.field_violations)}")
    return tuple(sorted(pairs.items()))


def _fairness(p: argparse.ArgumentParser, label: str, weights_text: str) -> Fairness:
    """--fairness-label and its --fairness-weights; a usage error for a weight that is no number above 0."""
    if weights_text and not label:
        p.error("--fairness-weights weighs the values of --fairness-label: name the label too")
    weights: dict[str, float] = {}
    for value, weight in _labels(p, weights_text, "--fairness-weights"):
        try:
            weights[value] = float(weight)
        except ValueError:
            weights[value] = -1.0
        if not (math.isfinite(weights[value]) and 0 < weights[value] <= MAX_WEIGHT):
            p.error(f"--fairness-weights: the weight of {value!r} must be a number above 0, at most {MAX_WEIGHT:g}")
    try:
        validation.check_labels({label: ""} if label else {})
    except InvalidRequest:
        p.error(f"--fairness-label must be a label key of 1-{validation.MAX_LABEL_KEY} characters")
    return Fairness(label.strip(), weights)


def _looks_like_conninfo(db: str) -> bool:
    """A libpq "host=... dbname=..." string, which would otherwise become an oddly named SQLite file."""
    return bool(re.match(r"^\s*(host|dbname|user|port|hostaddr|service)\s*=", db))


def _path_prefix(p: argparse.ArgumentParser, given: str) -> str:
    """ "/tasks/", "tasks" or "/tasks" as "/tasks"; "/" or "" as "" (the root)."""
    prefix = "/" + given.strip().strip("/")
    if prefix == "/":
        return ""
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", prefix):
        p.error(f"--http-path-prefix takes a path of letters, digits and . _ ~ - between slashes, not {given!r}")
    return prefix


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    p = parser(environ)
    ns = p.parse_args(argv)
    if ns.workers < 1:
        p.error("--workers must be at least 1")
    if ns.max_queue_bytes < 1:
        p.error("--max-queue-bytes must be at least 1 byte")
    if ns.max_queue < 1:
        p.error("--max-queue must be at least 1")
    if bool(ns.tls_cert) != bool(ns.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if ns.tls_client_ca and not ns.tls_cert:
        p.error("--tls-client-ca needs --tls-cert and --tls-key")
    if not 0 < ns.renew < ns.lease:
        p.error("--renew must be more than 0 and less than --lease (a lease must be renewed before it expires)")
    if ns.http_max_connections < 1:
        p.error("--http-max-connections must be at least 1")
    if ns.procs < 0:
        p.error("--procs must be 0 (one per core) or more")
    if ns.poll <= 0:
        p.error("--poll must be more than 0")
    only_types = tuple(sorted({name.strip() for name in ns.only_types.split(",") if name.strip()}))
    only_labels = _labels(p, ns.only_labels)
    for flag, given in (("--only-types", only_types), ("--only-labels", only_labels)):
        if given and not ns.db.startswith(("postgresql://", "postgres://")):
            p.error(f"{flag} is for servers sharing a PostgreSQL database: alone on an SQLite file, a server would "
                    "leave the other tasks queued for ever")  # fmt: skip
    if _looks_like_conninfo(ns.db):
        p.error("--db takes a PostgreSQL database as a URL, postgresql://user@host:port/dbname, not key=value pairs")
    return Settings(
        listen=ns.listen,
        db=ns.db,
        procs=ns.procs,
        supervised=ns.supervised,
        metrics_port_file=ns.metrics_port_file,
        workers=ns.workers,
        max_queue=ns.max_queue,
        max_queue_bytes=ns.max_queue_bytes,
        default_time_limit=ns.default_time_limit,
        stop_grace=ns.stop_grace,
        drain=ns.drain,
        tasks=tuple(ns.tasks if ns.tasks is not None else ns.env_tasks),
        only_types=only_types,
        only_labels=only_labels,
        fairness=_fairness(p, ns.fairness_label, ns.fairness_weights),
        data_root=ns.data_root,
        min_free_space=ns.min_free_space,
        state_dir=ns.state_dir or _default_state_dir(ns.db),
        max_logs_size=ns.max_logs_size,
        lease=ns.lease,
        renew=ns.renew,
        poll=ns.poll,
        retention=ns.retention,
        commands=ns.commands,
        port_file=ns.port_file,
        log_level=ns.log_level.upper(),
        log_format=ns.log_format,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        tls_client_ca=ns.tls_client_ca,
        auth_token_file=ns.auth_token_file,
        metrics_listen=ns.metrics_listen,
        http_listen=ns.http_listen,
        http_port_file=ns.http_port_file,
        http_cors_origin=ns.http_cors_origin,
        http_path_prefix=_path_prefix(p, ns.http_path_prefix),
        http_max_connections=ns.http_max_connections,
        http_allowed_hosts=tuple(name.strip() for name in ns.http_allowed_hosts.split(",") if name.strip()),
        legacy_task_type=ns.legacy_task_type,
        isolation=ns.isolation,
        process_workers=ns.process_workers,
        process_max_tasks=ns.process_max_tasks,
        process_max_rss=ns.process_max_rss,
    )
