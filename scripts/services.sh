#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the test suite uses are running on 127.0.0.1.
# The python-svc machines start both before every session and CI run; this only
# restarts one that has stopped, with the same commands the machine uses.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! port_open 6379; then
    echo "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
for _ in $(seq 1 30); do
    port_open 5432 && port_open 6379 && exit 0
    sleep 1
done
echo "services: PostgreSQL or Redis is not reachable on 127.0.0.1" >&2
exit 1
