#!/bin/sh
info="$(timeout 4 redis-cli --no-auth-warning -p "${REDIS_PORT:-6379}" INFO replication 2>/dev/null)" || exit 1
case "$info" in *role:master*) exit 0 ;; esac
case "$info" in *master_link_status:up*) exit 0 ;; esac
echo "redis-ready: replica not in sync with its master"
exit 1
