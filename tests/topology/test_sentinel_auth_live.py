"""Sentinel authentication and the master hand-over of the preStop hook, on real redis-server / redis-sentinel
processes: the Sentinels refuse clients without their own password (and the Redis one), the workers' client
(``redis_client.connect``) and the operator's probe get in with it; the rendered scripts write a sentinel.conf that a
real Sentinel enforces; ``redis-prestop.sh`` on the master hands it over under leaderboard writes."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.redis import RedisSentinelSet, start_sentinel_set
from devtools.waiting import free_port, wait_for
from game_analytics.api.redisfailover import RedisFailoverSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.redisfailover import render as rf
from game_analytics.controller.redisfailover import sentinel as topo
from game_analytics.redis_client import connect
from game_analytics.settings import WorkerSettings

DATA_PASSWORD = "data-pw-7"
SENTINEL_PASSWORD = "sentinel pw\nwith a newline"  # the scripts hex-escape it; redis-py sends it as one argument
MASTER = "leaderboards"
OWNER = Owner("gameanalytics.io/v1alpha1", "RedisFailover", "lb", "games", "uid-7", 3)
SPEC = RedisFailoverSpec.model_validate({
    "masterName": MASTER, "redis": {"replicas": 2}, "authSecretRef": {"name": "lb-redis", "key": "password"},
    "sentinel": {"authSecretRef": {"name": "lb-sentinel", "key": "password"}}})


@pytest.fixture
def secured() -> Iterator[RedisSentinelSet]:
    cluster = start_sentinel_set(master_name=MASTER, down_after_ms=1000, failover_timeout_ms=3000,
                                 password=DATA_PASSWORD, sentinel_password=SENTINEL_PASSWORD)
    try:
        yield cluster
    finally:
        cluster.stop()


def _settings(cluster: RedisSentinelSet, sentinel_password: str | None = SENTINEL_PASSWORD) -> WorkerSettings:
    return WorkerSettings(redis_sentinels=[f"{h}:{p}" for h, p in cluster.sentinel_addresses], redis_master=MASTER,
                          redis_password=DATA_PASSWORD, redis_sentinel_password=sentinel_password)


def test_sentinels_refuse_clients_without_their_password(secured: RedisSentinelSet) -> None:
    host, port = secured.sentinel_addresses[0]
    with pytest.raises(redis.AuthenticationError):  # NOAUTH: no password at all
        redis.Redis(host=host, port=port, socket_timeout=2).execute_command(
            "SENTINEL", "get-master-addr-by-name", MASTER)
    with pytest.raises(redis.AuthenticationError):  # the Redis data password is not the Sentinels' password
        redis.Redis(host=host, port=port, password=DATA_PASSWORD, socket_timeout=2).ping()

    # The workers' client: Sentinel password to the Sentinels, Redis password to the master.
    client = connect(_settings(secured))
    client.zadd("leaderboard:auth", {"player-1": 1500.0})
    assert secured.master.client().zscore("leaderboard:auth", "player-1") == 1500.0
    # Without the Sentinel password no Sentinel names a master (redis-py: MasterNotFoundError).
    with pytest.raises(redis.RedisError):
        connect(_settings(secured, sentinel_password=None)).zadd("leaderboard:auth", {"player-2": 1.0})

    # The operator's probe: with the Sentinel password every Sentinel answers and they know each other (the
    # Sentinels authenticate to one another with requirepass); without it, none does.
    view = topo.probe(secured.sentinel_addresses, MASTER, password=SENTINEL_PASSWORD, timeout=1.0)
    assert len(view.reachable) == 3 and view.agreed_master == topo.format_address(*secured.master.address)
    assert all(r.known_sentinels == 3 and r.ckquorum_ok for r in view.reports), view
    refused = topo.probe(secured.sentinel_addresses, MASTER, password=None, timeout=1.0)
    assert not refused.reachable and all("uthentication" in (r.error or "") for r in refused.reports), refused


def _templates(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir()
    for key, value in rf.config_data(OWNER, SPEC).items():
        (templates / key).write_text(value)
    return templates


def _secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_bytes(value.encode())
    return str(path)


def _sh(script: Path, env: dict[str, str], timeout: float = 30) -> str:
    proc = subprocess.run(["sh", str(script)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_sentinel_init_writes_a_requirepass_a_real_sentinel_enforces(tmp_path: Path,
                                                                     secured: RedisSentinelSet) -> None:
    templates = _templates(tmp_path)
    host, port = secured.sentinel_addresses[1]
    out = _sh(templates / "sentinel-init.sh", {
        "POD_NAME": "lb-sentinel-0", "NAMESPACE": "games", "HEADLESS_SERVICE": "lb-sentinel-headless",
        "SENTINEL_HOST": host, "SENTINEL_PORT": str(port), "MASTER_NAME": MASTER, "REDIS_HOSTS": "127.0.0.1",
        "REDIS_PORT": str(secured.master.port), "ANNOUNCE_HOST": "localhost", "TEMPLATE_DIR": str(templates),
        "CONFIG_DIR": str(tmp_path), "WAIT_SECONDS": "4",
        "REDIS_PASSWORD_FILE": _secret_file(tmp_path, "redis-pw", DATA_PASSWORD),
        "SENTINEL_PASSWORD_FILE": _secret_file(tmp_path, "sentinel-pw", SENTINEL_PASSWORD)})
    assert "(from sentinel)" in out, out  # it asked an authenticated Sentinel, with the Sentinel password
    conf = (tmp_path / "sentinel.conf").read_text()
    assert "with a newline" not in conf and conf.count("requirepass ") == 1
    (tmp_path / "data").mkdir()
    conf_path = tmp_path / "sentinel.conf"
    conf_path.write_text(conf.replace("dir /data\n", f"dir {tmp_path / 'data'}\n"))
    port = free_port()
    proc = subprocess.Popen(["redis-sentinel", str(conf_path), "--port", str(port), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        authed = redis.Redis(port=port, password=SENTINEL_PASSWORD, socket_timeout=1, decode_responses=True)
        assert wait_for("the generated Sentinel to answer", lambda: _pings(authed), 10, interval=0.1)
        assert authed.sentinel_get_master_addr_by_name(MASTER) == ("127.0.0.1", secured.master.port)
        for password in (None, DATA_PASSWORD):
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(port=port, password=password, socket_timeout=1).ping()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _prestop_env(tmp_path: Path, cluster: RedisSentinelSet, server_port: int) -> dict[str, str]:
    host, port = cluster.sentinel_addresses[0]
    return {"ANNOUNCE_HOST": "127.0.0.1", "REDIS_PORT": str(server_port), "SENTINEL_HOST": host,
            "SENTINEL_PORT": str(port), "MASTER_NAME": MASTER, "REDISCLI_AUTH": DATA_PASSWORD,
            "PRESTOP_WAIT_SECONDS": "10",
            "SENTINEL_PASSWORD_FILE": _secret_file(tmp_path, "sentinel-pw", SENTINEL_PASSWORD)}


def test_prestop_hands_the_master_over_under_leaderboard_writes(tmp_path: Path, secured: RedisSentinelSet) -> None:
    """The master's preStop: writes pause for one controlled switch, no acknowledged write is lost, and the old
    master is already a replica of the new one when redis-server would stop."""
    templates = _templates(tmp_path)
    # Sentinel refuses to promote a replica it has not seen with a healthy link (NOGOODSLAVE): wait for that.
    assert wait_for("a healthy replica link in every Sentinel", lambda: topo.healthy(topo.conditions(
        topo.probe(secured.sentinel_addresses, MASTER, password=SENTINEL_PASSWORD), SPEC, 1)), 15, interval=0.2)
    client = connect(_settings(secured), socket_timeout=2)
    acked: list[tuple[float, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                client.zadd("leaderboard:handover", {f"p{i}": float(i)})
                acked.append((time.monotonic(), i))
                i += 1
            except redis.RedisError as exc:
                errors.append(type(exc).__name__)
            time.sleep(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert wait_for("100 acknowledged writes", lambda: len(acked) >= 100, 10, interval=0.05)
        started = time.monotonic()
        out = _sh(templates / "redis-prestop.sh", _prestop_env(tmp_path, secured, secured.master.port))
        hook = time.monotonic() - started
        assert "handed the master over" in out, out
        assert wait_for("writes after the hand-over", lambda: acked[-1][0] > started + hook, 10, interval=0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    times = [t for t, _ in acked if t >= started - 0.5]
    gap = max(b - a for a, b in zip(times, times[1:], strict=False))
    print(f"\npreStop hand-over: hook {hook:.2f} s, longest pause between acknowledged writes {gap:.2f} s, "
          f"{len(acked)} writes acknowledged, {len(errors)} raised ({sorted(set(errors))})")
    assert gap < 5.0
    promoted = secured.replica.client(decode_responses=True)
    assert promoted.info("replication")["role"] == "master"
    assert secured.master.client(decode_responses=True).info("replication")["role"] == "slave"
    # Writes were paused while the replica caught up: every acknowledged write is on the new master.
    assert promoted.zcard("leaderboard:handover") == len(acked)
    assert not errors, errors  # the client's retries rode out the switch


def test_prestop_on_a_replica_does_nothing(tmp_path: Path, secured: RedisSentinelSet) -> None:
    templates = _templates(tmp_path)
    out = _sh(templates / "redis-prestop.sh", _prestop_env(tmp_path, secured, secured.replica.port), timeout=10)
    assert out == ""
    view = topo.probe(secured.sentinel_addresses, MASTER, password=SENTINEL_PASSWORD)
    assert view.agreed_master == topo.format_address(*secured.master.address)
