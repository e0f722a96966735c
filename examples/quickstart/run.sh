#!/usr/bin/env bash
# Baton's quick start, with no Facebook account: the fake Messenger
# platform, Baton, and two example bots, on loopback. Ctrl-C stops them all.
#   bash examples/quickstart/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=examples/quickstart
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM

. "$here/env.sh"
go build -o "$work/baton" ./cmd/baton
go build -o "$work/bot" ./examples/quickstart/bot
sed "s|^data: .*|data: $work/baton.db|" "$here/baton.yaml" > "$work/baton.yaml"

"$work/baton" platform -config examples/platform/platform.yaml > "$work/platform.log" 2>&1 &
"$work/baton" serve -config "$work/baton.yaml" > "$work/baton.log" 2>&1 &
"$work/bot" -name support-bot -listen 127.0.0.1:9001 > "$work/support-bot.log" 2>&1 &
"$work/bot" -name billing-bot -listen 127.0.0.1:9002 -hook-secret-env BILLING_BOT_HOOK_SECRET -page-token-env PAGE_TOKEN_BILLING_BOT > "$work/billing-bot.log" 2>&1 &

for url in http://127.0.0.1:9090/_platform/pages http://127.0.0.1:8081/readyz; do
  for _ in $(seq 100); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

P=http://127.0.0.1:9090 PAGE=100200300400500 PSID=7123456789012345
cat <<MSG
Running: fake platform on :9090, Baton on :8080 (admin :8081), bots on :9001 and :9002.
Logs in $work.

Write as a person, then see who owns the thread (Meta's view, then Baton's):
  curl -s -X POST '$P/_platform/pages/$PAGE/users/$PSID/messages?wait=true' -d '{"text":"I have a billing question"}'
  curl -s $P/_platform/pages/$PAGE/threads/$PSID
  BATON_ADMIN_TOKEN=$BATON_ADMIN_TOKEN $work/baton threads show $PAGE $PSID
Then try "human", a Page Inbox reply, or 25 hours passing:
  curl -s -X POST '$P/_platform/pages/$PAGE/inbox/$PSID/messages' -d '{"text":"Hi, Anna here"}'
  curl -s -X POST $P/_platform/clock -d '{"advance":"25h"}'
Ctrl-C stops everything.
MSG
wait
