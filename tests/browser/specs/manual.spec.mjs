// Manual routing: the queue with wait times, taking a chat (a second taker
// is told gracefully that someone was first), sending one back to the
// queue; scrolling back through a long chat; the admin's overview: agents
// with load, live queue stats, assign, a session's history and routing
// decisions. Server: ROUTING_MODE=manual.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, consolePage, onShift, startChat, agent, customer, token, gql, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();


test('take from the queue, CONFLICT for the second taker, back to the queue; admin overview and assign', async () => {
  const ann = agent('Ann');
  const ben = agent('Ben');
  const annPage = await onShift(browser, ann);
  const benPage = await onShift(browser, ben);
  const adminPage = await consolePage(browser, token('admin', 'root', 'Root'));
  await adminPage.getByTestId('agent-row').filter({ hasText: 'Ann' }).waitFor();

  const hat = await startChat(browser, site, customer('Hal').token, 'Returns');
  const annItem = annPage.getByTestId('queued').filter({ hasText: 'Returns' });
  await annItem.getByTestId('wait').filter({ hasText: /Waiting \d+ s/ }).waitFor();
  await adminPage.getByTestId('queue-stats').filter({ hasText: '1 waiting' }).waitFor();

  // Ben's list is held stale (its refresh is kept back) so that he takes
  // after Ann: the server answers CONFLICT and the console says so.
  const benItem = benPage.getByTestId('queued').filter({ hasText: 'Returns' });
  await benItem.waitFor();
  const held = [];
  await benPage.route('**/graphql', (route) => {
    if ((route.request().postData() || '').includes('queueStats') && held) held.push(route);
    else route.continue();
  });
  await annItem.getByTestId('take').click();
  await hat.w.status.filter({ hasText: 'You are chatting with Ann.' }).waitFor();
  await benItem.getByTestId('take').click();
  await benPage.getByTestId('notice').filter({ hasText: 'Someone else took that chat first.' }).waitFor();
  const release = held.splice(0);
  await benPage.unroute('**/graphql');
  for (const r of release) await r.continue().catch(() => {});
  await benItem.waitFor({ state: 'detached' });
  await adminPage.getByTestId('queue-stats').filter({ hasText: '0 waiting · 0 offered · 1 active' }).waitFor();
  await adminPage.getByTestId('agent-row').filter({ hasText: 'Ann' }).getByTestId('agent-load').filter({ hasText: '1/2' }).waitFor();

  // Admin: the session's history and routing decisions.
  await adminPage.getByTestId('session-row').filter({ hasText: 'Returns' }).getByRole('button').click();
  await adminPage.getByTestId('history').filter({ hasText: 'ACCEPTED' }).waitFor();
  await adminPage.getByTestId('routing-decisions').filter({ hasText: 'ACCEPTED → Ann' }).waitFor();

  // Admin assigns a second chat to Ben.
  const ivyC = customer('Ivy');
  const ivy = await startChat(browser, site, ivyC.token, 'Warranty');
  const adminItem = adminPage.getByTestId('queued').filter({ hasText: 'Warranty' });
  await adminItem.getByLabel('Assign to').locator(`option[value="${ben.sub}"]`).waitFor({ state: 'attached' });
  await adminItem.getByLabel('Assign to').selectOption(ben.sub);
  await adminPage.setViewportSize({ width: 1440, height: 900 });
  await screenshot(adminPage, 'console-admin');
  await axe(adminPage, 'the admin console');
  await adminItem.getByTestId('assign').click();
  await benPage.getByTestId('chat-pane').filter({ hasText: 'Warranty' }).waitFor();
  await ivy.w.status.filter({ hasText: 'You are chatting with Ben.' }).waitFor();

  // A long chat: the pane opens on the newest page and scrolls back on
  // demand. (A reload keeps the sign-in: the token is in sessionStorage.)
  const { mySessions } = await gql(ivyC.token, '{ mySessions(first: 1) { nodes { id } } }');
  for (let i = 1; i <= 35; i += 1) {
    const n = String(i).padStart(2, '0');
    await gql(ivyC.token, 'mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }',
      { input: { sessionId: mySessions.nodes[0].id, body: `line ${n}`, clientMessageId: `line-${n}` } });
  }
  await benPage.reload();
  const long = benPage.getByTestId('chat-pane').filter({ hasText: 'Warranty' });
  await long.getByTestId('message').filter({ hasText: 'line 35' }).waitFor();
  assert.equal(await long.getByTestId('message').count(), 30, 'the newest page');
  await long.getByTestId('load-earlier').click();
  await long.getByTestId('message').filter({ hasText: 'line 01' }).waitFor();
  assert.equal(await long.getByTestId('message').count(), 35);
  await long.getByTestId('load-earlier').waitFor({ state: 'hidden' });

  // Ann sends hers back to the queue: it waits there again for anyone to take.
  const pane = annPage.getByTestId('chat-pane').filter({ hasText: 'Returns' });
  await pane.getByLabel('Transfer to').selectOption('');
  await pane.getByTestId('transfer').click();
  await pane.waitFor({ state: 'detached' });
  await benPage.getByTestId('queued').filter({ hasText: 'Returns' }).waitFor();
  await hat.w.status.filter({ hasText: /in the queue/ }).waitFor();
  assert.equal(await annPage.getByTestId('my-chat').count(), 0);

  noPageErrors(annPage);
  noPageErrors(adminPage);
});
