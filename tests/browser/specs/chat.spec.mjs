// A whole chat both ways: the customer in the widget on a shop page, the
// agent in the console; typing and read ticks each way; end; the
// transcript and the list of past chats; axe-core on both; screenshots.
// Server: ROUTING_MODE=fair, ALLOWED_ORIGINS=the shop (SHOP_PORT).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, startChat, onShift, agent, customer, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();

test('a whole chat, both ways, with typing and read ticks', async () => {
  const ann = agent('Ann');
  const alice = customer('Alice');

  const agentPage = await onShift(browser, ann);
  assert.equal(await agentPage.evaluate(() => location.hash), '', 'the token leaves the address bar');

  const { page, w } = await startChat(browser, site, alice.token, 'My order is late');

  // Fair routing offers it to Ann, with a countdown.
  const offer = agentPage.getByTestId('offer').filter({ hasText: 'My order is late' });
  await offer.getByTestId('offer-countdown').filter({ hasText: /Expires in \d+ s/ }).waitFor();
  await offer.getByRole('button', { name: /Accept/ }).click();
  await w.status.filter({ hasText: 'You are chatting with Ann.' }).waitFor();
  await w.system.filter({ hasText: 'Ann joined the chat.' }).waitFor();

  // Customer → agent, with typing on the way.
  const pane = agentPage.getByTestId('chat-pane').filter({ hasText: 'My order is late' });
  // Typing is not stored: the agent's feed must be live before it is sent.
  await agentPage.locator('[data-testid="chat-pane"][data-live="true"]').filter({ hasText: 'My order is late' }).waitFor();
  await w.input.pressSequentially('Hello, where is my parcel?');
  await pane.getByTestId('typing').filter({ hasText: 'The customer is typing…' }).waitFor();
  await w.input.press('Enter');
  await pane.getByTestId('message').filter({ hasText: 'Hello, where is my parcel?' }).waitFor();
  await pane.getByTestId('typing').filter({ hasText: /^$/ }).waitFor();
  // The agent's pane is open: it marks the message read, and the customer sees it.
  const mine = w.messages.filter({ hasText: 'Hello, where is my parcel?' });
  await mine.locator('[data-tick="read"]').waitFor();

  // Agent → customer, typing included.
  const reply = pane.getByLabel('Reply');
  await reply.pressSequentially('Let me check that for you.');
  await w.typing.filter({ hasText: 'Ann is typing…' }).waitFor();
  await reply.press('Enter');
  await w.messages.filter({ hasText: 'Let me check that for you.' }).waitFor();
  await w.typing.filter({ hasText: /^$/ }).waitFor();
  // The widget is open: the customer has read it.
  await pane.getByTestId('message').filter({ hasText: 'Let me check that for you.' }).locator('[data-tick="read"]').waitFor();

  // Closed widget: a new message shows on the launcher's badge.
  await w.root.getByTestId('close').click();
  await reply.fill('It arrives tomorrow.');
  await pane.getByTestId('send').click();
  await w.badge.filter({ hasText: '1' }).waitFor();
  await pane.getByTestId('message').filter({ hasText: 'It arrives tomorrow.' }).locator('[data-tick="delivered"]').waitFor();
  await w.launcher.click();
  await w.badge.waitFor({ state: 'hidden' });
  await pane.getByTestId('message').filter({ hasText: 'It arrives tomorrow.' }).locator('[data-tick="read"]').waitFor();

  // Nothing doubled: one of each, in order.
  assert.deepEqual(await w.messages.allTextContents().then((t) => t.map((x) => x.replace(/^(You|Ann): /, '').replace(/\d\d:\d\d.*$/, ''))),
    ['Hello, where is my parcel?', 'Let me check that for you.', 'It arrives tomorrow.']);

  await screenshot(page, 'widget-chat');
  await agentPage.setViewportSize({ width: 1280, height: 800 });
  await screenshot(agentPage, 'console-chat');
  await axe(page, 'the widget, mid-chat');
  await axe(agentPage, 'the console, mid-chat');

  // The customer ends it; both sides see it; the transcript stays.
  await w.end.click();
  await w.afterEnd.waitFor();
  await w.status.filter({ hasText: 'This chat has ended.' }).waitFor();
  await pane.getByTestId('chat-status').filter({ hasText: 'Ended' }).waitFor();
  assert.equal(await w.messages.count(), 3);

  // The list of the last 14 days, each readable.
  await w.root.getByTestId('new-chat').click();
  const past = w.pastChats.filter({ hasText: 'My order is late' });
  await past.filter({ hasText: 'ended' }).waitFor();
  await past.click();
  await w.messages.filter({ hasText: 'It arrives tomorrow.' }).waitFor();
  assert.equal(await w.messages.count(), 3);
  await screenshot(page, 'widget-transcript');

  noPageErrors(page);
  noPageErrors(agentPage);
});
