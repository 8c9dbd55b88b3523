#!/bin/sh
# demo-lab.sh HUB OUT: on a fresh hub, create a user "demo", a lab "demo" and a join
# token for it, and write the token to OUT (mode 0600) for agents to join with.
# docker-compose runs it once before its sim agents start; running it again with OUT
# present does nothing. Needs curl and jq. FAB_DEMO_PASSWORD sets the demo user's password.
set -eu
hub=${1:?usage: demo-lab.sh HUB OUT}
out=${2:?usage: demo-lab.sh HUB OUT}
[ -s "$out" ] && exit 0
pw=${FAB_DEMO_PASSWORD:?set FAB_DEMO_PASSWORD}

post() { # post PATH JSON [BEARER]: print the body; fail on 4xx/5xx except 409 (exists)
	code=$(curl -sS -o /tmp/demo-lab.out -w '%{http_code}' -X POST "$hub$1" \
		-H 'Content-Type: application/json' ${3:+-H "Authorization: Bearer $3"} -d "$2")
	case $code in
	2??) cat /tmp/demo-lab.out ;;
	409) ;;
	*) echo "demo-lab: POST $1 answered $code: $(cat /tmp/demo-lab.out)" >&2; exit 1 ;;
	esac
}

post /api/v1/users "$(jq -n --arg pw "$pw" '{handle:"demo",email:"demo@example.org",password:$pw}')" >/dev/null
token=$(post /api/v1/tokens "$(jq -n --arg pw "$pw" '{handle:"demo",password:$pw,name:"demo-lab"}')" | jq -r .token.secret)
post /api/v1/labs '{"slug":"demo","name":"Demo lab","location":"docker-compose"}' "$token" >/dev/null
join=$(post /api/v1/labs/demo/join-tokens '{"name":"compose agents"}' "$token" | jq -r .join_token.secret)
umask 077
printf '%s\n' "$join" >"$out.tmp"
mv "$out.tmp" "$out"
echo "demo-lab: lab demo ready at $hub/labs/demo; agents join with the token in $out"
