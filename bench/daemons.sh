#!/usr/bin/env bash
# Starts N real daemons (processes) and measures: how soon a daemon answers after it starts,
# the wall time of `muster ping` to all of them, and an idle daemon's memory and CPU.
#
#   bench/daemons.sh embedded|nats-server [N] [RUNS]
#
# Needs a release build (cargo build --release) and hyperfine; nats-server for those runs.
# MUSTER=target/dist/muster measures the build nodes get (cargo build --profile dist).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?embedded or nats-server}
count=${2:-50}
runs=${3:-50}
muster=$(realpath "${MUSTER:-target/release/muster}")
. bench/common.sh
start_broker "$kind"

config() {
  printf 'identity = "%s"\nsecurity = "insecure"\nbrokers = ["%s"]\nlog_level = "warn"\n' "$1" "$MUSTER_BROKER" > "$work/$1.toml"
}

# First answer after start: spawn the daemon, then ping it directly until it answers.
config first
echo first > "$work/first.txt"
start=$(date +%s%N)
"$muster" server --config "$work/first.toml" 2>"$work/first.log" & pids+=($!)
until "$muster" ping --nodes "$work/first.txt" -t 1 >/dev/null 2>&1; do :; done
end=$(date +%s%N)
echo "== $count daemons, $kind broker"
echo "first answer after start: $(( (end - start) / 1000000 )) ms (spawn to the end of the first successful ping)"

: > "$work/nodes.txt"
for i in $(seq "$count"); do
  config "node$i"
  echo "node$i" >> "$work/nodes.txt"
  "$muster" server --config "$work/node$i.toml" 2>"$work/node$i.log" & pids+=($!)
done
until "$muster" ping --nodes "$work/nodes.txt" -t 2 >/dev/null 2>&1; do :; done
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" \
  "$muster ping --nodes $work/nodes.txt" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"ping known set: mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms over {len(r['times'])} runs (command start to exit)")
PY
pid=${pids[1]}
t0=$(awk '{print $14+$15}' "/proc/$pid/stat"); sleep 5; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
anon=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")
file=$(awk '/RssFile/ {print $2}' "/proc/$pid/status")
echo "idle daemon ($(basename "$(dirname "$muster")") build): $rss KiB resident ($anon KiB its own, $file KiB pages of the executable and libraries, shared), $(( (t1 - t0) )) clock ticks of CPU in 5 s"
