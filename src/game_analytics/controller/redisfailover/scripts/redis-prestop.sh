#!/bin/sh
# preStop of a Redis pod. A replica does nothing. The master hands itself over before redis-server stops, so that
# deleting its pod (drain, kubectl delete, eviction) costs one controlled switch instead of the Sentinels'
# down-after-milliseconds plus an election:
#   1. CLIENT PAUSE WRITE: writes wait instead of landing on a master that is going away, and the replicas catch up;
#   2. SENTINEL FAILOVER, then wait (at most PRESTOP_WAIT_SECONDS) until the Sentinels name another master;
#   3. REPLICAOF that master: the waiting writes are answered READONLY, which sends Sentinel-aware clients back to
#      the Sentinels at once (instead of when redis-server's shutdown closes their connections);
#   4. CLIENT UNPAUSE.
# Any failure (no Sentinel answers, no replica fit for promotion) ends the hook: redis-server then stops as before
# and the Sentinels fail over after down-after-milliseconds. The local server is reached with REDISCLI_AUTH (the
# Redis password); the Sentinels with SENTINEL_PASSWORD_FILE only.
set -u
: "${REDIS_PORT:=6379}" "${SENTINEL_PORT:=26379}" "${QUERY_TIMEOUT:=3}" "${PRESTOP_WAIT_SECONDS:=10}"
announce="${ANNOUNCE_HOST:-$POD_NAME.$HEADLESS_SERVICE.$NAMESPACE.svc}"

scli() {
  if [ -n "${SENTINEL_PASSWORD_FILE:-}" ] && [ -s "$SENTINEL_PASSWORD_FILE" ]; then
    REDISCLI_AUTH="$(cat "$SENTINEL_PASSWORD_FILE")" timeout "$QUERY_TIMEOUT" redis-cli --no-auth-warning \
      -h "$SENTINEL_HOST" -p "$SENTINEL_PORT" --raw "$@"
  else
    env -u REDISCLI_AUTH timeout "$QUERY_TIMEOUT" redis-cli -h "$SENTINEL_HOST" -p "$SENTINEL_PORT" --raw "$@"
  fi
}
lcli() { timeout "$QUERY_TIMEOUT" redis-cli --no-auth-warning -p "$REDIS_PORT" --raw "$@"; }
master_of() { scli SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | tr -d '\r' | tr '\n' ' '; }

[ "$(lcli ROLE 2>/dev/null | sed -n 1p)" = master ] || exit 0
before="$(master_of)"
case "$before" in
  "$announce $REDIS_PORT "*) ;;
  *) echo "redis-prestop: the Sentinels name ${before:-no master}, not this pod: nothing to hand over"; exit 0 ;;
esac
lcli CLIENT PAUSE "$(( (PRESTOP_WAIT_SECONDS + 2) * 1000 ))" WRITE >/dev/null 2>&1
out="$(scli SENTINEL FAILOVER "$MASTER_NAME" 2>&1)"
case "$out" in
  OK* | *INPROG*) ;;
  *) lcli CLIENT UNPAUSE >/dev/null 2>&1; echo "redis-prestop: SENTINEL FAILOVER refused: $out"; exit 0 ;;
esac
tenths=0
while [ "$tenths" -lt "$((PRESTOP_WAIT_SECONDS * 10))" ]; do
  now="$(master_of)"
  if [ -n "$now" ] && [ "$now" != "$before" ]; then
    # shellcheck disable=SC2086 # split "host port " into $1 $2
    set -- $now
    lcli REPLICAOF "$1" "$2" >/dev/null 2>&1
    lcli CLIENT UNPAUSE >/dev/null 2>&1
    echo "redis-prestop: handed the master over to $1:$2"
    exit 0
  fi
  sleep 0.1
  tenths=$((tenths + 1))
done
lcli CLIENT UNPAUSE >/dev/null 2>&1
echo "redis-prestop: no new master within ${PRESTOP_WAIT_SECONDS} s"
exit 0
