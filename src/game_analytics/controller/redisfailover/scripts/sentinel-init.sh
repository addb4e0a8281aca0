#!/bin/sh
# Writes this pod's sentinel.conf into a writable directory (Sentinel rewrites its own config).
# Master: what the other Sentinels report; else a Redis pod reporting role:master with replicas attached;
# else the first reporting role:master; else ordinal 0. With SENTINEL_PASSWORD_FILE the Sentinel requires that
# password (requirepass; Sentinels use it with each other too); REDIS_PASSWORD_FILE is the Redis one (auth-pass).
set -eu
: "${REDIS_PORT:=6379}" "${SENTINEL_PORT:=26379}" "${QUERY_TIMEOUT:=5}" "${WAIT_SECONDS:=120}"
: "${TEMPLATE_DIR:=/etc/redis-templates}" "${CONFIG_DIR:=/etc/sentinel-run}"
# conf_quote FILE: the file's bytes as one double-quoted redis.conf argument, every byte as \xHH, so nothing in
# a password (a quote, a backslash, a newline) can end the argument or start a new directive.
conf_quote() {
  printf '"%s"' "$(od -An -v -tx1 "$1" | tr -d ' \n' | sed 's/../\\x&/g')"
}
announce="${ANNOUNCE_HOST:-$POD_NAME.$HEADLESS_SERVICE.$NAMESPACE.svc}"
if [ -z "${REDIS_HOSTS:-}" ]; then
  REDIS_HOSTS=""
  i=0
  while [ "$i" -lt "$REDIS_REPLICAS" ]; do
    REDIS_HOSTS="$REDIS_HOSTS $REDIS_STATEFULSET-$i.$REDIS_HEADLESS_SERVICE.$NAMESPACE.svc"
    i=$((i + 1))
  done
fi
default_master="${DEFAULT_MASTER_HOST:-$(echo $REDIS_HOSTS | cut -d' ' -f1)}"

# scli ARGS: redis-cli to a Sentinel, authenticated with the Sentinels' password (SENTINEL_PASSWORD_FILE) if any;
# never with the Redis password (REDISCLI_AUTH is dropped).
scli() {
  if [ -n "${SENTINEL_PASSWORD_FILE:-}" ] && [ -s "$SENTINEL_PASSWORD_FILE" ]; then
    REDISCLI_AUTH="$(cat "$SENTINEL_PASSWORD_FILE")" timeout "$QUERY_TIMEOUT" redis-cli --no-auth-warning "$@"
  else
    env -u REDISCLI_AUTH timeout "$QUERY_TIMEOUT" redis-cli "$@"
  fi
}

rcli() {
  if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ -s "$REDIS_PASSWORD_FILE" ]; then
    REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")" timeout "$QUERY_TIMEOUT" redis-cli --no-auth-warning "$@"
  else
    timeout "$QUERY_TIMEOUT" redis-cli "$@"
  fi
}

reply="$(scli -h "$SENTINEL_HOST" -p "$SENTINEL_PORT" --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null || true)"
master_host="$(printf '%s\n' "$reply" | sed -n 1p)"
master_port="$(printf '%s\n' "$reply" | sed -n 2p)"
source=sentinel
case "$master_port" in
  '' | *[!0-9]*)
    master_host=""; master_port="$REDIS_PORT"; source=default
    first_master=""
    for host in $REDIS_HOSTS; do
      info="$(rcli -h "$host" -p "$REDIS_PORT" INFO replication 2>/dev/null | tr -d '\r' || true)"
      case "$info" in
        *role:master*)
          [ -n "$first_master" ] || first_master="$host"
          slaves="$(printf '%s\n' "$info" | sed -n 's/^connected_slaves://p')"
          if [ "${slaves:-0}" -gt 0 ] && [ -z "$master_host" ]; then master_host="$host"; source=scan; fi
          ;;
      esac
    done
    if [ -z "$master_host" ] && [ -n "$first_master" ]; then master_host="$first_master"; source=scan; fi
    [ -n "$master_host" ] || master_host="$default_master"
    ;;
esac

# Sentinel refuses a `sentinel monitor` hostname that does not resolve: wait (bounded) until the master answers.
waited=0
while [ "$waited" -lt "$WAIT_SECONDS" ]; do
  if [ -n "$(rcli -h "$master_host" -p "$master_port" PING 2>/dev/null || true)" ]; then break; fi
  sleep 2
  waited=$((waited + 2))
done

out="$CONFIG_DIR/sentinel.conf"
tmp="$out.tmp"
umask 077
sed -e "s|@ANNOUNCE_HOST@|$announce|g" -e "s|@MASTER_HOST@|$master_host|g" -e "s|@MASTER_PORT@|$master_port|g" \
  "$TEMPLATE_DIR/sentinel.conf" > "$tmp"
if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ -s "$REDIS_PASSWORD_FILE" ]; then
  printf 'sentinel auth-pass %s %s\n' "$MASTER_NAME" "$(conf_quote "$REDIS_PASSWORD_FILE")" >> "$tmp"
fi
if [ -n "${SENTINEL_PASSWORD_FILE:-}" ] && [ -s "$SENTINEL_PASSWORD_FILE" ]; then
  printf 'requirepass %s\n' "$(conf_quote "$SENTINEL_PASSWORD_FILE")" >> "$tmp"
fi
mv "$tmp" "$out"
echo "sentinel-init: announce=$announce master=$master_host:$master_port (from $source)"
