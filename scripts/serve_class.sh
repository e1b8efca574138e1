#!/usr/bin/env bash
# Serve LVM Lab to a class: N Streamlit processes on local ports behind nginx, with sticky sessions.
#
#   scripts/serve_class.sh N         start N processes and nginx; returns once all answer, prints the URL
#   scripts/serve_class.sh stop      stop nginx and every process it started (waits until they are gone)
#   scripts/serve_class.sh status    list what is running
#
# Settings (environment):
#   PORT       nginx's port, the URL students open (default 8080)
#   HOST       nginx's address (default 0.0.0.0: reachable from the room; 127.0.0.1 for this machine only)
#   BASE_PORT  the first Streamlit port; process i listens on 127.0.0.1:BASE_PORT+i (default 8601)
#   PIN        1: pin process i to CPU core i modulo the core count (taskset), one process per core
#   RUN_DIR    pid files, logs and nginx's temporary files (default ${TMPDIR:-/tmp}/lvm-lab-class-PORT)
#   PYTHON     the interpreter with the app's requirements (default python3)
#   NGINX      the nginx binary (default: nginx on the PATH, else /usr/sbin/nginx, the Debian package's)
# nginx runs with its own configuration (scripts/nginx-class.conf) and RUN_DIR as its prefix, never the system's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-8080}"
HOST="${HOST:-0.0.0.0}"
BASE_PORT="${BASE_PORT:-8601}"
PIN="${PIN:-0}"
RUN_DIR="${RUN_DIR:-${TMPDIR:-/tmp}/lvm-lab-class-$PORT}"
PYTHON="${PYTHON:-python3}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"  # Debian installs it in /usr/sbin
START_TIMEOUT=180  # seconds for every process to answer /_stcore/health (torch and plotly load slowly)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2; }  # the comment above

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

healthy() { curl -fsS --max-time 2 "$1/_stcore/health" >/dev/null 2>&1; }

wait_healthy() {  # url pid_file what
    local deadline=$((SECONDS + START_TIMEOUT))
    until healthy "$1"; do
        if ! alive "$2" || [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: $3 did not start on $1; see $RUN_DIR" >&2
            return 1
        fi
        sleep 0.5
    done
}

# Stop one process group (each process was started in its own session, so its pid is its group id): TERM first (a
# fast shutdown for nginx: a graceful one would wait for the students' open WebSockets), then KILL whatever is left
# after 15 s, so nothing outlives the class.
stop_group() {  # pid_file
    local pid
    pid="$(cat "$1" 2>/dev/null)" || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

stop() {
    local found=0 pid_file
    if [ -e "$RUN_DIR/nginx.pid" ]; then
        stop_group "$RUN_DIR/nginx.pid"  # the master stops its workers, which share its group
        found=1
    fi
    for pid_file in "$RUN_DIR"/streamlit-*.pid; do
        [ -e "$pid_file" ] || continue
        stop_group "$pid_file"
        found=1
    done
    if [ "$found" = 1 ]; then echo "stopped LVM Lab (run folder $RUN_DIR)"; else echo "nothing running in $RUN_DIR"; fi
}

status() {
    local any=0
    if alive "$RUN_DIR/nginx.pid"; then echo "nginx pid $(cat "$RUN_DIR/nginx.pid"): $(cat "$RUN_DIR/listen.conf")"; any=1; fi
    for pid_file in "$RUN_DIR"/streamlit-*.pid; do
        [ -e "$pid_file" ] || continue
        local port="${pid_file##*/streamlit-}"
        port="${port%.pid}"
        if alive "$pid_file"; then echo "streamlit pid $(cat "$pid_file") on 127.0.0.1:$port"; any=1; fi
    done
    [ "$any" = 1 ] || echo "nothing running in $RUN_DIR"
}

start() {
    local n="$1" cores i port
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 256 ]; then
        echo "error: N must be a number of processes from 1 to 256, got '$n'" >&2
        exit 2
    fi
    [ -x "$NGINX" ] || { echo "error: nginx not found at $NGINX (Debian: apt-get install nginx)" >&2; exit 1; }
    command -v curl >/dev/null || { echo "error: curl not found (Debian: apt-get install curl)" >&2; exit 1; }
    if alive "$RUN_DIR/nginx.pid" || compgen -G "$RUN_DIR/streamlit-*.pid" >/dev/null; then
        echo "error: already running from $RUN_DIR; run '$0 stop' first" >&2
        exit 1
    fi
    # 755, not mktemp's 700: when started as root, nginx's workers run as an unprivileged user and need to reach tmp/
    mkdir -p "$RUN_DIR/tmp"
    chmod 755 "$RUN_DIR" "$RUN_DIR/tmp"
    : >"$RUN_DIR/backends.conf"
    : >"$RUN_DIR/access.log"  # this class's requests only
    trap 'echo "start failed; stopping what was started" >&2; stop >/dev/null' ERR
    cores="$(nproc)"
    for ((i = 0; i < n; i++)); do
        port=$((BASE_PORT + i))
        local pin=()
        [ "$PIN" = 1 ] && pin=(taskset -c "$((i % cores))")
        # setsid: each process leads its own group, so stop reaches anything it might spawn
        (cd "$ROOT" && exec setsid "${pin[@]}" "$PYTHON" -m streamlit run app.py --server.port "$port" \
            --server.address 127.0.0.1 --server.headless true --server.fileWatcherType none \
            --browser.gatherUsageStats false) >"$RUN_DIR/streamlit-$port.log" 2>&1 </dev/null &
        echo $! >"$RUN_DIR/streamlit-$port.pid"
        echo "server 127.0.0.1:$port;" >>"$RUN_DIR/backends.conf"
    done
    for ((i = 0; i < n; i++)); do
        port=$((BASE_PORT + i))
        wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/streamlit-$port.pid" "streamlit (log streamlit-$port.log)"
    done
    cp "$ROOT/scripts/nginx-class.conf" "$RUN_DIR/nginx.conf"
    echo "listen $HOST:$PORT;" >"$RUN_DIR/listen.conf"
    "$NGINX" -p "$RUN_DIR/" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"
    local check_host="$HOST" url_host="$HOST"
    if [ "$HOST" = 0.0.0.0 ]; then
        check_host=127.0.0.1
        url_host="$(hostname -f 2>/dev/null || hostname)"
    fi
    wait_healthy "http://$check_host:$PORT" "$RUN_DIR/nginx.pid" "nginx (log error.log)"
    trap - ERR
    echo "LVM Lab for a class: $n Streamlit processes behind nginx at http://$url_host:$PORT"
    echo "stop with: $0 stop   (run folder $RUN_DIR)"
}

case "${1:-}" in
stop) stop ;;
status) status ;;
"" | -h | --help) usage ;;
*) start "$1" ;;
esac
