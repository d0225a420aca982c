"""Verifies webhook deliveries with the Standard Webhooks reference library,
as a Python receiver would (run by api/tests/clients.rs). Reads a JSON file:
{"secret": "whsec_...", "requests": [{"headers": {...}, "body": "..."}]}.
Every request must verify, and a tampered copy of each must not."""
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

with open(sys.argv[1], encoding="utf-8") as f:
    given = json.load(f)
wh = Webhook(given["secret"])
verified = 0
for request in given["requests"]:
    headers, body = request["headers"], request["body"]
    payload = wh.verify(body, headers)
    if not isinstance(payload.get("type"), str) or not payload.get("data"):
        raise SystemExit(f"verified, but not a Switchboard event: {body}")
    try:
        wh.verify(body.replace("}", " }", 1), headers)
    except WebhookVerificationError:
        pass
    else:
        raise SystemExit(f"a tampered body verified: {body}")
    verified += 1
if verified == 0:
    raise SystemExit("nothing to verify")
print(f"VERIFIED {verified} deliveries")
