// What every browser spec shares: Chromium as Debian ships it, started so
// that it never reaches for the network; tokens; a GraphQL client for the
// test's own calls; pages of a "shop" on another origin; axe-core.
// The server is started by api/tests/browser.rs, which gives SWITCHBOARD_URL,
// JWT_SECRET and SHOP_PORT (an origin the server allows, or not).

import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const SERVER = process.env.SWITCHBOARD_URL;
const SECRET = process.env.JWT_SECRET;
assert.ok(SERVER && SECRET, 'run by api/tests/browser.rs: SWITCHBOARD_URL and JWT_SECRET must be set');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The README's pictures are rewritten only when asked (UPDATE_SCREENSHOTS=1),
// like schema.graphql; otherwise they are still taken, into a scratch folder.
export const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS
  ? join(here, '..', '..', 'docs', 'screenshots')
  : join(tmpdir(), 'switchboard-screenshots');

/** Chromium with nothing that phones home, in a fresh profile of its own. */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Playwright starts each browser on a fresh temporary user-data-dir.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 token as the shop's identity service would issue it. */
export function token(role, sub, name) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ sub, role, ...(name ? { name } : {}), iat: now, exp: now + 3600 });
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** A unique suffix, so each spec's people are its own. */
export const run = Math.random().toString(36).slice(2, 8);

/** The test's own GraphQL calls (no Origin: not a browser page); `tok` null for none. */
export async function gql(tok, query, variables = {}) {
  const r = await fetch(`${SERVER}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(tok ? { authorization: `Bearer ${tok}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json();
  if (body.errors) throw new Error(`${body.errors[0].extensions && body.errors[0].extensions.code}: ${body.errors[0].message}`);
  return body.data;
}

/** Whether a call to the context provider carries the token the README promises (HS256 with JWT_SECRET, aud context, sub the customer). */
function contextCall(authorization, customerId) {
  const [head, body, sig] = (authorization || '').replace(/^Bearer /, '').split('.');
  if (!sig || createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url') !== sig) return false;
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  return claims.aud === 'context' && claims.sub === customerId && claims.exp * 1000 > Date.now();
}

/**
 * A shop: pages on another origin that embed the widget with one script
 * tag. `port` 0 picks a free one. Pages: /?token=… (the widget with that
 * customer token; none: the visitor is a guest). Also the shop's back
 * office, which the server calls when the spec's settings point it here:
 * POST /tickets (a ticket system: answers {id, url}, keeps each request in
 * `tickets`) and GET /context?customerId=… (the customer context provider:
 * `contexts` holds the answer per customer id; others get 404).
 */
export async function shop(port = 0) {
  const tickets = [];
  const contexts = new Map();
  let origin;
  const backOffice = (req, res, url) => {
    if (req.method === 'POST' && url.pathname === '/tickets') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        tickets.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        const id = `T-${100 + tickets.length}`;
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id, url: `${origin}/tickets/${id}` }));
      });
      return true;
    }
    if (req.method === 'GET' && url.pathname === '/context') {
      const customerId = url.searchParams.get('customerId');
      const answer = contexts.get(customerId);
      const signed = contextCall(req.headers.authorization, customerId);
      res.writeHead(!signed ? 401 : answer ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer || {}));
      return true;
    }
    return false;
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://shop');
    if (backOffice(req, res, url)) return;
    const tok = url.searchParams.get('token') || '';
    const topics = url.searchParams.get('topics') || '';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>A shop</title>
<style>body{font-family:serif;margin:0;padding:24px} button{all:unset} *{letter-spacing:2px !important}</style>
</head><body><main><h1>A shop page</h1><p>Products and prices.</p></main>
<script src="${SERVER}/widget.js" async></script>
<switchboard-chat${tok ? ` token="${tok.replace(/[^A-Za-z0-9._-]/g, '')}"` : ''} heading="Help from the shop"${topics ? ` topics="${topics.replace(/[^a-z,]/g, '')}"` : ''}></switchboard-chat>
</body></html>`);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin, tickets, contexts,
    url: (tok, extra = '') => `${origin}/?token=${tok || ''}${extra}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Chromium and the shop on SHOP_PORT (the origin the server allows), both closed after the spec. */
export async function setUp() {
  const browser = await launch();
  const site = await shop(Number(process.env.SHOP_PORT));
  after(async () => {
    await browser.close();
    await site.close();
  });
  return { browser, site };
}

/** The widget's shadow root is open: Playwright's locators pierce it. */
export function widget(page) {
  const w = page.locator('switchboard-chat');
  return {
    launcher: w.getByTestId('launcher'),
    panel: w.getByTestId('panel'),
    status: w.getByTestId('status'),
    subject: w.getByLabel('What can we help you with? (optional)'),
    start: w.getByTestId('start'),
    input: w.getByLabel('Message', { exact: true }),
    send: w.getByTestId('send'),
    messages: w.getByTestId('messages').getByTestId('message'),
    system: w.getByTestId('system-line'),
    typing: w.getByTestId('typing'),
    badge: w.getByTestId('unread-badge'),
    banner: w.getByTestId('reconnecting'),
    error: w.getByTestId('error'),
    end: w.getByTestId('end-chat'),
    afterEnd: w.getByTestId('after-end'),
    pastChats: w.getByTestId('past-chat'),
    back: w.getByTestId('back'),
    survey: w.getByTestId('survey'),
    comment: w.getByLabel('Anything to add? (optional)'),
    rate: w.getByTestId('rate'),
    rated: w.getByTestId('rated'),
    root: w,
  };
}

/** The console, signed in through the #token= fragment. */
export async function consolePage(browser, tok, viewport) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  watch(page, 'console');
  await page.goto(`${SERVER}/console#token=${tok}`);
  await page.getByTestId('who').filter({ hasText: 'Signed in as' }).waitFor();
  return page;
}

/** Fails the spec on any error the page logs (CSP violations included). */
export function watch(page, name) {
  page.on('pageerror', (e) => {
    console.error(`[${name}] page error: ${e.message}`);
    page.__errors = (page.__errors || []).concat(e.message);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') {
      const text = m.text();
      // A refused origin and a cut network are what some specs are about.
      if (/net::ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_RESET|ERR_FAILED|CORS|403|WebSocket/.test(text)) return;
      console.error(`[${name}] console error: ${text}`);
      page.__errors = (page.__errors || []).concat(text);
    }
  });
}

export function noPageErrors(page) {
  assert.deepEqual(page.__errors || [], [], 'the page logged errors');
}

const AXE = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** axe-core over the page (shadow roots included): no serious or critical violation. */
export async function axe(page, what) {
  // Through DevTools, not a <script>: the console's CSP rightly refuses inline scripts.
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`), [], `axe on ${what}`);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** Agent sub, a name, a token. */
export function agent(name) {
  const sub = `${name.toLowerCase()}-${run}`;
  return { sub, name, token: token('agent', sub, name) };
}

/** Customer sub and token; `fullName` goes in the token's name claim. */
export function customer(name, fullName) {
  const sub = `${name.toLowerCase()}-${run}`;
  return { sub, token: token('customer', sub, fullName) };
}

/** Clicks the button and waits until the agent's status is `status`. */
export async function shift(page, button, status) {
  await page.getByTestId(button).click();
  await page.locator(`[data-testid="agent-status"][data-status="${status}"]`).waitFor();
}

/** A console signed in as `who`, on shift. */
export async function onShift(browser, who) {
  const page = await consolePage(browser, who.token);
  await shift(page, 'start-shift', 'AVAILABLE');
  return page;
}

/** A customer on the shop's page who opens the widget and starts a chat about `subject`. */
export async function startChat(browser, site, tok, subject, { beforeLoad } = {}) {
  const page = await (await browser.newContext()).newPage();
  watch(page, subject);
  // Routes for the page's WebSockets must be in place before it loads.
  if (beforeLoad) await beforeLoad(page);
  await page.goto(site.url(tok));
  const w = widget(page);
  await w.launcher.click();
  await w.subject.fill(subject);
  await w.start.click();
  return { page, w };
}

/** Sends a file into a session through the API (a GraphQL multipart request), as `tok`. */
export async function sendFile(tok, sessionId, filename, text, caption = null) {
  const form = new FormData();
  form.append('operations', JSON.stringify({
    query: 'mutation($input: SendFileInput!) { sendFile(input: $input) { seq } }',
    variables: { input: { sessionId, file: null, caption, clientMessageId: `file-${filename}` } },
  }));
  form.append('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.append('0', new Blob([text], { type: 'text/plain' }), filename);
  const r = await fetch(`${SERVER}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${tok}` }, body: form });
  const body = await r.json();
  if (body.errors) throw new Error(`${body.errors[0].extensions && body.errors[0].extensions.code}: ${body.errors[0].message}`);
  return body.data.sendFile;
}

/** The id of the customer's newest session. */
export async function newestSession(tok) {
  const { mySessions } = await gql(tok, '{ mySessions(first: 1) { nodes { id } } }');
  return mySessions.nodes[0].id;
}
