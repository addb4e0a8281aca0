"""RedisFailover rendering: names, security, probes, DNS announcing; the init scripts run for real with dash and
real redis-server / redis-sentinel processes."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from devtools.redis import RedisSentinelSet, start_sentinel_set
from devtools.waiting import free_port
from game_analytics.api.redisfailover import RedisFailoverSpec
from game_analytics.config import Images
from game_analytics.controller.common.render import Owner
from game_analytics.controller.redisfailover import names as rf_names
from game_analytics.controller.redisfailover import render as rf

from ..ha_pod_checks import assert_owned, assert_restricted, pod_specs

OWNER = Owner("gameanalytics.io/v1alpha1", "RedisFailover", "lb", "games", "uid-7", 3)
AUTH = {"authSecretRef": {"name": "lb-auth", "key": "password"}}


def _spec(**extra) -> RedisFailoverSpec:
    return RedisFailoverSpec.model_validate({**AUTH, **extra})


def _by(children, kind, name):
    return next(c for c in children if c["kind"] == kind and c["metadata"]["name"] == name)


def test_children_names_and_owner() -> None:
    children = rf.render(OWNER, _spec(), Images())
    names = [(c["kind"], c["metadata"]["name"]) for c in children]
    assert names == [
        ("ConfigMap", "lb-redis-config"), ("StatefulSet", "lb-redis"), ("StatefulSet", "lb-sentinel"),
        ("Service", "lb-redis-headless"), ("Service", "lb-redis-master"), ("Service", "lb-sentinel"),
        ("Service", "lb-sentinel-headless"), ("PodDisruptionBudget", "lb-redis"),
        ("PodDisruptionBudget", "lb-sentinel"), ("ServiceMonitor", "lb-redis"), ("ServiceMonitor", "lb-sentinel"),
    ]
    assert_owned(children, "uid-7")
    assert all(c["metadata"]["namespace"] == "games" for c in children)


def test_every_pod_is_restricted_with_probes_and_resources() -> None:
    for exporter in (True, False):
        pods = pod_specs(rf.render(OWNER, _spec(exporter={"enabled": exporter}), Images()))
        assert [n for n, _ in pods] == ["lb-redis", "lb-sentinel"]
        for name, pod in pods:
            assert_restricted(name, pod)


def test_statefulsets_services_and_anti_affinity() -> None:
    children = rf.render(OWNER, _spec(redis={"replicas": 3, "storage": {"size": "5Gi", "storageClassName": "fast"}}),
                         Images())
    redis_sts = _by(children, "StatefulSet", "lb-redis")
    assert redis_sts["spec"]["serviceName"] == "lb-redis-headless"
    assert redis_sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
    claim = redis_sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "5Gi" and claim["storageClassName"] == "fast"
    for sts in ("lb-redis", "lb-sentinel"):
        s = _by(children, "StatefulSet", sts)
        term = s["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"] == s["spec"]["selector"]["matchLabels"]
        assert rf_names.ANNOTATION_CONFIG_HASH in s["spec"]["template"]["metadata"]["annotations"]
    sentinel_sts = _by(children, "StatefulSet", "lb-sentinel")
    assert sentinel_sts["spec"]["serviceName"] == "lb-sentinel-headless"
    headless = _by(children, "Service", "lb-redis-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    master = _by(children, "Service", "lb-redis-master")["spec"]
    assert master["selector"][rf_names.LABEL_ROLE] == "master"
    assert set(redis_sts["spec"]["selector"]["matchLabels"].items()) < set(master["selector"].items())
    # The role label must not be in the StatefulSet selector or template: the operator patches it onto pods.
    assert rf_names.LABEL_ROLE not in redis_sts["spec"]["template"]["metadata"]["labels"]
    assert _by(children, "Service", "lb-sentinel")["spec"]["ports"][0]["port"] == 26379
    assert _by(children, "Service", "lb-sentinel-headless")["spec"]["clusterIP"] == "None"


def test_disruption_budgets_keep_sentinel_quorum() -> None:
    children = rf.render(OWNER, _spec(sentinel={"replicas": 5, "quorum": 3}), Images())
    assert _by(children, "PodDisruptionBudget", "lb-sentinel")["spec"]["minAvailable"] == 3
    assert _by(children, "PodDisruptionBudget", "lb-redis")["spec"]["maxUnavailable"] == 1
    assert _by(children, "StatefulSet", "lb-sentinel")["spec"]["replicas"] == 5


def test_sentinel_conf_announces_hostnames_and_quorum() -> None:
    spec = _spec(masterName="leaders", sentinel={"replicas": 5, "quorum": 3, "downAfterMilliseconds": 3000})
    conf = rf.render(OWNER, spec, Images())[0]["data"]["sentinel.conf"].splitlines()
    assert "sentinel resolve-hostnames yes" in conf and "sentinel announce-hostnames yes" in conf
    assert "sentinel announce-ip @ANNOUNCE_HOST@" in conf
    assert "sentinel monitor leaders @MASTER_HOST@ @MASTER_PORT@ 3" in conf
    assert "sentinel down-after-milliseconds leaders 3000" in conf
    # Hostnames must be enabled before the monitor line names the master by hostname.
    assert conf.index("sentinel resolve-hostnames yes") < conf.index("sentinel monitor leaders @MASTER_HOST@ @MASTER_PORT@ 3")
    redis_conf = rf.render(OWNER, spec, Images())[0]["data"]["redis.conf"].splitlines()
    assert "replica-announce-ip @ANNOUNCE_HOST@" in redis_conf


def test_auth_comes_from_the_secret_only() -> None:
    children = rf.render(OWNER, _spec(), Images())
    text = repr(children)
    redis_pod = _by(children, "StatefulSet", "lb-redis")["spec"]["template"]["spec"]
    env = {e["name"]: e for c in [*redis_pod["initContainers"], *redis_pod["containers"]] for e in c.get("env", [])}
    for var in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "lb-auth", "key": "password"}
    assert "requirepass" not in children[0]["data"]["redis.conf"]
    no_auth = rf.render(OWNER, RedisFailoverSpec(), Images())
    assert "secretKeyRef" in text and "secretKeyRef" not in repr(no_auth)


def test_sentinels_get_their_own_password_by_file_and_env_never_the_redis_one() -> None:
    spec = _spec(sentinel={"authSecretRef": {"name": "lb-sentinel", "key": "pw"}})
    children = rf.render(OWNER, spec, Images())
    own = {"name": "lb-sentinel", "key": "pw"}
    sentinel_pod = _by(children, "StatefulSet", "lb-sentinel")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in sentinel_pod["containers"]}
    env = lambda c: {e["name"]: e for e in c.get("env", [])}  # noqa: E731
    assert env(containers["sentinel"])["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == own  # its liveness PING
    assert env(containers["exporter"])["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == own
    assert "lb-auth" not in repr(sentinel_pod["containers"])  # the Redis password stays in the init container
    init = sentinel_pod["initContainers"][0]
    assert env(init)["SENTINEL_PASSWORD_FILE"]["value"] == rf.SENTINEL_AUTH_FILE
    volumes = {v["name"]: v for v in sentinel_pod["volumes"]}
    assert volumes["sentinel-auth"]["secret"] == {"secretName": "lb-sentinel", "items": [{"key": "pw", "path": "password"}],
                                                  "defaultMode": 0o400}
    # The Redis pods ask the Sentinels (init script, preStop hook) with the Sentinel password file.
    redis_pod = _by(children, "StatefulSet", "lb-redis")["spec"]["template"]["spec"]
    redis = next(c for c in redis_pod["containers"] if c["name"] == "redis")
    assert env(redis)["SENTINEL_PASSWORD_FILE"]["value"] == rf.SENTINEL_AUTH_FILE
    assert any(m["name"] == "sentinel-auth" for m in redis["volumeMounts"])
    # No value is ever in a config template.
    assert "secretKeyRef" not in repr(children[0]) and "pw" not in children[0]["data"]["sentinel.conf"]
    # Turning Sentinel auth on rolls the Sentinel and Redis pods.
    plain = rf.render(OWNER, _spec(), Images())
    for name in ("lb-sentinel", "lb-redis"):
        digest = lambda cs: _by(cs, "StatefulSet", name)["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
        assert digest(children) != digest(plain)


def test_the_master_pod_hands_over_in_its_pre_stop_hook() -> None:
    children = rf.render(OWNER, _spec(), Images())
    redis_pod = _by(children, "StatefulSet", "lb-redis")["spec"]["template"]["spec"]
    redis = next(c for c in redis_pod["containers"] if c["name"] == "redis")
    assert redis["lifecycle"]["preStop"]["exec"]["command"] == ["sh", f"{rf.TEMPLATE_DIR}/redis-prestop.sh"]
    assert "redis-prestop.sh" in children[0]["data"]
    names = {e["name"] for e in redis["env"]}
    assert {"POD_NAME", "NAMESPACE", "HEADLESS_SERVICE", "SENTINEL_HOST", "MASTER_NAME", "REDISCLI_AUTH"} <= names
    # the grace period outlasts the hook's bounded wait
    assert redis_pod["terminationGracePeriodSeconds"] > rf.PRESTOP_WAIT_SECONDS


def test_exporter_sidecar_toggle() -> None:
    on = rf.render(OWNER, _spec(), Images(redis_exporter="exp:1"))
    pod = _by(on, "StatefulSet", "lb-redis")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["redis", "exporter"]
    assert pod["containers"][1]["image"] == "exp:1"
    assert any(p["name"] == "metrics" for p in _by(on, "Service", "lb-redis-headless")["spec"]["ports"])
    sentinel_pod = _by(on, "StatefulSet", "lb-sentinel")["spec"]["template"]["spec"]
    assert [c["name"] for c in sentinel_pod["containers"]] == ["sentinel", "exporter"]
    assert sentinel_pod["containers"][1]["env"] == [{"name": "REDIS_ADDR", "value": "redis://localhost:26379"}]
    assert any(p["name"] == "metrics" for p in _by(on, "Service", "lb-sentinel-headless")["spec"]["ports"])
    monitor = _by(on, "ServiceMonitor", "lb-sentinel")["spec"]["selector"]["matchLabels"]
    assert monitor["app.kubernetes.io/component"] == "sentinel"
    off = rf.render(OWNER, _spec(exporter={"enabled": False}), Images())
    assert [c["name"] for c in _by(off, "StatefulSet", "lb-sentinel")["spec"]["template"]["spec"]["containers"]] == [
        "sentinel"]
    pod = _by(off, "StatefulSet", "lb-redis")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["redis"]
    assert not any(c["kind"] == "ServiceMonitor" for c in off)


def test_deterministic_and_config_hash_rolls_pods() -> None:
    a = rf.render(OWNER, _spec(), Images())
    b = rf.render(OWNER, copy.deepcopy(_spec()), Images())
    assert a == b
    h = lambda cs, n: _by(cs, "StatefulSet", n)["spec"]["template"]["metadata"]["annotations"][rf_names.ANNOTATION_CONFIG_HASH]  # noqa: E731
    c = rf.render(OWNER, _spec(sentinel={"quorum": 2, "downAfterMilliseconds": 9000}), Images())
    assert h(c, "lb-sentinel") != h(a, "lb-sentinel")
    assert h(c, "lb-redis") == h(a, "lb-redis")  # a Sentinel setting does not restart Redis


def test_role_labels() -> None:
    pods = ["lb-redis-0", "lb-redis-1", "lb-redis-2"]
    host = rf_names.redis_pod_host("lb", "games", 1)
    assert host == "lb-redis-1.lb-redis-headless.games.svc"
    labels = rf.role_labels(pods, f"{host}")
    assert [v[rf_names.LABEL_ROLE] for v in labels.values()] == ["replica", "master", "replica"]
    assert {v[rf_names.LABEL_ROLE] for v in rf.role_labels(pods, None).values()} == {"replica"}


# --- the scripts, for real: dash (POSIX sh), redis-cli, redis-server, redis-sentinel ----------------------------


def _write_templates(tmp: Path, spec: RedisFailoverSpec) -> Path:
    templates = tmp / "templates"
    templates.mkdir()
    for key, value in rf.config_data(OWNER, spec).items():
        (templates / key).write_text(value)
    return templates


def _start_from(binary: str, conf: Path, work: Path, password: str | None = None) -> tuple[subprocess.Popen, int]:
    """Start a real server from a generated config; its ``dir`` is pointed at ``work`` (the pod's /data does not
    exist here, and Redis checks ``dir`` while reading the file), command-line options override port and bind."""
    conf.write_text(conf.read_text().replace("dir /data\n", f"dir {work}\n"))
    port = free_port()
    proc = subprocess.Popen([binary, str(conf), "--port", str(port), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(port=port, password=password, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if client.ping():
                return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    _stop(proc)
    raise AssertionError(f"{binary} did not start from {conf}:\n{conf.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def _run(script: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["sh", str(script)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def sentinel_set():
    cluster = start_sentinel_set(master_name="mymaster")
    yield cluster
    cluster.stop()


def test_redis_init_without_sentinels_makes_ordinal_0_master(tmp_path: Path) -> None:
    spec = _spec()
    templates = _write_templates(tmp_path, spec)
    env = {"POD_NAME": "lb-redis-0", "NAMESPACE": "games", "HEADLESS_SERVICE": "lb-redis-headless",
           "SENTINEL_HOST": "127.0.0.1", "SENTINEL_PORT": "1", "MASTER_NAME": "mymaster", "QUERY_TIMEOUT": "2",
           "TEMPLATE_DIR": str(templates), "CONFIG_DIR": str(tmp_path),
           "REDIS_PASSWORD_FILE": str(_password_file(tmp_path, 'p"w\\d'))}
    out = _run(templates / "redis-init.sh", env)
    assert "(from default)" in out
    conf = (tmp_path / "redis.conf").read_text()
    assert "replica-announce-ip lb-redis-0.lb-redis-headless.games.svc" in conf
    assert "\nreplicaof " not in conf  # ordinal 0 is the initial master
    assert 'requirepass "\\x70\\x22\\x77\\x5c\\x64"' in conf  # every byte hex-escaped
    assert oct((tmp_path / "redis.conf").stat().st_mode & 0o777) == "0o600"

    _run(templates / "redis-init.sh", {**env, "POD_NAME": "lb-redis-2"})
    conf = (tmp_path / "redis.conf").read_text()
    assert "replicaof lb-redis-0.lb-redis-headless.games.svc 6379" in conf

    # The generated file is a valid redis.conf (quoting included): a real redis-server starts from it and
    # accepts exactly that password.
    (tmp_path / "data").mkdir()
    _run(templates / "redis-init.sh", env)
    proc, port = _start_from("redis-server", tmp_path / "redis.conf", tmp_path / "data", password='p"w\\d')
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
    finally:
        _stop(proc)


def _password_file(tmp_path: Path, password: str) -> Path:
    """The auth Secret's key as the pod sees it: a file (mounted from the Secret), no trailing newline."""
    path = tmp_path / "auth-password"
    path.write_bytes(password.encode())
    return path


#: a password that, pasted into a config, would add directives (issue 15: newline injection)
HOSTILE_PASSWORD = 'pw"\nrequirepass owned\nrename-command CONFIG ""\n\\"\r\nslaveof evil.example.com 6379'


@pytest.mark.parametrize("script,conf_name", [("redis-init.sh", "redis.conf"), ("sentinel-init.sh", "sentinel.conf")])
def test_a_newline_in_the_password_injects_no_directive(tmp_path: Path, script: str, conf_name: str) -> None:
    """Defect: a newline in a Redis password injected redis.conf directives through the init scripts. The
    password now comes from a mounted file and is written as one hex-escaped argument."""
    templates = _write_templates(tmp_path, _spec())
    env = {"POD_NAME": "lb-redis-0", "NAMESPACE": "games", "HEADLESS_SERVICE": "lb-redis-headless",
           "SENTINEL_HOST": "127.0.0.1", "SENTINEL_PORT": "1", "MASTER_NAME": "mymaster", "QUERY_TIMEOUT": "1",
           "TEMPLATE_DIR": str(templates), "CONFIG_DIR": str(tmp_path), "REDIS_REPLICAS": "1",
           "REDIS_STATEFULSET": "lb-redis", "REDIS_HEADLESS_SERVICE": "lb-redis-headless",
           "DEFAULT_MASTER_HOST": "127.0.0.1", "REDIS_PORT": "1", "WAIT_SECONDS": "0",
           "REDIS_PASSWORD_FILE": str(_password_file(tmp_path, HOSTILE_PASSWORD))}
    _run(templates / script, env)
    lines = (tmp_path / conf_name).read_text().splitlines()
    written = (tmp_path / conf_name).read_text()
    assert "owned" not in written and "evil.example.com" not in written and "rename-command" not in written
    assert not [line for line in lines if line.startswith(("slaveof", "rename-command"))]
    auth = [line for line in lines if line.startswith(("requirepass", "masterauth", "sentinel auth-pass"))]
    assert len(auth) == (2 if script == "redis-init.sh" else 1), auth
    if script == "redis-init.sh":  # a real redis-server reads the whole password, newlines and all
        (tmp_path / "data").mkdir()
        proc, port = _start_from("redis-server", tmp_path / conf_name, tmp_path / "data", password=HOSTILE_PASSWORD)
        try:
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(port=port, password="owned").ping()
        finally:
            _stop(proc)


def test_redis_init_follows_the_master_the_sentinels_report(tmp_path: Path, sentinel_set: RedisSentinelSet) -> None:
    templates = _write_templates(tmp_path, RedisFailoverSpec())
    host, port = sentinel_set.sentinels[1].address
    out = _run(templates / "redis-init.sh", {
        "POD_NAME": "lb-redis-0", "NAMESPACE": "games", "HEADLESS_SERVICE": "lb-redis-headless",
        "SENTINEL_HOST": host, "SENTINEL_PORT": str(port), "MASTER_NAME": "mymaster",
        "TEMPLATE_DIR": str(templates), "CONFIG_DIR": str(tmp_path)})
    master = sentinel_set.master
    assert "(from sentinel)" in out
    # Even ordinal 0 replicates from the master the Sentinels know (it may have been promoted elsewhere).
    assert f"replicaof {master.host} {master.port}" in (tmp_path / "redis.conf").read_text()

    # A redis-server started from this config really becomes a replica of that master, and the probe scripts
    # agree with its state.
    (tmp_path / "data").mkdir()
    proc, port = _start_from("redis-server", tmp_path / "redis.conf", tmp_path / "data")

    def probe(script: str) -> int:
        return subprocess.run(["sh", str(templates / script)], env={"PATH": "/usr/bin:/bin", "REDIS_PORT": str(port)},
                              capture_output=True, timeout=10).returncode

    try:
        client = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.info("replication")["master_port"] == master.port
        assert probe("redis-ready.sh") == 0 and probe("redis-alive.sh") == 0
        client.replicaof("127.0.0.1", free_port())  # a master nobody listens on: link down -> not ready
        time.sleep(0.3)
        assert probe("redis-ready.sh") != 0 and probe("redis-alive.sh") == 0
    finally:
        _stop(proc)
    assert probe("redis-alive.sh") != 0


def test_sentinel_init_config_is_accepted_by_redis_sentinel(tmp_path: Path, sentinel_set: RedisSentinelSet) -> None:
    templates = _write_templates(tmp_path, RedisFailoverSpec())
    master = sentinel_set.master
    # No Sentinel answers (port 1): the init script scans the Redis hosts and finds the master with a replica.
    out = _run(templates / "sentinel-init.sh", {
        "POD_NAME": "lb-sentinel-0", "NAMESPACE": "games", "HEADLESS_SERVICE": "lb-sentinel-headless",
        "SENTINEL_HOST": "127.0.0.1", "SENTINEL_PORT": "1", "MASTER_NAME": "mymaster",
        "REDIS_HOSTS": "127.0.0.1", "REDIS_PORT": str(master.port), "ANNOUNCE_HOST": "localhost",
        "TEMPLATE_DIR": str(templates), "CONFIG_DIR": str(tmp_path), "WAIT_SECONDS": "4"})
    assert "(from scan)" in out, out
    conf = (tmp_path / "sentinel.conf").read_text()
    assert f"sentinel monitor mymaster 127.0.0.1 {master.port} 2" in conf
    assert "sentinel announce-ip localhost" in conf

    (tmp_path / "data").mkdir()
    proc, port = _start_from("redis-sentinel", tmp_path / "sentinel.conf", tmp_path / "data")
    try:
        client = redis.Redis(port=port, decode_responses=True)
        assert client.sentinel_get_master_addr_by_name("mymaster") == ("127.0.0.1", master.port)
        # Sentinel rewrites the config it was started from (the reason it lives in a writable emptyDir).
        assert "sentinel myid" in (tmp_path / "sentinel.conf").read_text()
    finally:
        _stop(proc)
