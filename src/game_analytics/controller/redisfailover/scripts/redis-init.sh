#!/bin/sh
# Writes this pod's redis.conf into a writable directory (Sentinel sends CONFIG REWRITE after a failover).
# The master is the one the Sentinels report; when no Sentinel answers (first start) it is ordinal 0.
# The password is read from REDIS_PASSWORD_FILE (the mounted Secret), never from the environment; the Sentinels'
# own password (if they have one) from SENTINEL_PASSWORD_FILE.
set -eu
: "${REDIS_PORT:=6379}" "${SENTINEL_PORT:=26379}" "${QUERY_TIMEOUT:=5}"
: "${TEMPLATE_DIR:=/etc/redis-templates}" "${CONFIG_DIR:=/etc/redis-run}"
# conf_quote FILE: the file's bytes as one double-quoted redis.conf argument, every byte as \xHH, so nothing in
# a password (a quote, a backslash, a newline) can end the argument or start a new directive.
conf_quote() {
  printf '"%s"' "$(od -An -v -tx1 "$1" | tr -d ' \n' | sed 's/../\\x&/g')"
}
# scli ARGS: redis-cli to a Sentinel, authenticated with the Sentinels' password (SENTINEL_PASSWORD_FILE) if any;
# never with the Redis password (REDISCLI_AUTH is dropped).
scli() {
  if [ -n "${SENTINEL_PASSWORD_FILE:-}" ] && [ -s "$SENTINEL_PASSWORD_FILE" ]; then
    REDISCLI_AUTH="$(cat "$SENTINEL_PASSWORD_FILE")" timeout "$QUERY_TIMEOUT" redis-cli --no-auth-warning "$@"
  else
    env -u REDISCLI_AUTH timeout "$QUERY_TIMEOUT" redis-cli "$@"
  fi
}
announce="${ANNOUNCE_HOST:-$POD_NAME.$HEADLESS_SERVICE.$NAMESPACE.svc}"
default_master="${DEFAULT_MASTER_HOST:-${POD_NAME%-*}-0.$HEADLESS_SERVICE.$NAMESPACE.svc}"

reply="$(scli -h "$SENTINEL_HOST" -p "$SENTINEL_PORT" --raw SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null || true)"
master_host="$(printf '%s\n' "$reply" | sed -n 1p)"
master_port="$(printf '%s\n' "$reply" | sed -n 2p)"
source=sentinel
case "$master_port" in
  '' | *[!0-9]*) master_host="$default_master"; master_port="$REDIS_PORT"; source=default ;;
esac

out="$CONFIG_DIR/redis.conf"
tmp="$out.tmp"
umask 077
sed -e "s|@ANNOUNCE_HOST@|$announce|g" "$TEMPLATE_DIR/redis.conf" > "$tmp"
if [ "$master_host" != "$announce" ]; then
  printf 'replicaof %s %s\n' "$master_host" "$master_port" >> "$tmp"
fi
if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ -s "$REDIS_PASSWORD_FILE" ]; then
  quoted="$(conf_quote "$REDIS_PASSWORD_FILE")"
  printf 'requirepass %s\nmasterauth %s\n' "$quoted" "$quoted" >> "$tmp"
fi
mv "$tmp" "$out"
echo "redis-init: announce=$announce master=$master_host:$master_port (from $source)"
