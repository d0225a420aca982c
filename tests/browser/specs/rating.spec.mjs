// The end of a chat: files and article cards on both sides on the way,
// then the customer ends it, rates it in the widget (score and comment),
// and keeps the transcript; the agent and the admin see the rating. And an
// agent's end brings the survey up on its own.
// Server: ROUTING_MODE=fair, ARTICLE_ORIGINS=https://help.example.com.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, startChat, onShift, consolePage, agent, customer, token, gql, sendFile, newestSession, SERVER, axe, screenshot, noPageErrors } from '../lib.mjs';

const { browser, site } = await setUp();

/** Starts a chat and has the agent accept it: the widget, the agent's pane, the session id. */
async function accepted(agentPage, cust, subject) {
  const chat = await startChat(browser, site, cust.token, subject);
  await agentPage.getByTestId('offer').filter({ hasText: subject }).getByRole('button', { name: /Accept/ }).click();
  await chat.w.status.filter({ hasText: /You are chatting with/ }).waitFor();
  const pane = agentPage.getByTestId('chat-pane').filter({ hasText: subject });
  return { ...chat, pane, id: await newestSession(cust.token) };
}

test('files and articles, then end and rating', async () => {
  const ann = agent('Ann');
  const cleo = customer('Cleo');
  const agentPage = await onShift(browser, ann);
  const { page, w, pane, id } = await accepted(agentPage, cleo, 'Broken kettle');

  // A file from the customer and an article from the agent (through the
  // API: the UIs show them, they do not upload or share yet).
  await sendFile(cleo.token, id, 'receipt.txt', 'Kettle, 49.90 EUR, paid.', 'My receipt');
  await gql(ann.token, 'mutation($input: ShareArticleInput!) { shareArticle(input: $input) { seq } }',
    { input: { sessionId: id, url: 'https://help.example.com/kettles/descale', title: 'Descaling your kettle', clientMessageId: 'article-1' } });

  const file = w.messages.filter({ hasText: 'My receipt' }).getByTestId('attachment-link');
  await file.filter({ hasText: 'receipt.txt' }).waitFor();
  const href = await file.getAttribute('href');
  assert.ok(href.startsWith(`${SERVER}/files/`), `the link goes to the server, not the shop: ${href}`);
  const download = await fetch(href);
  assert.equal(download.status, 200);
  assert.match(download.headers.get('content-disposition'), /attachment/);
  assert.equal(await download.text(), 'Kettle, 49.90 EUR, paid.');
  const card = w.messages.getByTestId('article-card');
  await card.getByRole('link', { name: 'Descaling your kettle' }).waitFor();
  assert.equal(await card.getByRole('link').getAttribute('href'), 'https://help.example.com/kettles/descale');
  assert.equal(await card.getByRole('link').getAttribute('rel'), 'noopener noreferrer');
  // The agent's pane shows them the same way.
  await pane.getByTestId('attachment-link').filter({ hasText: 'receipt.txt' }).waitFor();
  await pane.getByTestId('article-card').filter({ hasText: 'Descaling your kettle' }).waitFor();
  await screenshot(page, 'widget-file-article');

  // The customer ends: the survey, under the transcript.
  await w.end.click();
  await w.survey.waitFor();
  await pane.getByTestId('chat-status').filter({ hasText: 'Ended' }).waitFor();
  assert.equal(await w.messages.count(), 2, 'the transcript stays');
  await axe(page, 'the rating survey');
  await w.rate.click();
  await w.error.filter({ hasText: 'Choose a score' }).waitFor();
  await w.root.getByRole('radio', { name: /^4 happy/ }).check();
  await w.comment.fill('Quick and kind');
  await screenshot(page, 'widget-rating');
  await w.rate.click();
  await w.rated.filter({ hasText: 'Thank you for rating this chat 4 out of 5.' }).waitFor();
  await w.survey.waitFor({ state: 'hidden' });
  await w.error.waitFor({ state: 'hidden' });

  // Rated once: after a reload the chat shows the thanks, not the survey.
  await page.reload();
  await w.launcher.click();
  await w.pastChats.filter({ hasText: 'Broken kettle' }).click();
  await w.rated.filter({ hasText: '4 out of 5' }).waitFor();
  assert.equal(await w.survey.isHidden(), true);
  await w.messages.filter({ hasText: 'My receipt' }).waitFor();

  // The agent it names sees it; so does the admin, in the console.
  const { session } = await gql(ann.token, 'query($id: ID!) { session(id: $id) { rating { score comment agentId } } }', { id });
  assert.deepEqual(session.rating, { score: 4, comment: 'Quick and kind', agentId: ann.sub });
  const adminPage = await consolePage(browser, token('admin', 'root', 'Root'));
  await adminPage.getByTestId('show-ratings').click();
  await adminPage.getByTestId('rating-stats').filter({ hasText: '1 rating · average 4.0 of 5 · 100% satisfied' }).waitFor();
  await adminPage.getByTestId('session-row').filter({ hasText: 'Broken kettle' }).getByRole('button').click();
  await adminPage.getByTestId('detail-rating').filter({ hasText: 'Rated 4 of 5: “Quick and kind”' }).waitFor();

  noPageErrors(page);
  noPageErrors(agentPage);
  noPageErrors(adminPage);
  // Off shift: the next test's chat goes to its own agent.
  await gql(ann.token, 'mutation { endShift { status } }');
});

test('an end by the agent brings up the survey', async () => {
  const bo = agent('Bo');
  const dan = customer('Dan');
  const agentPage = await onShift(browser, bo);
  const { page, w, pane } = await accepted(agentPage, dan, 'Wrong colour');
  await pane.getByTestId('end-chat').click();
  await w.status.filter({ hasText: 'This chat has ended.' }).waitFor();
  await w.survey.waitFor();
  await w.root.getByRole('radio', { name: /^5 very happy/ }).check();
  await w.rate.click();
  await w.rated.filter({ hasText: '5 out of 5' }).waitFor();
  noPageErrors(page);
  noPageErrors(agentPage);
});
