// The network cut and restored mid-chat (context.setOffline), and an
// acknowledgement lost on the way back: a reconnecting banner, then every
// message exactly once on both sides (and in a second tab of the customer's),
// in seq order. Twice the widget's feed starts late (its connection_ack held
// back): once after the chat was accepted, once after the customer's own
// retried sends were answered; neither may cost it a change or a message.
// Server: ROUTING_MODE=fair.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, widget, onShift, startChat, watch, agent, customer, gql } from '../lib.mjs';

const { browser, site } = await setUp();

const bodies = async (list) => (await list.allTextContents()).map((t) => t.replace(/^(You|Ann|Agent|Customer): /, '').replace(/\d\d:\d\d.*$/, ''));

test('offline and back mid-chat: nothing lost, nothing doubled', async () => {
  const ann = agent('Ann');
  const dave = customer('Dave');
  const agentPage = await onShift(browser, ann);

  // Every WebSocket message from the server passes through here, so that
  // one connection_ack can be held back later (see "comes back").
  let ackHeld = null;
  const holdingAcks = async (page) => {
    await page.routeWebSocket(/\/graphql$/, (ws) => {
      const server = ws.connectToServer();
      // Passed on at once, in order; once an ack is held, what follows it
      // waits behind it.
      let held = null;
      server.onMessage((message) => {
        if (held) return held.push(message);
        if (ackHeld && String(message).includes('"connection_ack"')) {
          held = [message];
          ackHeld.then(() => {
            for (const m of held) ws.send(m);
            held = null;
          });
          return undefined;
        }
        return ws.send(message);
      });
    });
  };
  // The chat is accepted before the widget's feed has started (its first
  // connection_ack held back): the replay brings the join line, and the
  // widget must still learn who took the chat.
  let releaseFirstAck;
  ackHeld = new Promise((resolve) => { releaseFirstAck = resolve; });
  const { page, w } = await startChat(browser, site, dave.token, 'Flaky train wifi', { beforeLoad: holdingAcks });
  const context = page.context();
  await agentPage.getByTestId('offer').getByRole('button', { name: /Accept/ }).click();
  const pane = agentPage.getByTestId('chat-pane').filter({ hasText: 'Flaky train wifi' });
  await pane.getByTestId('system-line').filter({ hasText: 'Ann' }).waitFor();
  assert.ok(await w.banner.isVisible(), 'the feed has not started yet');
  assert.match(await w.banner.textContent(), /^Connecting/, 'a first connection is not a reconnection');
  ackHeld = null;
  releaseFirstAck();
  await w.status.filter({ hasText: 'Ann' }).waitFor();

  await w.input.fill('one');
  await w.input.press('Enter');
  await pane.getByTestId('message').filter({ hasText: 'one' }).waitFor();

  // A second tab of the same customer follows the same chat.
  const tab2 = await context.newPage();
  watch(tab2, 'second tab');
  await tab2.goto(site.url(dave.token));
  const w2 = widget(tab2);
  await w2.launcher.click();
  await w2.messages.filter({ hasText: 'one' }).waitFor();
  // One tab shows at a time; the hidden one keeps its feed.
  await page.bringToFront();

  // An acknowledgement lost: the server stores the message, the answer never
  // arrives; the widget sends it again with the same clientMessageId.
  let dropped = 0;
  await page.route('**/graphql', async (route) => {
    const body = route.request().postData() || '';
    if (dropped === 0 && body.includes('sendMessage')) {
      dropped += 1;
      await route.fetch();
      return route.abort('connectionreset');
    }
    return route.continue();
  });
  await w.input.fill('two');
  await w.input.press('Enter');
  await w.messages.filter({ hasText: 'two' }).locator('[data-tick]').waitFor();
  assert.equal(dropped, 1);
  await page.unroute('**/graphql');

  // The network goes.
  await context.setOffline(true);
  await w.banner.filter({ hasText: 'Reconnecting' }).waitFor();
  await w.input.fill('three');
  await w.input.press('Enter');
  await w.input.fill('four');
  await w.input.press('Enter');
  await w.messages.filter({ hasText: 'four' }).filter({ hasText: 'Sending…' }).waitFor();
  const reply = pane.getByLabel('Reply');
  await reply.fill('while you were away');
  await reply.press('Enter');
  await pane.getByTestId('message').filter({ hasText: 'while you were away' }).locator('[data-tick]').waitFor();

  // And comes back. The retried sends and the feed's restart race; here
  // the server's connection_ack is held until the sends are answered (as
  // happened now and then on a loaded machine), so the feed restarts after
  // the customer's own newest message is on the page: it must still resume
  // before the agent's reply, not after that message.
  let releaseAck;
  ackHeld = new Promise((resolve) => { releaseAck = resolve; });
  await context.setOffline(false);
  // The two sends retried at once may be stored in either order: wait for both.
  for (const body of ['three', 'four']) await w.messages.filter({ hasText: body }).locator('[data-tick]').waitFor();
  assert.ok(await w.banner.isVisible(), 'the feed is still held back');
  releaseAck();
  await w.banner.waitFor({ state: 'hidden' });
  await w.messages.filter({ hasText: 'while you were away' }).waitFor();
  for (const body of ['three', 'four']) await pane.getByTestId('message').filter({ hasText: body }).waitFor();

  const customerSide = await bodies(w.messages);
  const agentSide = await bodies(pane.getByTestId('message'));
  for (const side of [customerSide, agentSide]) {
    assert.deepEqual([...side].sort(), ['four', 'one', 'three', 'two', 'while you were away'], `each once: ${side}`);
  }
  assert.deepEqual(customerSide, agentSide, 'the same order on both sides');
  // The second tab stays in step.
  await tab2.bringToFront();
  for (const body of ['while you were away', 'three', 'four']) await w2.messages.filter({ hasText: body }).waitFor();
  assert.deepEqual(await bodies(w2.messages), customerSide, 'the second tab shows the same');
  const { mySessions } = await gql(dave.token, '{ mySessions(first: 1) { nodes { id messages(first: 20) { nodes { seq sender body } } } } }');
  const stored = mySessions.nodes[0].messages.nodes.filter((m) => m.sender !== 'SYSTEM');
  assert.deepEqual(stored.map((m) => m.body), customerSide, 'the server stored each once, in that order');

  // The agent's network goes, the customer ends the chat meanwhile: back
  // online, the console's pane shows it ended (the replay alone brings
  // only the line saying so).
  await agentPage.context().setOffline(true);
  const sessionId = mySessions.nodes[0].id;
  await gql(dave.token, 'mutation($id: ID!) { endSession(sessionId: $id) { id } }', { id: sessionId });
  await agentPage.context().setOffline(false);
  await pane.getByTestId('system-line').filter({ hasText: 'ended' }).waitFor();
  await pane.getByTestId('chat-status').filter({ hasText: 'Ended' }).waitFor();
});
