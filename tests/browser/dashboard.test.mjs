// The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no
// browser download). Starts fake-zai and the zai2api binary on free loopback ports with AUTH_TOKEN
// set and a temporary state directory, then: logs in, sees the traffic in the statistics, the
// request table (each row naming its instance) and the 24-hour charts, pastes three tokens, sees them masked (and
// never raw anywhere in the page), deletes one, switches auto-refresh off (the choice survives a
// reload and polling stops), logs out, and saves screenshots to test-output/ (dashboard.png, plus
// login.png and status.png).
//
// Binaries: $ZAI2API_BIN / $FAKE_ZAI_BIN, else $CARGO_TARGET_DIR/debug, else <repo>/target/debug
// (scripts/test.sh builds them first). Browser: $CHROMIUM_PATH, else /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
const GATEWAY_BIN = process.env.ZAI2API_BIN || path.join(TARGET, 'debug', 'zai2api');
const FAKE_BIN = process.env.FAKE_ZAI_BIN || path.join(TARGET, 'debug', 'fake-zai');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const OUTPUT_DIR = path.join(ROOT, 'test-output');

const PASSWORD = 'browser-test-password-7f3a';
// Distinctive raw tokens, so a leak into the page would be unmistakable.
const RAW = ['rawtok-alpha-5c1e9b7d2a', 'rawtok-bravo-0f8e6d4c3b', 'rawtok-charlie-9a7b5c3d1e'];

const procs = [];
const tempDirs = [];
let gateway;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function start(bin, args, options) {
  assert.ok(existsSync(bin), `${bin} not found: build the workspace first (cargo build --workspace --bins)`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  child.log = () => log;
  procs.push(child);
  return child;
}

async function waitFor(url, child, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode}):\n${child.log()}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up:\n${child.log()}`);
}

function tempDir(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

before(async () => {
  const fakePort = await freePort();
  const port = await freePort();
  const fakeUrl = `http://127.0.0.1:${fakePort}`;
  const users = RAW.flatMap((t, i) => ['--user', `${t}:browser-user-${i}`]);
  const fake = start(FAKE_BIN, ['--port', String(fakePort), ...users]);
  await waitFor(`${fakeUrl}/`, fake);

  const env = { ...process.env };
  for (const name of ['TOKEN', 'TOKEN_POOL', 'AUTH_TOKEN', 'MODEL', 'TOKEN_HASH_SECRET', 'RUST_LOG']) delete env[name];
  Object.assign(env, {
    BASE: fakeUrl,
    PORT: String(port),
    LISTEN_HOST: '127.0.0.1',
    AUTH_TOKEN: PASSWORD,
    SECRET_KEY: 'browser-test-session-key',
    ANONYMOUS_MODE: 'true',
    ZAI2API_STATE_DIR: tempDir('zai2api-browser-state-'),
  });
  // A scratch working directory, so no developer .env is picked up.
  const child = start(GATEWAY_BIN, [], { env, cwd: tempDir('zai2api-browser-cwd-') });
  gateway = { url: `http://127.0.0.1:${port}`, child };
  await waitFor(`${gateway.url}/health`, child);
});

after(async () => {
  for (const child of procs.reverse()) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => {
        const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 10_000);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
      });
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** Some API traffic, so the statistics and the request table have something to show. */
async function apiTraffic() {
  const auth = { authorization: `Bearer ${PASSWORD}`, 'content-type': 'application/json' };
  const models = await fetch(`${gateway.url}/v1/models?auth_token=${PASSWORD}`);
  assert.equal(models.status, 200);
  const chat = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ model: 'GLM-4.6', messages: [{ role: 'user', content: 'Hello from the browser test' }] }),
  });
  assert.equal(chat.status, 200, await chat.text());
  const denied = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: 'Bearer wrong' } });
  assert.equal(denied.status, 401);
}

test('dashboard: log in, add, see masked, delete, auto-refresh off, log out', { timeout: 120_000 }, async () => {
  await apiTraffic();

  const context = await chromium.launchPersistentContext(tempDir('zai2api-chromium-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1440, height: 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // Script errors and CSP violations show up here; the page must have none.
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()} @ ${m.location().url}`); });
  const statsPolls = [];
  page.on('request', (r) => { if (r.url().endsWith('/dashboard/api/stats')) statsPolls.push(Date.now()); });

  try {
    // 1. The login page.
    await page.goto(`${gateway.url}/dashboard`);
    await page.locator('#password').waitFor();
    await page.fill('#password', 'not-the-password');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor();
    assert.match(await page.textContent('#login-error'), /Wrong password/);

    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'login.png') });

    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL(`${gateway.url}/dashboard`), page.click('#login-submit')]);
    await page.locator('#pool-table').waitFor();
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'zai2api_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');

    // The statistics show the traffic from before.
    await page.waitForFunction(() => document.getElementById('stat-total').textContent === '3');
    assert.equal(await page.textContent('#stat-successes'), '2');
    assert.equal(await page.textContent('#stat-failures'), '1');
    const paths = await page.locator('#recent-rows tr td:nth-child(3)').allTextContents();
    assert.deepEqual(paths, ['/v1/models', '/v1/chat/completions', '/v1/models']);
    // Each row names the instance that served it; the chat names its model and tokens.
    const instances = await page.locator('#recent-rows tr td:nth-child(10)').allTextContents();
    assert.equal(instances.length, 3);
    for (const i of instances) assert.match(i, /^\S+-[0-9a-f]{6}$/, 'host name plus a random suffix');
    assert.match(await page.textContent('#recent-rows tr:nth-child(2) td:nth-child(8)'), /^GLM-4\.6$/i);
    assert.match(await page.textContent('#recent-rows tr:nth-child(2) td:nth-child(9)'), /^\d+$/);

    // The 24-hour charts are drawn from /dashboard/api/history, with this traffic in them.
    await page.waitForFunction(() => Number(document.getElementById('history-charts').dataset.points) >= 1);
    const chart = (id) => page.evaluate((id) => {
      const svg = document.querySelector(`#${id} svg`);
      return svg && {
        series: Number(svg.dataset.series),
        max: Number(svg.dataset.max),
        names: [...svg.querySelectorAll('path[data-series]')].map((p) => p.dataset.series),
        drawn: [...svg.querySelectorAll('path[data-series]')].every((p) => /^M[\d.]+,[\d.]+/.test(p.getAttribute('d'))),
        legend: [...document.querySelectorAll(`#${id} .legend .key`)].map((k) => k.textContent),
        // What a person sees: a line through two minutes or more, or a dot for a lone minute.
        marks: svg.querySelectorAll('circle.dot').length
          + [...svg.querySelectorAll('path[data-series]')].filter((p) => p.getAttribute('d').includes('L')).length,
      };
    }, id);
    const requests = await chart('chart-requests');
    assert.deepEqual(requests.names, ['requests']);
    assert.ok(requests.drawn);
    assert.equal(requests.max, 3, 'three requests in this minute');
    const errors = await chart('chart-errors');
    assert.deepEqual(errors.names, ['client error'], 'the 401 is a client error');
    assert.equal(errors.max, 1);
    const latency = await chart('chart-latency');
    assert.deepEqual(latency.names, ['p50', 'p95']);
    assert.ok(latency.drawn);
    assert.ok(latency.marks >= 2, 'p50 and p95 are visible');
    const tokens = await chart('chart-tokens');
    assert.equal(tokens.series, 1, 'one model served tokens');
    assert.match(tokens.legend[0], /^GLM-4\.6$/i);
    assert.ok(tokens.max > 0);

    // 2. Paste three tokens, comma and newline mixed.
    await page.fill('#add-tokens', `${RAW[0]}, ${RAW[1]}\n${RAW[2]}\n`);
    await page.click('#add-submit');
    await page.waitForFunction(() => /Added 3/.test(document.getElementById('add-result').textContent));
    const rows = page.locator('#pool-rows tr[data-token-id]');
    await page.waitForFunction(() => document.querySelectorAll('#pool-rows tr[data-token-id]').length === 3);
    const masked = await page.locator('#pool-rows tr[data-token-id] td:first-child').allTextContents();
    assert.equal(masked.length, 3);
    for (const m of masked) assert.match(m, /^token:[0-9a-f]{8}$/);
    assert.equal(await page.inputValue('#add-tokens'), '', 'the textarea is cleared');
    const states = await page.locator('#pool-rows .pill').allTextContents();
    assert.deepEqual(states, ['Enabled', 'Enabled', 'Enabled']);

    // 3. No raw token anywhere in the page or in what the page fetched.
    const html = await page.content();
    for (const raw of RAW) assert.ok(!html.includes(raw), `raw token ${raw} in the page`);
    const apiText = await page.evaluate(async () => {
      const a = await fetch('/dashboard/api/tokens').then((r) => r.text());
      const b = await fetch('/dashboard/api/stats').then((r) => r.text());
      return a + b;
    });
    for (const raw of RAW) assert.ok(!apiText.includes(raw), `raw token ${raw} in the API`);

    // A chat now may be served by a pool token; the request table shows it masked at most.
    await apiTraffic();

    // 4. Delete one: the first click arms the button, the second deletes.
    const victim = await rows.first().getAttribute('data-token-id');
    const button = page.locator(`#pool-rows tr[data-token-id="${victim}"] button`);
    await button.click();
    await page.waitForFunction((id) => {
      const b = document.querySelector(`#pool-rows tr[data-token-id="${id}"] button`);
      return b && b.textContent === 'Confirm delete';
    }, victim);
    await button.click();
    await page.waitForFunction(() => document.querySelectorAll('#pool-rows tr[data-token-id]').length === 2);
    assert.equal(await page.locator(`#pool-rows tr[data-token-id="${victim}"]`).count(), 0);
    assert.match(await page.textContent('#add-result'), /deleted/);

    // 5. Auto-refresh is on by default and polls every 5 s.
    assert.equal(await page.isChecked('#auto-refresh'), true);
    statsPolls.length = 0;
    await page.waitForTimeout(5_600);
    assert.ok(statsPolls.length >= 1, 'auto-refresh polled');

    // Switch it off: no more polling, and the choice survives a reload.
    await page.click('label.switch');
    assert.equal(await page.isChecked('#auto-refresh'), false);
    assert.equal(await page.evaluate(() => localStorage.getItem('zai2api.dashboard.autoRefresh')), 'off');
    statsPolls.length = 0;
    await page.waitForTimeout(5_600);
    assert.equal(statsPolls.length, 0, 'no polling while auto-refresh is off');
    await page.reload();
    await page.locator('#pool-table').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#pool-rows tr[data-token-id]').length === 2);
    assert.equal(await page.isChecked('#auto-refresh'), false, 'toggle state persisted');

    // The screenshot: the dashboard as a person sees it.
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'dashboard.png'), fullPage: true });

    // 6. Log out: the login form is back and the API refuses.
    await Promise.all([page.waitForURL(`${gateway.url}/dashboard`), page.click('#logout')]);
    await page.locator('#password').waitFor();
    const status = await page.evaluate(() => fetch('/dashboard/api/stats').then((r) => r.status));
    assert.equal(status, 401);
    assert.ok(!(await context.cookies()).some((c) => c.name === 'zai2api_session'), 'cookie cleared');

    // The public status page renders too.
    await page.goto(`${gateway.url}/`);
    assert.match(await page.textContent('.status-headline'), /Gateway is up/);
    assert.match(await page.textContent('.facts'), /Reachable/);
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'status.png') });

    // Chromium reports every 401 it loads; these two were asked for above.
    const expected = (p) => / 401 .*@ http:\/\/127\.0\.0\.1:\d+\/dashboard\/(login|api\/stats)$/.test(p);
    assert.deepEqual(problems.filter((p) => !expected(p)), []);
  } finally {
    await context.close();
  }

  // The gateway's log never shows a raw token or the password.
  const log = gateway.child.log();
  for (const secret of [...RAW, PASSWORD]) assert.ok(!log.includes(secret), `${secret} in the gateway log`);
});

test('captcha: a waiting request is released by solving the widget in the dashboard', { timeout: 120_000 }, async () => {
  // Its own stack: today's site demanding a captcha on every completion, and a gateway whose
  // profile points the widget at fake-zai's stand-in for Aliyun's CaptchaJS.
  const fakePort = await freePort();
  const port = await freePort();
  const fakeUrl = `http://127.0.0.1:${fakePort}`;
  const fake = start(FAKE_BIN, ['--port', String(fakePort), '--era', '2026-09', '--captcha-risk', 'always']);
  await waitFor(`${fakeUrl}/`, fake);
  const dir = tempDir('zai2api-browser-captcha-');
  const profile = path.join(dir, 'profile.toml');
  writeFileSync(profile, `[captcha]\nscript_url = "${fakeUrl}/_fake/captcha/widget.js"\n`);
  const env = { ...process.env };
  for (const name of ['TOKEN', 'TOKEN_POOL', 'AUTH_TOKEN', 'MODEL', 'TOKEN_HASH_SECRET', 'RUST_LOG']) delete env[name];
  Object.assign(env, {
    BASE: fakeUrl,
    PORT: String(port),
    LISTEN_HOST: '127.0.0.1',
    AUTH_TOKEN: PASSWORD,
    SECRET_KEY: 'browser-test-session-key',
    ANONYMOUS_MODE: 'true',
    ZAI2API_STATE_DIR: tempDir('zai2api-browser-captcha-state-'),
    UPSTREAM_PROFILE: profile,
    CAPTCHA_WAIT: '60',
  });
  const child = start(GATEWAY_BIN, [], { env, cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, child);

  // The request blocks: upstream wants a captcha and none is queued yet.
  const chat = fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PASSWORD}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'GLM-5.3-Flash', messages: [{ role: 'user', content: 'hi [[fake:plain]]' }] }),
  }).then(async (r) => ({ status: r.status, body: await r.text() }));

  const context = await chromium.launchPersistentContext(tempDir('zai2api-chromium-captcha-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  try {
    await page.goto(`${url}/dashboard`);
    await page.fill('#password', PASSWORD);
    await Promise.all([page.waitForURL(`${url}/dashboard`), page.click('#login-submit')]);
    // The banner says a request waits (the dashboard polls every few seconds).
    await page.locator('#captcha-banner').waitFor({ state: 'visible', timeout: 20_000 });
    assert.equal(await page.textContent('#captcha-waiting'), '1');
    await page.click('#captcha-solve');
    const done = await chat;
    assert.equal(done.status, 200, done.body);
    assert.match(done.body, /Hello!/);
    await page.waitForFunction(() => document.getElementById('captcha-note').textContent.includes('Solved'));
    await page.click('#refresh-now');
    await page.waitForFunction(() => document.getElementById('captcha-stats').textContent.includes('used 1'));
    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT_DIR, 'captcha.png') });
    const status = await page.evaluate(() => fetch('/dashboard/api/captcha').then((r) => r.json()));
    assert.equal(status.used, 1);
    assert.equal(status.waits_succeeded, 1);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
