#!/usr/bin/env bash
# Cron-ready regional mapping: maps every new scene in an inbox folder, idempotently.
#
#   # crontab -e:  every night at 02:15. Cron runs with PATH=/usr/bin:/bin, so name the gfm
#   # of your virtual environment (or conda env) in GFM=; GFM_MODEL= picks the weights.
#   15 2 * * * GFM=/opt/gfm/.venv/bin/gfm /opt/gfm/examples/cron-regional-mapping.sh /data/inbox /data/maps
#
# - GFM: the gfm to run (default: gfm on PATH), like examples/train-demo.sh;
# - skips scenes whose map exists (gfm's resume), so reruns only do new work;
# - a lock file stops two runs from overlapping (flock);
# - appends to a dated log in OUT/logs/; exits non-zero if any scene failed, so cron mails it.
set -euo pipefail
inbox="${1:?usage: $0 INBOX_DIR OUT_DIR}"
out="${2:?usage: $0 INBOX_DIR OUT_DIR}"
model="${GFM_MODEL:-landcover-tiny}"
gfm="${GFM:-gfm}"
if ! command -v "$gfm" >/dev/null 2>&1; then
  echo "$0: cannot run '$gfm' (PATH=$PATH); set GFM=/path/to/venv/bin/gfm in the crontab line" >&2
  exit 127
fi
mkdir -p "$out/logs"
log="$out/logs/$(date +%Y-%m-%d).log"

exec 9>"$out/.gfm-cron.lock"
if ! flock -n 9; then
  echo "$(date -Is) another run holds $out/.gfm-cron.lock; exiting" >>"$log"
  exit 0
fi

echo "$(date -Is) start: $inbox -> $out" >>"$log"
scenes=$(find "$inbox" -maxdepth 1 \( -name '*.tif' -o -name '*.tiff' \) -print | sort)
if [ -z "$scenes" ]; then
  echo "$(date -Is) inbox is empty; nothing to do" >>"$log"
  exit 0
fi
status=0
printf '%s\n' "$scenes" \
  | "$gfm" -q predict - -o "$out" --model "$model" --keep-going >>"$log" 2>&1 || status=$?
echo "$(date -Is) end: exit $status" >>"$log"
exit "$status"
