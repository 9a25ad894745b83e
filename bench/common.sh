# Sourced by the benchmark scripts (after they set $muster): a scratch directory, removed at
# exit together with every process whose pid is added to `pids`, and `start_broker`.

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# start_broker embedded|nats-server: a broker on a free port of 127.0.0.1 (the first of
# `pids`), named by MUSTER_BROKER once it listens; MUSTER_JOURNAL names a journal in the
# scratch directory, so the runs take the real write path but not the user's journal.
start_broker() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  case $1 in
    embedded) "$muster" broker --listen "127.0.0.1:$port" 2>"$work/broker.log" & pids+=($!) ;;
    nats-server) nats-server -a 127.0.0.1 -p "$port" >"$work/broker.log" 2>&1 & pids+=($!) ;;
    *) echo "unknown broker kind $1" >&2; exit 2 ;;
  esac
  export MUSTER_BROKER="nats://127.0.0.1:$port"
  export MUSTER_JOURNAL="$work/journal.sqlite"
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
}
