// The staff page and the kiosk page in real headless Chromium (Debian's), against the real
// `locker-hub demo`: sign-in, both banks, a delivery over MQTT arriving live, desk check-in, a
// door opened with a reason and found in the audit log, a kiosk pickup with the delivered PIN, a
// carrier drop-off on the kiosk page, the kiosk lockout after wrong PINs, a rent roll uploaded,
// previewed and applied on the Residents page, and the analytics page
// (both charts, the size table, each CSV export with its header). Every request any
// page makes must go to the hub.
//
// Run: `npm ci && npm test` in tests/browser (tests/run does it inside a network namespace with
// only loopback, so a request to anywhere else could not succeed even if it were tried).
// Screenshots land in artifacts/screenshots/ at the repository root.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  repoRoot, startDemo, launchBrowser, watchRequests, signIn, kioskRequest, eventually, CARRIER_CODE,
} from './hub.mjs';

const shots = path.join(repoRoot, 'artifacts', 'screenshots');
let hub, browser, admin, kiosk;
const requests = { count: 0, offenders: [] };
const pageErrors = [];

before(async () => {
  mkdirSync(shots, { recursive: true });
  hub = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

/** A browser context (a separate cookie jar) whose requests and script errors are watched. */
async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  watchRequests(ctx, hub.origin, requests);
  ctx.on('response', (r) => {
    if (r.status() >= 400 && r.request().resourceType() !== 'document') {
      pageErrors.push(`${r.status()} for ${r.request().resourceType()} ${r.url()}`);
    }
  });
  ctx.on('page', (p) => {
    p.on('pageerror', (e) => pageErrors.push(`${p.url()}: ${e.message}`));
    p.on('console', (m) => {
      // A page answered with 4xx on purpose (a wrong PIN is a 409) logs a load error for the
      // page itself: not a fault. Anything else that fails to load (an asset, the icon, the live
      // fragment) is.
      if (m.type() !== 'error') return;
      if (/^Failed to load resource/.test(m.text()) && m.location().url === p.url()) return;
      pageErrors.push(`${p.url()}: console: ${m.text()} (${m.location().url})`);
    });
  });
  return ctx;
}

const bank = (page, id) => page.locator(`section.bank[data-bank="${id}"]`);
const door = (page, b, d) => page.locator(`section.bank[data-bank="${b}"] a.door[data-door="${d}"]`);

let dash; // the admin's dashboard tab, left open the whole time: it must follow along live
let delivered; // { door, reservation, parcel, pin }

test('sign in and see both banks on the dashboard', async () => {
  admin = await context();
  dash = await admin.newPage();
  // Unsigned, the dashboard sends the browser to the sign-in page.
  await dash.goto(hub.origin + '/');
  assert.match(new URL(dash.url()).pathname, /^\/login/);
  await signIn(dash, hub.origin, 'admin');
  await dash.goto(hub.origin + '/');
  assert.equal(new URL(dash.url()).pathname, '/');
  await dash.locator('header nav').waitFor();
  assert.match(await dash.locator('header .who').innerText(), /admin/);
  for (const [id, doors] of [['A', 24], ['B', 12]]) {
    await bank(dash, id).waitFor();
    assert.equal(await bank(dash, id).locator('a.door').count(), doors, `bank ${id} doors`);
    // The simulated controllers connect within moments; the page follows live.
    await bank(dash, id).locator('h2 .online').waitFor({ timeout: 10_000 });
  }
  // Marks this document: a reload would lose it.
  await dash.evaluate(() => { window.__noReload = 'still here'; });
});

test('a delivery over MQTT appears on the open dashboard without a reload', async () => {
  const reserved = await kioskRequest(hub.mqtt, 'A', {
    request_id: `bt-drop-${Date.now()}`,
    type: 'start_drop_off',
    bank: 'A',
    carrier_code: CARRIER_CODE,
    recipient: { type: 'unit', unit: '101' },
    size: 's',
    tracking: 'BT-0001',
  });
  assert.equal(reserved.type, 'reserved', JSON.stringify(reserved));
  const d = reserved.door;
  // The simulated bank opens the door on the unlock; the page shows it open, then (after the
  // confirmation and the simulated carrier closing it) occupied.
  await door(dash, 'A', d).and(dash.locator('.open')).waitFor({ timeout: 10_000 });
  const confirmed = await kioskRequest(hub.mqtt, 'A', {
    request_id: `bt-confirm-${Date.now()}`,
    type: 'confirm_parcel',
    reservation: reserved.reservation,
  });
  assert.equal(confirmed.type, 'parcel_confirmed', JSON.stringify(confirmed));
  await dash.locator(`section.bank[data-bank="A"] a.door[data-door="${d}"][data-status="occupied"]:not(.open)`)
    .waitFor({ timeout: 15_000 });
  assert.equal(await dash.evaluate(() => window.__noReload), 'still here', 'the dashboard reloaded');
  await dash.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });

  // The resident's PIN, as a notifier would read it from the outbox (admin session).
  const pin = await eventually('the delivery notification in the outbox', async () => {
    const r = await dash.request.get(hub.origin + '/api/v1/outbox');
    assert.equal(r.status(), 200);
    const items = await r.json();
    const n = items.map((i) => i.notification).find((n) => n.kind === 'delivered' && n.parcels.includes(confirmed.parcel));
    return n && n.pin;
  });
  delivered = { door: d, parcel: confirmed.parcel, pin };
});

test('desk check-in of a parcel', async () => {
  const page = await admin.newPage();
  await page.goto(hub.origin + '/parcels');
  const form = page.locator('form[action="/parcels/check-in"]');
  await form.locator('input[name=resident]').fill('r-102');
  await form.locator('input[name=tracking]').fill('DESK-0001');
  await form.locator('input[name=carrier]').fill('demo-carrier');
  await Promise.all([page.waitForNavigation(), form.locator('button').click()]);
  const ok = await page.locator('p.ok').innerText();
  const id = ok.match(/parcel (p-[0-9a-f]+)/)?.[1];
  assert.ok(id, `check-in message names the parcel: ${ok}`);
  // Found by tracking number, at the desk, with its timeline.
  await page.goto(`${hub.origin}/parcels?tracking=DESK-0001`);
  const row = page.locator('tr', { hasText: id });
  await row.waitFor();
  assert.match(await row.innerText(), /desk/i);
  await page.goto(`${hub.origin}/parcels/${id}`);
  assert.match(await page.locator('main').innerText(), /r-102/);
  await page.close();
});

test('open a door with a reason and find it in the audit log', async () => {
  const page = await admin.newPage();
  const reason = `browser test ${Date.now()}: checking the hinge`;
  await page.goto(hub.origin + '/compartments/B/5');
  const form = page.locator('form[action$="/open"]');
  await form.locator('input[name=reason]').fill(reason);
  await Promise.all([page.waitForNavigation(), form.locator('button').click()]);
  assert.match(await page.locator('p.ok').innerText(), /opening bank B door 5/);
  // The open dashboard shows the door open.
  await door(dash, 'B', 5).and(dash.locator('.open')).waitFor({ timeout: 10_000 });
  await page.goto(hub.origin + '/audit?bank=B');
  const row = page.locator('tr', { hasText: reason });
  await row.waitFor();
  assert.match(await row.innerText(), /admin/, 'the action is recorded under the user');
  await page.close();
});

test('kiosk pickup with the PIN from the delivery', async () => {
  assert.ok(delivered, 'the delivery test ran');
  kiosk = await context();
  const page = await kiosk.newPage();
  await signIn(page, hub.origin, 'kiosk');
  // A kiosk account lands on the kiosk page, and may use nothing else.
  assert.equal(new URL(page.url()).pathname, '/kiosk');
  assert.equal((await page.goto(hub.origin + '/')).status(), 403);
  await page.goto(hub.origin + '/kiosk');
  await page.screenshot({ path: path.join(shots, 'kiosk-banks.png') });
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: /Demo bank A/ }).click()]);
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Collect a parcel' }).click()]);
  // Typed on the on-screen keypad, as on a tablet.
  for (const digit of delivered.pin) await page.click(`.keypad button[data-key="${digit}"]`);
  assert.equal(await page.inputValue('#pin'), delivered.pin);
  await page.screenshot({ path: path.join(shots, 'kiosk-pin.png') });
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Open my locker' }).click()]);
  assert.match(await page.locator('h1').innerText(), /open/i);
  assert.equal(await page.locator('[data-doors]').getAttribute('data-doors'), String(delivered.door));
  await page.screenshot({ path: path.join(shots, 'kiosk-open.png') });
  // The staff dashboard sees the pickup door open.
  await door(dash, 'A', delivered.door).and(dash.locator('.open')).waitFor({ timeout: 10_000 });
  await page.close();
});

test('a carrier drop-off on the kiosk page', async () => {
  const page = await kiosk.newPage();
  await page.goto(hub.origin + '/kiosk/B');
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'Deliver a parcel' }).click()]);
  await page.fill('#code', CARRIER_CODE);
  await page.fill('#unit', '103');
  await page.selectOption('select[name=size]', 'm');
  await page.fill('input[name=tracking]', 'KIOSK-0001');
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Open a locker' }).click()]);
  assert.equal(await page.locator('h1').innerText(), 'Put the parcel in');
  const d = await page.locator('[data-door]').getAttribute('data-door');
  // The staff dashboard sees the door open; the carrier taps Done before closing it.
  await door(dash, 'B', d).and(dash.locator('.open')).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: path.join(shots, 'kiosk-deliver.png') });
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: /Done/ }).click()]);
  assert.equal(await page.locator('h1').innerText(), 'Thank you');
  await dash.locator(`section.bank[data-bank="B"] a.door[data-door="${d}"][data-status="occupied"]:not(.open)`)
    .waitFor({ timeout: 15_000 });
  await page.close();
});

test('wrong PINs lock the kiosk', async () => {
  const page = await kiosk.newPage();
  await page.goto(hub.origin + '/kiosk/B/pickup');
  let locked = false;
  let status = 0;
  for (let i = 0; i < 8 && !locked; i++) {
    await page.fill('#pin', `9${String(i).padStart(5, '0')}`);
    const [resp] = await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Open my locker' }).click()]);
    status = resp.status();
    const msg = await page.locator('p.err').innerText();
    locked = /locked/.test(msg);
    if (!locked) assert.match(msg, /not right/, `attempt ${i + 1}`);
  }
  assert.ok(locked, 'the keypad locked after repeated wrong PINs');
  assert.equal(status, 429);
  await page.screenshot({ path: path.join(shots, 'kiosk-locked.png') });
  // The dashboard shows the lockout live.
  await bank(dash, 'B').locator('h2', { hasText: 'keypad locked' }).waitFor({ timeout: 10_000 });
  assert.equal(await dash.evaluate(() => window.__noReload), 'still here');
  await page.close();
});

test('rent roll: the Yardi export uploaded, previewed, applied, and its residents listed', async () => {
  const page = await admin.newPage();
  await page.goto(hub.origin + '/residents');
  await page.locator('details.roll > summary').click();
  assert.match(await page.locator('[data-last-import]').innerText(), /No rent roll imported yet/);
  const form = page.locator('form[action="/roll"]');
  await form.locator('select[name=layout]').selectOption('yardi');
  await form
    .locator('input[type=file]')
    .setInputFiles(path.join(repoRoot, 'hub', 'roll', 'samples', 'yardi.csv'));
  await Promise.all([page.waitForNavigation(), form.locator('button').click()]);
  const summary = await page.locator('p[data-summary]').innerText();
  assert.match(summary, /3 rows read as yardi \(header on line 5/);
  assert.match(summary, /3 to create/);
  await page.screenshot({ path: path.join(shots, 'rent-roll-preview.png'), fullPage: true });
  const apply = page.locator('form[action="/roll/apply"] button');
  await Promise.all([page.waitForNavigation(), apply.click()]);
  assert.match(await page.locator('p.ok').innerText(), /Imported yardi\.csv: 3 created/);
  assert.match(await page.locator('[data-last-import]').textContent(), /from yardi\.csv/);
  await page.goto(hub.origin + '/residents?q=Garc%C3%ADa');
  await page.locator('tr[data-resident="t0001004"]').waitFor();
  await page.close();
});

test('analytics: both charts, the size table, and every CSV export with its header', async () => {
  // The page is part of the hub: anything but a 200 fails (Chromium reports an empty error page
  // only as a navigation error, so the status is asked first, with the answer in the message).
  const answer = await admin.request.get(hub.origin + '/analytics');
  assert.equal(answer.status(), 200,
    `/analytics answers 200 to a signed-in admin, not ${answer.status()}: ${(await answer.text()).slice(0, 300)}`);
  const page = await admin.newPage();
  const resp = await page.goto(hub.origin + '/analytics');
  assert.equal(resp.status(), 200, '/analytics answers 200 in the browser too');
  assert.equal(new URL(page.url()).pathname, '/analytics', 'no redirect away from the page');
  assert.equal(await page.locator('main h1').innerText(), 'Analytics');
  // Parcels per day: one bar per day of the 30-day window.
  const perDay = page.locator('svg.chart[aria-label="parcels received per day"]');
  assert.equal(await perDay.count(), 1, 'the parcels-per-day chart');
  assert.equal(await perDay.locator('rect.bar').count(), 30, 'one bar per day');
  // Busiest hours: a 7 × 24 grid.
  const heat = page.locator('svg.chart.heat[aria-label="parcels received by weekday and hour"]');
  assert.equal(await heat.count(), 1, 'the weekday × hour heatmap');
  assert.equal(await heat.locator('rect').count(), 7 * 24, 'one cell per weekday and hour');
  // Utilisation per size class: a header row and at least one size.
  const sizes = page.locator('h2:has-text("Utilisation per size class") + table tr');
  assert.ok(await sizes.count() >= 2, `the size table has rows (${await sizes.count()})`);
  assert.equal(await page.locator('.tiles > div').count(), 2, 'the pickup-time and overdue tiles');
  await page.screenshot({ path: path.join(shots, 'analytics.png'), fullPage: true });

  // Each chart's CSV link, followed as the browser would: 200, text/csv, its header line first,
  // then data rows of the same width.
  const headers = {
    '/analytics/deliveries.csv': 'date,parcels',
    '/analytics/heatmap.csv': ['weekday', ...Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0'))].join(','),
    '/analytics/utilisation.csv': 'size,compartments,occupied_now,average_30d',
    '/analytics/pickup.csv': 'median_minutes_delivery_to_pickup,pickups_30d,overdue_now',
  };
  const hrefs = await page.locator('a[download]').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.deepEqual([...hrefs].sort(), Object.keys(headers).sort(), 'one CSV link per chart');
  const rows = {};
  for (const href of hrefs) {
    const r = await admin.request.get(new URL(href, hub.origin).href);
    assert.equal(r.status(), 200, `${href} answers 200`);
    assert.match(r.headers()['content-type'] ?? '', /^text\/csv\b/, `${href} is text/csv`);
    const lines = (await r.text()).split('\r\n');
    assert.equal(lines.pop(), '', `${href} ends with a line break`);
    assert.equal(lines[0], headers[href], `${href} header line`);
    assert.ok(lines.length >= 2, `${href} has data under its header: ${lines.join(' | ')}`);
    const width = headers[href].split(',').length;
    for (const line of lines.slice(1)) {
      assert.equal(line.split(',').length, width, `${href}: a row as wide as the header: ${line}`);
    }
    rows[href] = lines.slice(1).map((l) => l.split(','));
  }
  assert.equal(rows['/analytics/deliveries.csv'].length, 30, 'deliveries: one row per day');
  assert.equal(rows['/analytics/heatmap.csv'].length, 7, 'heatmap: one row per weekday');
  assert.equal(rows['/analytics/pickup.csv'].length, 1, 'pickup: one row');
  // The parcels the tests above delivered are counted.
  const received = rows['/analytics/deliveries.csv'].reduce((n, [, c]) => n + Number(c), 0);
  assert.ok(received >= 1, `deliveries.csv counts the parcels delivered above (${received})`);
  await page.close();
});

test('every request went to the hub, and no page script failed', async () => {
  await dash.screenshot({ path: path.join(shots, 'dashboard-end.png'), fullPage: true });
  assert.ok(requests.count > 20, `requests were watched (${requests.count})`);
  assert.deepEqual(requests.offenders, [], 'requests that did not go to the hub');
  assert.deepEqual(pageErrors, [], 'script errors on the pages');
});
