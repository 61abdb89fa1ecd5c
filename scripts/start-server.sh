# Sourced by test scripts: start_server BINARY [FLAGS...] starts ferrocache on
# an ephemeral loopback port and sets SERVER_PID and SERVER_PORT;
# stop_server sends SIGTERM and checks the exit status is 0.

start_server() {
    local bin=$1
    shift
    SERVER_LOG=$(mktemp)
    "$bin" -l 127.0.0.1 -p -1 "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if grep -q '^ferrocache listening on ' "$SERVER_LOG"; then
            SERVER_PORT=$(sed -n 's/^ferrocache listening on [^,]*:\([0-9]*\).*/\1/p' "$SERVER_LOG" | head -n 1)
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "ferrocache did not start:" >&2
    cat "$SERVER_LOG" >&2
    return 1
}

stop_server() {
    kill -TERM "$SERVER_PID"
    local rc=0
    wait "$SERVER_PID" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "ferrocache exited with status $rc after SIGTERM" >&2
        cat "$SERVER_LOG" >&2
        return 1
    fi
    rm -f "$SERVER_LOG"
}
