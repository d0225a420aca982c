// An offer nobody accepts lapses at expiresAt and goes to the next agent.
// Server: ROUTING_MODE=fair, OFFER_TIMEOUT_SECS=3.

import { test } from 'node:test';
import { setUp, onShift, startChat, agent, customer } from '../lib.mjs';

const { browser, site } = await setUp();

test('an offer lapses and moves on', async () => {
  const ann = agent('Ann');
  const ben = agent('Ben');
  // Ann has been free longest: fair routing offers to her first.
  const annPage = await onShift(browser, ann);
  const benPage = await onShift(browser, ben);
  const { w } = await startChat(browser, site, customer('Gus').token, 'Anyone there?');

  const annOffer = annPage.getByTestId('offer').filter({ hasText: 'Anyone there?' });
  await annOffer.getByTestId('offer-countdown').filter({ hasText: /Expires in [123] s/ }).waitFor();
  // Ann lets it lapse: it leaves her list and is offered to Ben.
  await annOffer.waitFor({ state: 'detached', timeout: 15000 });
  const benOffer = benPage.getByTestId('offer').filter({ hasText: 'Anyone there?' });
  await benOffer.getByRole('button', { name: /Accept/ }).click();
  await w.status.filter({ hasText: 'You are chatting with Ben.' }).waitFor();
});
