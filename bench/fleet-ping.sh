#!/usr/bin/env bash
# Pings a simulated fleet through a broker and reports wall times, lost replies and the
# simulator's resident memory.
#
#   bench/fleet-ping.sh embedded|nats-server NODES [RUNS]
#
# Needs a release build (cargo build --release) and hyperfine (apt-get install hyperfine);
# nats-server for the nats-server runs. Everything listens on 127.0.0.1 and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?embedded or nats-server}
nodes=${2:?number of nodes}
runs=${3:-10}
muster=target/release/muster
. bench/common.sh
start_broker "$kind"

"$muster" sim --nodes "$nodes" --write-nodes "$work/nodes.txt" 2>"$work/sim.log" & pids+=($!)
sim_pid=$!
for _ in $(seq 600); do [ -s "$work/nodes.txt" ] && break; sleep 0.05; done

echo "== $nodes virtual nodes, $kind broker"
"$muster" ping --nodes "$work/nodes.txt" --json > "$work/report.json" || true
python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["stats"]
print(f"node list ping: {r['responded']} of {r['expected']} replied, {r['missing']} lost, last reply after {r['elapsed_ms']} ms")
PY
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/h.json" \
  "$muster ping --nodes $work/nodes.txt" "$muster ping" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    name = "known set (node list)" if "--nodes" in r["command"] else "broadcast discovery  "
    print(f"{name}: mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms over {len(r['times'])} runs (command start to exit)")
PY
rss=$(awk '/VmRSS/ {print $2}' "/proc/$sim_pid/status")
echo "sim resident memory: $((rss / 1024)) MiB, $((rss * 1024 / nodes)) bytes per virtual node"
