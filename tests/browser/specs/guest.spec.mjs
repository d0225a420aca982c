// A visitor with no token: the widget makes them a guest when they start a
// chat (solving the server's challenge when it asks one), an agent in the
// console takes it, they write both ways, and a reload resumes the same
// chat as the same guest. Run twice by api/tests/browser.rs: without a
// challenge, and with GUEST_CHALLENGE_BITS set.
// Server: ROUTING_MODE=fair.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setUp, widget, watch, onShift, agent, gql, axe, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();

/** Leading zero bits of SHA-256(text), as the server counts them. */
function zeroBits(text) {
  let bits = 0;
  for (const b of createHash('sha256').update(text).digest()) {
    if (b) return bits + Math.clz32(b) - 24;
    bits += 8;
  }
  return bits;
}

test('a guest chat', async () => {
  const { guestChallenge } = await gql(null, '{ guestChallenge { difficulty } }');
  const ann = agent('Ann');
  const agentPage = await onShift(browser, ann);

  const page = await (await browser.newContext()).newPage();
  watch(page, 'guest');
  const minted = [];
  page.on('request', (r) => {
    const body = r.postData() || '';
    if (body.includes('createGuest')) minted.push(JSON.parse(body).variables);
  });
  await page.goto(site.url(null));
  const w = widget(page);
  await w.launcher.click();
  await w.subject.waitFor();
  assert.equal(await w.error.isHidden(), true, 'a visitor is not asked to sign in');
  assert.equal(minted.length, 0, 'no guest token before the visitor starts a chat');

  await w.subject.fill('Question from a visitor');
  await w.start.click();
  const offer = agentPage.getByTestId('offer').filter({ hasText: 'Question from a visitor' });
  await offer.getByRole('button', { name: /Accept/ }).click();
  await w.status.filter({ hasText: 'You are chatting with Ann.' }).waitFor();

  assert.equal(minted.length, 1, 'one guest token');
  if (guestChallenge) {
    const { c, s } = minted[0];
    assert.match(s, /^\d+$/);
    assert.ok(zeroBits(c + s) >= guestChallenge.difficulty, `the widget solved the challenge: ${c} ${s}`);
  } else {
    assert.deepEqual(minted[0], {}, 'no challenge asked, none sent');
  }

  // The agent sees an opaque guest, and they write both ways.
  const pane = agentPage.getByTestId('chat-pane').filter({ hasText: 'Question from a visitor' });
  await pane.getByTestId('customer-id').filter({ hasText: /^guest_/ }).waitFor();
  await agentPage.locator('[data-testid="chat-pane"][data-live="true"]').filter({ hasText: 'Question from a visitor' }).waitFor();
  await w.input.fill('Do you ship to Norway?');
  await w.input.press('Enter');
  await pane.getByTestId('message').filter({ hasText: 'Do you ship to Norway?' }).waitFor();
  await pane.getByLabel('Reply').fill('We do, in 3 to 5 days.');
  await pane.getByLabel('Reply').press('Enter');
  await w.messages.filter({ hasText: 'We do, in 3 to 5 days.' }).waitFor();
  await w.messages.filter({ hasText: 'Do you ship to Norway?' }).locator('[data-tick="read"]').waitFor();

  // A reload is the same guest in the same chat: the token was kept.
  await page.reload();
  await w.launcher.click();
  await w.messages.filter({ hasText: 'We do, in 3 to 5 days.' }).waitFor();
  await w.status.filter({ hasText: 'You are chatting with Ann.' }).waitFor();
  assert.equal(await w.messages.count(), 2);
  await w.input.fill('Great, thanks');
  await w.input.press('Enter');
  await pane.getByTestId('message').filter({ hasText: 'Great, thanks' }).waitFor();
  assert.equal(minted.length, 1, 'the reload asked for no new guest token');

  await axe(page, 'the guest widget');
  noPageErrors(page);
  noPageErrors(agentPage);
});
