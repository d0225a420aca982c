// The agent's workspace in a chat: "/" in the reply box finds canned
// responses and previews them filled in for this customer; choosing one
// puts that text in the box. Internal notes, live to an admin following
// the chat, never seen by the customer. The shop's context on the
// customer. Convert to ticket, posted to the shop's ticket system.
// Server: ROUTING_MODE=fair, TICKET_URL and CONTEXT_URL on the shop (lib.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, startChat, onShift, consolePage, agent, customer, token, gql, newestSession, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();

const CREATE = 'mutation($input: CannedResponseInput!) { createCannedResponse(input: $input) { id } }';

/** The reply box's text, once it is `text`. */
async function replyIs(page, pane, text) {
  const box = await pane.getByLabel('Reply').elementHandle();
  await page.waitForFunction(([el, want]) => el.value === want, [box, text]);
}

test('canned responses, notes, the customer context and a ticket', async () => {
  const ann = agent('Ann');
  const dora = customer('Dora', 'Dora Marsh');
  site.contexts.set(dora.sub, { tier: 'gold', orders: [{ id: 'ORD-1042', status: 'shipped', total: '49.90 EUR' }] });
  await gql(ann.token, CREATE, { input: { shortCode: 'refund', title: 'Refund policy', scope: 'PERSONAL',
    body: 'Hi {{customer.name}}, {{agent.name}} here: refunds take 5 days ({{customer.tier}} members: 2).' } });
  await gql(ann.token, CREATE, { input: { shortCode: 'hello', title: 'Greeting', scope: 'PERSONAL', body: 'Hello {{customer.name}}, how can I help?' } });

  const agentPage = await onShift(browser, ann);
  const { page, w } = await startChat(browser, site, dora.token, 'Refund for order 1042');
  await agentPage.getByTestId('offer').filter({ hasText: 'Refund for order 1042' }).getByRole('button', { name: /Accept/ }).click();
  await w.status.filter({ hasText: 'You are chatting with Ann.' }).waitFor();
  const pane = agentPage.getByTestId('chat-pane').filter({ hasText: 'Refund for order 1042' });
  const id = await newestSession(dora.token);

  // The customer pane: what the shop knows of her.
  const context = pane.getByTestId('customer-context');
  await context.filter({ hasText: 'gold' }).waitFor();
  await context.filter({ hasText: 'ORD-1042 · shipped · 49.90 EUR' }).waitFor();

  // "/" lists both; typing narrows; the preview is filled in for Dora.
  const reply = pane.getByLabel('Reply');
  const options = pane.getByTestId('canned-option');
  const preview = pane.getByTestId('canned-preview');
  await reply.pressSequentially('/');
  await options.filter({ hasText: 'Greeting' }).waitFor();
  await options.filter({ hasText: 'Refund policy' }).waitFor();
  await reply.pressSequentially('ref');
  await options.filter({ hasText: 'Greeting' }).waitFor({ state: 'detached' });
  await preview.filter({ hasText: /^Hi Dora Marsh, Ann here: refunds take 5 days \(gold members: 2\)\.$/ }).waitFor();
  await agentPage.setViewportSize({ width: 1400, height: 900 });
  await screenshot(agentPage, 'console-canned');
  await axe(agentPage, 'the canned-response picker');
  await reply.press('Enter');
  await replyIs(agentPage, pane, 'Hi Dora Marsh, Ann here: refunds take 5 days (gold members: 2).');
  await pane.getByTestId('canned-picker').waitFor({ state: 'hidden' });
  await reply.press('Enter');
  await w.messages.filter({ hasText: 'Hi Dora Marsh, Ann here' }).waitFor();

  // The keyboard moves through the choices; Escape leaves the text as typed.
  await reply.pressSequentially('/');
  await options.nth(1).waitFor();
  const first = await options.nth(0).textContent();
  await reply.press('ArrowDown');
  await pane.locator('[data-testid="canned-option"][aria-selected="true"]').filter({ hasNotText: first }).waitFor();
  await reply.press('Escape');
  await pane.getByTestId('canned-picker').waitFor({ state: 'hidden' });
  await replyIs(agentPage, pane, '/');
  await reply.fill('');

  // An admin follows the chat: notes reach them live.
  const adminPage = await consolePage(browser, token('admin', 'root', 'Root'));
  await adminPage.getByTestId('session-row').filter({ hasText: 'Refund for order 1042' }).getByRole('button').click();
  await adminPage.getByTestId('open-transcript').click();
  const adminPane = adminPage.locator('[data-testid="chat-pane"][data-live="true"]').filter({ hasText: 'Refund for order 1042' });
  await adminPane.waitFor();

  await pane.getByLabel('New note (agents only)').fill('VIP: refund approved by Sam');
  await pane.getByTestId('add-note').click();
  await pane.getByTestId('note').filter({ hasText: 'VIP: refund approved by Sam' }).waitFor();
  await adminPane.getByTestId('note').filter({ hasText: 'VIP: refund approved by Sam' }).waitFor();

  // The customer never sees it: a message sent after it arrives, the note does not.
  await reply.fill('One more thing: the refund is on its way.');
  await reply.press('Enter');
  await w.messages.filter({ hasText: 'the refund is on its way' }).waitFor();
  assert.ok(!(await w.panel.textContent()).includes('VIP'), 'the widget shows no note');
  const seen = await gql(dora.token, 'query($id: ID!) { session(id: $id) { notes { body } } }', { id });
  assert.deepEqual(seen.session.notes, []);

  // Convert to ticket: the shop's ticket system gets the transcript and notes.
  await pane.getByTestId('convert-ticket').click();
  await pane.getByTestId('ticket').filter({ hasText: 'Ticket T-101' }).waitFor();
  await pane.getByTestId('system-line').filter({ hasText: 'T-101' }).waitFor();
  await pane.getByTestId('convert-ticket').waitFor({ state: 'hidden' });
  assert.equal(await pane.getByTestId('ticket-link').getAttribute('href'), `${site.origin}/tickets/T-101`);
  assert.equal(site.tickets.length, 1);
  const sent = site.tickets[0];
  assert.match(sent.headers['webhook-signature'], /^v1,/);
  assert.equal(sent.body.data.sessionId, id);
  assert.ok(sent.body.data.messages.some((m) => m.body.includes('the refund is on its way')));
  assert.ok(JSON.stringify(sent.body.data.notes).includes('VIP: refund approved by Sam'));

  await screenshot(agentPage, 'console-workspace');
  await axe(agentPage, 'the chat pane with notes, context and ticket');
  noPageErrors(page);
  noPageErrors(agentPage);
  noPageErrors(adminPage);
});
