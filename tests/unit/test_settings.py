from __future__ import annotations

import argparse
import dataclasses

import pytest

from taskservice.server.settings import Settings, parse, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("90", 90.0), ("1.5", 1.5), ("7d", 604800.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5s", "five", "5w", "1e3"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("0", 0), ("1048576", 2**20), ("512KiB", 2**19), ("256MiB", 2**28), ("2 GiB", 2**31)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "lots", "1.5GiB", "10MB", "1e9"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_min_free_space_from_the_flag_or_the_environment() -> None:
    assert parse([], environ={}).min_free_space == 256 * 2**20
    assert parse([], environ={"TASKSERVICE_MIN_FREE_SPACE": "1GiB"}).min_free_space == 2**30
    assert parse(["--min-free-space", "0"], environ={"TASKSERVICE_MIN_FREE_SPACE": "1GiB"}).min_free_space == 0
    with pytest.raises(SystemExit):
        parse(["--min-free-space", "a lot"], environ={})


def test_defaults_match_the_documented_ones() -> None:
    settings = parse([], environ={})
    assert dataclasses.replace(settings, state_dir="") == Settings()
    assert settings.state_dir == "taskservice-state" and settings.data_root == "data"
    assert (settings.listen, settings.db, settings.workers, settings.max_queue) == (
        "127.0.0.1:50051",
        "taskservice.db",
        4,
        100_000,
    )


def test_environment_variables_set_every_flag_and_flags_win() -> None:
    environ = {
        "TASKSERVICE_LISTEN": "127.0.0.1:6000",
        "TASKSERVICE_DB": "/srv/t.db",
        "TASKSERVICE_WORKERS": "8",
        "TASKSERVICE_MAX_QUEUE": "50",
        "TASKSERVICE_DEFAULT_TIME_LIMIT": "5m",
        "TASKSERVICE_STOP_GRACE": "2s",
        "TASKSERVICE_DRAIN": "1m",
        "TASKSERVICE_TASKS": "a.tasks,b.tasks",
    }
    settings = parse([], environ=environ)
    assert settings.listen == "127.0.0.1:6000" and settings.db == "/srv/t.db"
    assert (settings.workers, settings.max_queue) == (8, 50)
    assert (settings.default_time_limit, settings.stop_grace, settings.drain) == (300.0, 2.0, 60.0)
    assert settings.tasks == ("a.tasks", "b.tasks")
    assert parse(["--workers", "2", "--tasks", "c.tasks"], environ=environ).tasks == ("c.tasks",)
    assert parse(["--workers", "2"], environ=environ).workers == 2


def test_nonsense_worker_counts_are_usage_errors() -> None:
    with pytest.raises(SystemExit):
        parse(["--workers", "0"], environ={})


def test_a_libpq_key_value_db_is_a_usage_error_not_an_sqlite_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--db", "host=127.0.0.1 dbname=tasks user=postgres"], environ={})
    assert "postgresql://" in capsys.readouterr().err
    assert parse(["--db", "my-host=1.db"], environ={}).db == "my-host=1.db"


def test_only_types_are_a_set_for_servers_sharing_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    shared = "postgresql://u@db.example/tasks"
    assert parse(["--db", shared, "--only-types", "sleep, noop,sleep"], environ={}).only_types == ("noop", "sleep")
    assert parse(["--db", shared], environ={"TASKSERVICE_ONLY_TYPES": "demo"}).only_types == ("demo",)
    assert parse([], environ={}).only_types == ()
    with pytest.raises(SystemExit):
        parse(["--only-types", "sleep"], environ={})  # an SQLite file: the other types would wait for ever
    assert "--only-types is for servers sharing a PostgreSQL database" in capsys.readouterr().err


def test_only_labels_are_key_value_pairs_for_servers_sharing_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    shared = ["--db", "postgresql://u@db.example/tasks"]
    assert parse([*shared, "--only-labels", "region=eu, gpu=1"], environ={}).only_labels == (
        ("gpu", "1"),
        ("region", "eu"),
    )
    for bad, why in (("region", "key=value pairs"), ("a=1,a=2", "each key once"), ("=eu", "key must be 1-63")):
        with pytest.raises(SystemExit):
            parse([*shared, "--only-labels", bad], environ={})
        assert why in capsys.readouterr().err, bad
    with pytest.raises(SystemExit):
        parse(["--only-labels", "region=eu"], environ={})
    assert "--only-labels is for servers sharing a PostgreSQL database" in capsys.readouterr().err


def test_fairness_is_a_label_key_and_weights_of_its_values(capsys: pytest.CaptureFixture[str]) -> None:
    settings = parse(["--fairness-label", "customer", "--fairness-weights", "bigco=3, trial=0.5"], environ={})
    assert settings.fairness.label == "customer" and dict(settings.fairness.weights) == {"bigco": 3.0, "trial": 0.5}
    assert parse([], environ={"TASKSERVICE_FAIRNESS_LABEL": "team"}).fairness.label == "team"
    for args, why in (
        (["--fairness-weights", "a=2"], "name the label too"),
        (["--fairness-label", "c", "--fairness-weights", "a=0"], "above 0"),
        (["--fairness-label", "c", "--fairness-weights", "a=lots"], "above 0"),
        (["--fairness-label", "k" * 64], "label key of 1-63"),
    ):
        with pytest.raises(SystemExit):
            parse(args, environ={})
        assert why in capsys.readouterr().err, args


@pytest.mark.parametrize(("given", "prefix"), [("/tasks/", "/tasks"), ("tasks", "/tasks"), ("/a/b", "/a/b"), ("/", ""),
                                               ("", "")])  # fmt: skip
def test_the_http_path_prefix_is_one_form_of_a_path(given: str, prefix: str) -> None:
    assert parse(["--http-path-prefix", given], environ={}).http_path_prefix == prefix
    assert parse([], environ={"TASKSERVICE_HTTP_PATH_PREFIX": given}).http_path_prefix == prefix


@pytest.mark.parametrize("given", ["/a b", "/tasks?x=1", "/a//b", "/%2e"])
def test_a_prefix_no_path_could_be_is_refused(given: str) -> None:
    with pytest.raises(SystemExit):
        parse(["--http-path-prefix", given], environ={})
