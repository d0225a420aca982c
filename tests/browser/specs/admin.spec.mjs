// The admin's tools: search sessions by words, status and agent; ratings
// over a period, for everyone or one agent; agents with their load, free
// slots and chats accepted today. The chats are made through the API.
// Server: ROUTING_MODE=manual.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, consolePage, agent, customer, token, gql, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser } = await setUp();

/** A chat `who` takes from the queue; ended and rated when `score` is given. */
async function chat(who, name, subject, line, score) {
  const cust = customer(name);
  const { startSession: s } = await gql(cust.token, 'mutation($input: StartSessionInput!) { startSession(input: $input) { id } }', { input: { subject } });
  await gql(who.token, 'mutation($id: ID!) { acceptSession(sessionId: $id) { id } }', { id: s.id });
  await gql(cust.token, 'mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }', { input: { sessionId: s.id, body: line, clientMessageId: `${name}-1` } });
  if (score) {
    await gql(cust.token, 'mutation($id: ID!) { endSession(sessionId: $id) { id } }', { id: s.id });
    await gql(cust.token, 'mutation($id: ID!, $score: Int!) { rateSession(sessionId: $id, score: $score) { id } }', { id: s.id, score });
  }
  return s.id;
}

test('admin: search sessions, ratings over a period, workload', async () => {
  const ann = agent('Ann');
  const ben = agent('Ben');
  for (const a of [ann, ben]) await gql(a.token, 'mutation { startShift { status } }');
  const kettle = await chat(ann, 'Kai', 'Broken kettle', 'The kettle will not descale', 5);
  await chat(ann, 'Lea', 'Late parcel', 'Where is my parcel?', 2);
  await chat(ben, 'Max', 'Kettle lid', 'The lid of my kettle is loose');

  const page = await consolePage(browser, token('admin', 'root', 'Root'));
  await page.setViewportSize({ width: 1440, height: 1000 });

  // Agents: load, free slots (capacity 2), accepted today.
  const annRow = page.getByTestId('agent-row').filter({ hasText: 'Ann' });
  const benRow = page.getByTestId('agent-row').filter({ hasText: 'Ben' });
  await annRow.getByTestId('agent-accepted').filter({ hasText: /^2$/ }).waitFor();
  await annRow.getByTestId('agent-free').filter({ hasText: /^2$/ }).waitFor();
  await benRow.getByTestId('agent-load').filter({ hasText: '1/2' }).waitFor();
  await benRow.getByTestId('agent-free').filter({ hasText: /^1$/ }).waitFor();
  await benRow.getByTestId('agent-accepted').filter({ hasText: /^1$/ }).waitFor();

  // Search: words in the subject or the messages, then narrowed.
  const results = page.getByTestId('search-result');
  await page.getByLabel('Words').fill('kettle');
  await page.getByTestId('search').click();
  await page.getByTestId('search-count').filter({ hasText: '2 sessions found' }).waitFor();
  assert.deepEqual((await results.allTextContents()).map((t) => t.split(' · ')[0]).sort(), ['Broken kettle', 'Kettle lid']);
  await page.getByLabel('Words').fill('descale');
  await page.getByTestId('search').click();
  await page.getByTestId('search-count').filter({ hasText: '1 session found' }).waitFor();
  await results.filter({ hasText: 'Broken kettle' }).waitFor();
  await page.getByLabel('Words').fill('kettle');
  await page.getByLabel('Status').selectOption('ENDED');
  await page.getByTestId('search').click();
  await page.getByTestId('search-count').filter({ hasText: '1 session found' }).waitFor();
  await results.filter({ hasText: 'Broken kettle' }).waitFor();
  await page.getByLabel('Status').selectOption('');
  await page.getByTestId('search-agent').locator(`option[value="${ben.sub}"]`).waitFor({ state: 'attached' });
  await page.getByTestId('search-agent').selectOption(ben.sub);
  await page.getByTestId('search').click();
  await page.getByTestId('search-count').filter({ hasText: '1 session found' }).waitFor();
  await results.filter({ hasText: 'Kettle lid' }).waitFor();

  // A result opens its detail, rating included.
  await page.getByTestId('search-agent').selectOption('');
  await page.getByLabel('Status').selectOption('ENDED');
  await page.getByTestId('search').click();
  await page.getByTestId('search-count').filter({ hasText: '1 session found' }).waitFor();
  await results.filter({ hasText: 'Broken kettle' }).getByRole('button').click();
  await page.getByTestId('detail-rating').filter({ hasText: 'Rated 5 of 5' }).waitFor();
  await page.getByTestId('history').filter({ hasText: 'ACCEPTED' }).waitFor();
  assert.ok(!(await page.getByTestId('session-detail').textContent()).includes('null'), 'nothing missing is written out');
  assert.equal(await page.getByTestId('session-detail').getAttribute('tabindex'), '-1');
  assert.ok(kettle);

  // Ratings over the last seven days: everyone, one agent, another period.
  const stats = page.getByTestId('rating-stats');
  await page.getByTestId('show-ratings').click();
  await stats.filter({ hasText: '2 ratings · average 3.5 of 5 · 50% satisfied' }).waitFor();
  await page.getByTestId('ratings-agent').selectOption(ben.sub);
  await page.getByTestId('show-ratings').click();
  await stats.filter({ hasText: 'No ratings in that period.' }).waitFor();
  await page.getByTestId('ratings-agent').selectOption(ann.sub);
  await page.getByTestId('show-ratings').click();
  await stats.filter({ hasText: '2 ratings' }).waitFor();
  await screenshot(page, 'console-admin-tools');
  await axe(page, 'the admin tools');
  await page.getByLabel('From').fill('2020-01-01');
  await page.getByLabel('To (inclusive)').fill('2020-01-31');
  await page.getByTestId('show-ratings').click();
  await stats.filter({ hasText: 'No ratings in that period.' }).waitFor();

  noPageErrors(page);
});
