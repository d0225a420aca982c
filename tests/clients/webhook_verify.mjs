// Verifies webhook deliveries with the Standard Webhooks reference library,
// as a receiver would (run by api/tests/clients.rs). Reads a JSON file:
// {"secret": "whsec_…", "requests": [{"headers": {…}, "body": "…"}]}.
// Every request must verify, and a tampered copy of each must not.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const { secret, requests } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const wh = new Webhook(secret);
let verified = 0;
for (const { headers, body } of requests) {
  const payload = wh.verify(body, headers);
  if (typeof payload.type !== "string" || !payload.data) {
    throw new Error(`verified, but not a Switchboard event: ${body}`);
  }
  let tampered = false;
  try {
    wh.verify(body.replace("}", ' }'), headers);
  } catch {
    tampered = true;
  }
  if (!tampered) throw new Error(`a tampered body verified: ${body}`);
  verified += 1;
}
if (verified === 0) throw new Error("nothing to verify");
console.log(`VERIFIED ${verified} deliveries`);
