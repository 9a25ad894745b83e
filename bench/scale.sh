#!/usr/bin/env bash
# A large simulated fleet, unsigned or signed, pinged end to end with the `muster` command:
# wall times (hyperfine), the last reply's time and whether every node answered; or several
# clients pinging the whole fleet at once.
#
#   bench/scale.sh embedded|nats-server NODES insecure|signed [RUNS]
#   bench/scale.sh embedded|nats-server NODES clients=K
#
# `signed`: the simulator runs a signed fleet for a throwaway issuer (`muster sim --issuer-dir
# DIR --generate`, docs/sim.md) and the client signs its requests and verifies every answer
# with the config the simulator wrote. `clients=K`: K `muster ping --nodes` at once, each of
# which must account for every node with a reply (an insecure fleet).
#
# Needs a release build (cargo build --release) and hyperfine; nats-server for those runs.
# Everything listens on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?embedded or nats-server}
nodes=${2:?number of nodes}
mode=${3:?insecure, signed or clients=K}
runs=${4:-5}
muster=$PWD/target/release/muster
. bench/common.sh
start_broker "$kind"

signing=()
case $mode in
  signed) signing=(--issuer-dir "$work/fleet" --generate) ;;
  insecure|clients=*) ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
"$muster" sim --nodes "$nodes" "${signing[@]}" --write-nodes "$work/nodes.txt" 2>"$work/sim.log" & pids+=($!)
sim_pid=$!
for _ in $(seq 1200); do [ -s "$work/nodes.txt" ] && break; sleep 0.05; done
if [ "$mode" = signed ]; then
  export MUSTER_CONFIG="$work/fleet/client.toml"
fi
# The fleet is up when a ping of the whole list is answered by all (with nothing kept: the
# first measured command below is a client's first meeting with the fleet).
until "$muster" ping --journal off --nodes "$work/nodes.txt" -t 5 >/dev/null 2>&1; do :; done

summary() {
  python3 - "$@" <<'PY'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    s = r["stats"]
    lost = r.get("lost") or {}
    print(f"  {s['ok']} of {s['expected']} ok, {s['missing']} missing, last reply after {s['elapsed_ms']} ms"
          + (f", client lost {lost}" if lost else "") + (f", ignored {r['ignored']}" if r["ignored"] else ""))
PY
}

echo "== $nodes virtual nodes, $kind broker, $mode"
case $mode in
  clients=*)
    k=${mode#clients=}
    for round in $(seq "$runs"); do
      start=$(date +%s%N)
      for c in $(seq "$k"); do
        "$muster" ping --nodes "$work/nodes.txt" -t 10 --json > "$work/c$c.json" & cpids+=($!)
      done
      status=0
      for p in "${cpids[@]}"; do wait "$p" || status=$?; done
      cpids=()
      end=$(date +%s%N)
      echo "round $round: $k clients at once, all done after $(( (end - start) / 1000000 )) ms (exit $status)"
      summary $(for c in $(seq "$k"); do echo "$work/c$c.json"; done)
    done
    ;;
  *)
    "$muster" ping --nodes "$work/nodes.txt" --json > "$work/list.json" || true
    "$muster" ping --json > "$work/broadcast.json" || true
    echo "node list, the first command (no credential known yet):"; summary "$work/list.json"
    echo "broadcast discovery:"; summary "$work/broadcast.json"
    times() {
      python3 - "$1" "$2" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    name = ("known set (node list)" if "--nodes" in r["command"] else "broadcast discovery  ") + sys.argv[2]
    print(f"{name}: mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms over {len(r['times'])} runs (command start to exit)")
PY
    }
    if [ "$mode" = signed ]; then
      # Each run a client meeting the fleet for the first time: what it kept is removed.
      hyperfine -N --runs "$runs" --prepare "rm -f $work/credentials-vouched" --export-json "$work/cold.json" \
        "$muster ping --nodes $work/nodes.txt" >/dev/null
      times "$work/cold.json" ", credentials not known"
    fi
    hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/h.json" \
      "$muster ping --nodes $work/nodes.txt" "$muster ping" >/dev/null
    times "$work/h.json" ""
    "$muster" ping --nodes "$work/nodes.txt" --json > "$work/list.json" || true
    echo "node list, after the runs:"; summary "$work/list.json"
    ;;
esac
rss=$(awk '/VmRSS/ {print $2}' "/proc/$sim_pid/status")
echo "sim resident memory: $((rss / 1024)) MiB, $((rss * 1024 / nodes)) bytes per virtual node"
