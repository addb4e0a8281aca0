#!/bin/sh
out="$(timeout 4 redis-cli --no-auth-warning -p "${REDIS_PORT:-6379}" PING 2>/dev/null)" || exit 1
case "$out" in PONG* | LOADING* | MASTERDOWN*) exit 0 ;; esac
echo "redis-alive: $out"
exit 1
