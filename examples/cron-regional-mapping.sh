#!/usr/bin/env bash
# Cron-ready regional mapping: maps every new scene in an inbox folder, idempotently.
#
#   # crontab -e:  every night at 02:15
#   15 2 * * * /path/to/gfm/examples/cron-regional-mapping.sh /data/inbox /data/maps
#
# - skips scenes whose map exists (gfm's resume), so reruns only do new work;
# - a lock file stops two runs from overlapping (flock);
# - appends to a dated log in OUT/logs/; exits non-zero if any scene failed, so cron mails it.
set -euo pipefail
inbox="${1:?usage: $0 INBOX_DIR OUT_DIR}"
out="${2:?usage: $0 INBOX_DIR OUT_DIR}"
model="${GFM_MODEL:-landcover-tiny}"
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
  | gfm -q predict - -o "$out" --model "$model" --keep-going >>"$log" 2>&1 || status=$?
echo "$(date -Is) end: exit $status" >>"$log"
exit "$status"
