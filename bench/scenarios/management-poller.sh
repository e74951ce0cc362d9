#!/usr/bin/env bash
# Polls a broker's management API the way a dashboard and a scraper do,
# until killed: every second GET /api/overview and a page of 100 queues;
# every 5 s GET /metrics and /metrics/per-object. For measuring what
# polling costs (docs/management.md, "Figures"):
#   bench/scenarios/management-poller.sh 127.0.0.1:15672 127.0.0.1:15692 &
#   ringmq-bench compare --target native://…#label=polled … --target native://…#label=unpolled …
set -u
api=${1:-127.0.0.1:15672}
metrics=${2:-127.0.0.1:15692}
i=0
while true; do
  curl -s -o /dev/null -u guest:guest "http://$api/api/overview"
  curl -s -o /dev/null -u guest:guest "http://$api/api/queues?page=1&page_size=100&sort=name"
  if [ $((i % 5)) = 0 ]; then
    curl -s -o /dev/null "http://$metrics/metrics"
    curl -s -o /dev/null "http://$metrics/metrics/per-object"
  fi
  i=$((i + 1))
  sleep 1
done
