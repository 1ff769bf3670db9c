#!/usr/bin/env bash
# The main job: set up (if needed), build, start the FOCUS node with the embedded default model
# (models/embedded, trained in this repository), replay the bundled demo bag into it
# (test/data/demo_bag: a 1920x1080 camera stream of held-out scenes with timed questions), record
# its answers, and print each question with its true answer, the node's answer, box and latency;
# the relevance overlays go to out/demo/overlays.
#
#   bash scripts/demo.sh                      # the bundled bag
#   BAG=path/to/case bash scripts/demo.sh     # a bag made by focus-make-bag (with ground_truth.json)
#
# What runs is what a ROS 2 user runs (README "Replaying a bag"): the installed focus_node
# executable with config/focus.yaml and bag time (use_sim_time + /clock), and focus-replay, this
# package's player for machines without `ros2 bag play`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh

set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u

BAG="${BAG:-test/data/demo_bag}"
OUT=out/demo
rm -rf "$OUT"
mkdir -p "$OUT"
PREFIX="$(python -c 'from ament_index_python.packages import get_package_prefix as p; print(p("focus_ros"))')"
NODE_EXE="$PREFIX/lib/focus_ros/focus_node"
# 1920x1080 JPEGs are bigger than Fast DDS's default 0.5 MB shared-memory segment: without this
# profile (in every process) they travel as UDP fragments and best-effort frames get lost.
export FASTDDS_DEFAULT_PROFILES_FILE="$PREFIX/share/focus_ros/config/fastdds_large_frames.xml"

# The bag plays faster than a CPU answers: the queue holds all of its questions (default 4).
# focus-replay publishes reliable, and the node subscribes reliable: on ROS 2 Jazzy, whose Fast DDS
# loses best-effort messages that need fragmenting between processes, that is what carries frames.
set -m      # background jobs get their own process group and take SIGINT like a terminal's Ctrl-C
"$NODE_EXE" --ros-args --params-file config/focus.yaml \
  -p autostart:=true -p use_sim_time:=true -p queue_size:=32 -p qos.image.reliability:=reliable -p qos.relevance.depth:=10 \
  -r image:=/camera/image_raw -r image/compressed:=/camera/image_raw/compressed \
  -r depth/image:=/camera/depth/image_raw -r camera_info:=/camera/camera_info \
  > "$OUT/node.log" 2>&1 &
NODE_PID=$!
stop_node() {
  if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -INT "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
}
trap stop_node EXIT

echo "[demo] node started (log: $OUT/node.log); replaying $BAG"
start=$(date +%s.%N)
# Waits for the node's subscriptions (it loads the model first), plays the bag on bag time, and
# records /focus/answer + /focus/relevance_overlay until every question is answered (<= 300 s).
focus-replay "$BAG" --clock --wait-subscribers 120 --record "$OUT/answers" --record-timeout 300
end=$(date +%s.%N)
stop_node
trap - EXIT

focus-report "$OUT/answers" --ground-truth "$BAG" --overlays "$OUT/overlays" --json "$OUT/report.json"
printf '[demo] replay + answers took %.1f s; recorded answers: %s\n' "$(echo "$end - $start" | bc)" "$OUT/answers"
