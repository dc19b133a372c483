#!/usr/bin/env bash
# A Spark standalone cluster on this machine, on loopback only: one master and
# two workers of one core each, run by the Spark inside the pip pyspark package.
#
#   scripts/cluster.sh up       start what is not running, wait until both workers registered
#   scripts/cluster.sh down     stop the workers, then the master (their executors go with them)
#   scripts/cluster.sh status   the master's view: workers, cores in use, applications
#
# Exit codes: 0 done / up, 1 failed (up timed out, a daemon died), 3 down (status),
# 4 up but not every worker registered (status).
# Logs, pid files and the workers' work dirs (executor stdout/stderr per application)
# live under CLUSTER_DIR (default data/cluster, git-ignored). Run it under `nice`
# and the daemons and every executor they start inherit the niceness.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
STATE=${CLUSTER_DIR:-$ROOT/data/cluster}
HOST=127.0.0.1
MASTER_PORT=${CLUSTER_MASTER_PORT:-7077}
UI_PORT=${CLUSTER_UI_PORT:-8080}
WORKERS=2
WORKER_CORES=1
WORKER_MEMORY=${CLUSTER_WORKER_MEMORY:-2g}
TIMEOUT=${CLUSTER_TIMEOUT:-120}
MASTER_URL="spark://$HOST:$MASTER_PORT"
JSON_URL="http://$HOST:$UI_PORT/json/"

die() { echo "cluster: $*" >&2; exit 1; }

spark_home() {
    "$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null \
        || die "no pyspark in $PY (run make install)"
}

# The pid in a daemon's pid file if that process is alive and is a Spark daemon (spark-class
# execs java once the launcher has built the command line); a stale file is removed.
running_pid() {
    local file="$STATE/pids/$1.pid" pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(ps -p "$pid" -o args= 2>/dev/null) == *org.apache.spark.deploy.* ]]; then
        echo "$pid"
        return 0
    fi
    rm -f "$file"
    return 1
}

port_in_use() {
    "$PY" - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

# One line per fact from the master's JSON; exit 3 when no master answers.
master_view() {
    "$PY" - "$JSON_URL" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        m = json.load(r)
except OSError:
    sys.exit(3)
alive = [w for w in m["workers"] if w["state"] == "ALIVE"]
print(f"master  {m['url']} {m['status']}, UI {sys.argv[1][:-len('json/')]}")
print(f"workers {len(alive)} alive, {m['coresused']}/{m['cores']} cores in use")
for w in alive:
    print(f"  {w['id']}  {w['host']}  {w['coresused']}/{w['cores']} cores, "
          f"{w['memoryused']}/{w['memory']} MB used, UI {w['webuiaddress']}")
for a in m["activeapps"]:
    print(f"app     {a['id']} {a['name']!r} {a['state']}: {a['cores']} cores, {a['memoryperexecutor']} MB per executor")
done = m["completedapps"]
if done:
    print(f"done    {len(done)} completed applications, newest {done[-1]['id']} {done[-1]['name']!r}")
print(f"ALIVE_WORKERS={len(alive)}")
EOF
}

start_daemon() {  # name, class, args...
    local name=$1 class=$2 pid
    shift 2
    if pid=$(running_pid "$name"); then
        echo "$name already running (pid $pid)"
        return
    fi
    # PYTHONPATH is dropped: executors must get the project's code from --py-files, as on a real cluster.
    # No REST submission server: jobs come in through spark-submit's RPC only.
    env -u PYTHONPATH SPARK_HOME="$SPARK_HOME" SPARK_LOCAL_IP=$HOST SPARK_DAEMON_MEMORY=512m \
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false" \
        SPARK_LOCAL_DIRS="$STATE/tmp" SPARK_LOG_DIR="$STATE/logs" PYSPARK_PYTHON="$PY" \
        nohup "$SPARK_HOME/bin/spark-class" "$class" "$@" >"$STATE/logs/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
    echo "$name started (pid $!), log $STATE/logs/$name.out"
}

up() {
    SPARK_HOME=$(spark_home)
    mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/tmp" "$STATE/work"
    if ! running_pid master >/dev/null; then
        for port in "$MASTER_PORT" "$UI_PORT"; do
            port_in_use "$port" && die "port $port on $HOST is taken by another process; not starting a master"
        done
    fi
    start_daemon master org.apache.spark.deploy.master.Master \
        --host $HOST --port "$MASTER_PORT" --webui-port "$UI_PORT"
    for i in $(seq 1 $WORKERS); do
        start_daemon "worker-$i" org.apache.spark.deploy.worker.Worker \
            --host $HOST --cores $WORKER_CORES --memory "$WORKER_MEMORY" \
            --webui-port $((UI_PORT + i)) --work-dir "$STATE/work/worker-$i" "$MASTER_URL"
    done
    local deadline=$((SECONDS + TIMEOUT)) view alive=0
    while ((SECONDS < deadline)); do
        for name in master $(seq -f "worker-%g" 1 $WORKERS); do
            running_pid "$name" >/dev/null || die "$name exited; last lines of $STATE/logs/$name.out:
$(tail -n 15 "$STATE/logs/$name.out")"
        done
        if view=$(master_view); then
            alive=$(sed -n 's/^ALIVE_WORKERS=//p' <<<"$view")
            if ((alive >= WORKERS)); then
                grep -v '^ALIVE_WORKERS=' <<<"$view"
                echo "cluster up: submit with --master $MASTER_URL"
                return 0
            fi
        fi
        sleep 2
    done
    die "timed out after ${TIMEOUT}s: $alive of $WORKERS workers registered with $MASTER_URL; logs in $STATE/logs"
}

stop_daemon() {
    local name=$1 pid
    if ! pid=$(running_pid "$name"); then
        echo "$name not running"
        return
    fi
    kill "$pid"
    for _ in $(seq 1 30); do
        ps -p "$pid" >/dev/null 2>&1 || break
        sleep 1
    done
    if ps -p "$pid" >/dev/null 2>&1; then
        echo "$name (pid $pid) did not stop in 30 s; killing it"
        kill -9 "$pid"
    fi
    rm -f "$STATE/pids/$name.pid"
    echo "$name stopped (pid $pid)"
}

down() {
    for i in $(seq $WORKERS -1 1); do
        stop_daemon "worker-$i"
    done
    stop_daemon master
    if master_view >/dev/null; then
        die "a master still answers on $JSON_URL but has no pid file under $STATE/pids: stop it by hand"
    fi
}

status() {
    local view alive
    if ! view=$(master_view); then
        echo "cluster down: no master answers on $JSON_URL"
        return 3
    fi
    grep -v '^ALIVE_WORKERS=' <<<"$view"
    alive=$(sed -n 's/^ALIVE_WORKERS=//p' <<<"$view")
    ((alive >= WORKERS)) || { echo "only $alive of $WORKERS workers registered"; return 4; }
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
