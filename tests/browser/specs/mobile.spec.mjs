// A 360 px wide phone, keyboard only: the widget opens, starts a chat,
// sends and closes without a pointer; nothing is wider than the screen;
// the console's sign-in works there too, and passes axe-core.
// Server: ROUTING_MODE=manual.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, widget, watch, agent, customer, gql, SERVER, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();
const PHONE = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };

const fits = (page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

test('the widget, by keyboard alone, on a 360 px phone', async () => {
  const jo = customer('Jo');
  const ann = agent('Ann');
  const page = await (await browser.newContext(PHONE)).newPage();
  watch(page, 'widget');
  await page.goto(site.url(jo.token));
  const w = widget(page);
  await w.launcher.waitFor();
  await axe(page, 'the closed widget');

  await page.keyboard.press('Tab');
  assert.equal(await w.launcher.evaluate((b) => b.getRootNode().activeElement === b), true, 'Tab reaches the launcher');
  await page.keyboard.press('Enter');
  await w.panel.waitFor();
  await page.keyboard.type('Keyboard only');
  await page.keyboard.press('Enter');
  await w.status.filter({ hasText: /in the queue/ }).waitFor();
  await page.keyboard.type('typed, not clicked');
  await page.keyboard.press('Enter');
  await w.messages.filter({ hasText: 'typed, not clicked' }).locator('[data-tick="sent"]').waitFor();

  // An agent takes it (through the API); the customer reads the reply.
  const { mySessions } = await gql(jo.token, '{ mySessions { nodes { id } } }');
  const id = mySessions.nodes[0].id;
  await gql(ann.token, 'mutation { startShift { status } }');
  await gql(ann.token, 'mutation($id: ID!) { acceptSession(sessionId: $id) { id } }', { id });
  await gql(ann.token, 'mutation($id: ID!) { sendMessage(input: { sessionId: $id, body: "Hi Jo", clientMessageId: "m1" }) { id } }', { id });
  await w.messages.filter({ hasText: 'Hi Jo' }).waitFor();
  await w.root.getByTestId('announcer').filter({ hasText: 'Ann: Hi Jo' }).waitFor();

  const box = await w.panel.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 360, `the panel fits: ${JSON.stringify(box)}`);
  assert.ok(await fits(page), 'no sideways scrolling');
  await screenshot(page, 'widget-phone');
  await axe(page, 'the open widget on a phone');

  // Tab reaches "End chat"; Escape closes and gives focus back to the launcher.
  for (let i = 0; i < 10; i += 1) {
    await page.keyboard.press('Tab');
    if (await w.end.evaluate((b) => b.getRootNode().activeElement === b)) break;
  }
  await page.keyboard.press('Enter');
  await w.afterEnd.waitFor();
  await page.keyboard.press('Escape');
  await w.panel.waitFor({ state: 'hidden' });
  assert.equal(await w.launcher.evaluate((b) => b.getRootNode().activeElement === b), true, 'focus is back on the launcher');
  noPageErrors(page);
});

test('the console on a 360 px phone: sign in by pasting a token', async () => {
  const bo = agent('Bo');
  const page = await (await browser.newContext(PHONE)).newPage();
  watch(page, 'console');
  await page.goto(`${SERVER}/console`);
  await page.getByLabel('Your agent or admin token').waitFor();
  await axe(page, 'the sign-in page');
  await page.getByLabel('Your agent or admin token').fill(bo.token);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('start-shift').click();
  await page.locator('[data-testid="agent-status"][data-status="AVAILABLE"]').waitFor();
  assert.ok(await fits(page), 'no sideways scrolling');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('switchboard.token') !== null), true);
  await screenshot(page, 'console-phone');
  await axe(page, 'the console on a phone');
  noPageErrors(page);
});
