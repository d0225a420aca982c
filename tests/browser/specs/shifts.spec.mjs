// An agent holding two chats requests a break: "finishing 2 chats", then
// one is transferred to another agent and the other ended, and the break
// begins. Server: ROUTING_MODE=fair.

import { test } from 'node:test';
import { setUp, onShift, startChat, agent, customer, shift, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();


test('a break requested while holding two chats; a transfer; an end', async () => {
  const ann = agent('Ann');
  const ben = agent('Ben');
  const annPage = await onShift(browser, ann);

  const first = await startChat(browser, site, customer('Erin').token, 'First chat');
  await annPage.getByTestId('offer').filter({ hasText: 'First chat' }).getByRole('button', { name: /Accept/ }).click();
  await first.w.status.filter({ hasText: 'Ann' }).waitFor();
  const second = await startChat(browser, site, customer('Finn').token, 'Second chat');
  await annPage.getByTestId('offer').filter({ hasText: 'Second chat' }).getByRole('button', { name: /Accept/ }).click();
  await second.w.status.filter({ hasText: 'Ann' }).waitFor();

  // Several chats at once: both in "my chats", one pane showing at a time.
  const tabs = annPage.getByTestId('my-chat');
  await tabs.filter({ hasText: 'First chat' }).waitFor();
  await tabs.filter({ hasText: 'Second chat' }).waitFor();
  // A message to the chat not on screen counts as unread there.
  await tabs.filter({ hasText: 'Second chat' }).click();
  await first.w.input.fill('Are you still there?');
  await first.w.input.press('Enter');
  await tabs.filter({ hasText: 'First chat' }).getByTestId('unread').filter({ hasText: '1' }).waitFor();
  await tabs.filter({ hasText: 'First chat' }).click();
  await tabs.filter({ hasText: 'First chat' }).getByTestId('unread').waitFor({ state: 'detached' });

  await annPage.getByTestId('request-break').click();
  await annPage.getByTestId('agent-status').filter({ hasText: 'Break requested — finishing 2 chats' }).waitFor();

  // Ben comes on shift; Ann hands the first chat to him.
  const benPage = await onShift(browser, ben);
  const firstPane = annPage.getByTestId('chat-pane').filter({ hasText: 'First chat' });
  await firstPane.getByLabel('Transfer to').focus();
  await firstPane.getByLabel('Transfer to').locator(`option[value="${ben.sub}"]`).waitFor({ state: 'attached' });
  await firstPane.getByLabel('Transfer to').selectOption(ben.sub);
  await firstPane.getByTestId('transfer').click();
  await firstPane.waitFor({ state: 'detached' });
  await first.w.status.filter({ hasText: 'You are chatting with Ben.' }).waitFor();
  await first.w.system.filter({ hasText: 'transferred to Ben' }).waitFor();
  const benPane = benPage.getByTestId('chat-pane').filter({ hasText: 'First chat' });
  await benPane.getByTestId('message').filter({ hasText: 'Are you still there?' }).waitFor();
  await annPage.getByTestId('agent-status').filter({ hasText: 'finishing 1 chat' }).waitFor();

  // Ann ends the second; her break begins.
  await annPage.getByTestId('chat-pane').filter({ hasText: 'Second chat' }).getByTestId('end-chat').click();
  await second.w.status.filter({ hasText: 'This chat has ended.' }).waitFor();
  await annPage.locator('[data-testid="agent-status"][data-status="ON_BREAK"]').waitFor();
  await shift(annPage, 'end-break', 'AVAILABLE');
  await shift(annPage, 'end-shift', 'OFFLINE');

  noPageErrors(annPage);
  noPageErrors(benPage);
});
