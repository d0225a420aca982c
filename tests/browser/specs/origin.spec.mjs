// The widget on a page of another origin: allowed when the server's
// ALLOWED_ORIGINS names it (the shop on SHOP_PORT), refused otherwise (a
// second shop on a port of its own), both over HTTP and the WebSocket.
// Server: ROUTING_MODE=fair, no agent on shift.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, shop, widget, watch, customer, gql, SERVER, noPageErrors } from '../lib.mjs';

const { browser, site: allowed } = await setUp();
const refused = await shop(0);
after(() => refused.close());

test('a page of an allowed origin embeds the chat', async () => {
  const bob = customer('Bob');
  const page = await (await browser.newContext()).newPage();
  watch(page, 'allowed');
  await page.goto(allowed.url(bob.token));
  const w = widget(page);
  await w.launcher.click();
  await w.subject.fill('Allowed here');
  await w.start.click();
  // Nobody on shift: the customer waits, first in the queue, and is told so live.
  await w.status.filter({ hasText: 'You are number 1 in the queue.' }).waitFor();
  await w.banner.waitFor({ state: 'hidden' });
  // The host page's styles do not reach into the widget.
  const spacing = await w.launcher.evaluate((b) => getComputedStyle(b).letterSpacing);
  assert.equal(spacing, 'normal');
  const { mySessions } = await gql(bob.token, '{ mySessions { nodes { subject status } } }');
  assert.deepEqual(mySessions.nodes, [{ subject: 'Allowed here', status: 'WAITING' }]);
  noPageErrors(page);
});

test('a page of another origin is refused', async () => {
  const carol = customer('Carol');
  const page = await (await browser.newContext()).newPage();
  await page.goto(refused.url(carol.token));
  const w = widget(page);
  // The script itself loads (a classic script), but the API refuses the page.
  await w.launcher.click();
  await w.error.filter({ hasText: 'cannot be reached' }).waitFor();
  const seen = await page.evaluate(async (server) => {
    let http;
    try {
      await fetch(`${server}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ me { id } }"}' });
      http = 'answered';
    } catch (e) {
      http = 'refused';
    }
    const ws = await new Promise((resolve) => {
      const socket = new WebSocket(`${server.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      socket.onopen = () => resolve('opened');
      socket.onclose = () => resolve('refused');
    });
    return { http, ws };
  }, SERVER);
  assert.deepEqual(seen, { http: 'refused', ws: 'refused' });
  // And the server says why, to a client that shows the page's Origin.
  const r = await fetch(`${SERVER}/graphql`, { method: 'POST', headers: { origin: refused.origin, 'content-type': 'application/json' }, body: '{"query":"{ me { id } }"}' });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).errors[0].extensions.code, 'FORBIDDEN');
  const { mySessions } = await gql(carol.token, '{ mySessions { nodes { id } } }');
  assert.equal(mySessions.nodes.length, 0, 'the refused page started nothing');
});
