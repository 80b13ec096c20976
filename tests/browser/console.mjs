// Drives Debian's chromium through the console for tests/integration/test_console.py.
//   node console.mjs SCENARIO   (env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD,
//                                SHOTS (screenshot dir), JOB, EVIL_URL, TASK)
// Prints one JSON line with what it saw; exits 1 with the error otherwise.
// Never downloads a browser; all traffic stays on 127.0.0.1.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = process.env;
const base = env.CONSOLE_URL;
const scenario = process.argv[2];

async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'rlsworker-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 760 },
    httpCredentials: env.NO_CREDENTIALS ? undefined
      : { username: env.CONSOLE_USER, password: env.WRONG_PASSWORD || env.CONSOLE_PASSWORD,
          origin: base },
  });
  return { ctx, dir };
}

async function open(page, view) {
  await page.goto(base + '/ui/#' + view);
  await page.waitForSelector(`body[data-loaded="${view}"]`, { timeout: 15000 });
}

async function show(page, view) {
  await page.evaluate(v => { location.hash = v; }, view);
  await page.waitForFunction(v => document.body.dataset.loaded === v &&
    location.hash === '#' + v, view, { timeout: 15000 });
}

async function shot(page, name) {
  if (env.SHOTS) await page.screenshot({ path: join(env.SHOTS, name + '.png') });
}

async function filterJobs(page, state) {
  await page.selectOption('form.filters select[name=state]', state);
  await Promise.all([
    page.waitForResponse(r => r.url().includes('/ui/api/jobs')),
    page.click('form.filters button[type=submit]'),
  ]);
  await page.waitForFunction(() => document.body.dataset.loaded === 'jobs');
}

const scenarios = {
  async overview(page) {
    await open(page, 'overview');
    await shot(page, 'overview');
    return { text: await page.innerText('main'), who: await page.innerText('#who') };
  },

  async dead(page) {
    await open(page, 'jobs');
    await filterJobs(page, 'dead');
    const row = page.locator(`tr[data-job="${env.JOB}"]`);
    await row.waitFor();
    await shot(page, 'jobs');
    const text = await row.innerText();
    await row.getByRole('button', { name: 'Retry' }).click();
    await page.waitForSelector('#status:not([hidden])');
    return { row: text, status: await page.innerText('#status') };
  },

  async cancel(page) {
    await open(page, 'jobs');
    await filterJobs(page, 'running');
    const row = page.locator(`tr[data-job="${env.JOB}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForSelector('#status:not([hidden])');
    return { status: await page.innerText('#status') };
  },

  async enqueue(page) {
    await open(page, 'enqueue');
    await page.fill('input[name=task]', env.TASK);
    await page.fill('textarea[name=payload]', '{"note": "from the console"}');
    await page.fill('input[name=priority]', '3');
    await shot(page, 'enqueue');
    await page.click('#enqueue button[type=submit]');
    await page.waitForSelector('#status:not([hidden])');
    const status = await page.innerText('#status');
    const id = (status.match(/Enqueued job (\d+)/) || [])[1];
    if (!id) throw new Error('no job id in status: ' + status);
    // the history shows it once it ran
    for (let i = 0; i < 60; i++) {
      await open(page, 'history');
      const row = page.locator(`tr[data-job="${id}"]`);
      if (await row.count()) {
        await shot(page, 'history');
        return { id: Number(id), row: await row.innerText() };
      }
      await page.waitForTimeout(250);
    }
    throw new Error('job ' + id + ' never showed in the history');
  },

  async cron(page) {
    await open(page, 'cron');
    await shot(page, 'cron');
    const rows = await page.locator('tr[data-cron]').all();
    const out = [];
    for (const r of rows)
      out.push({ id: await r.getAttribute('data-cron'), next: await r.locator('td.next').innerText(),
                 text: await r.innerText() });
    return { rows: out };
  },

  async workers(page) {
    await open(page, 'workers');
    await shot(page, 'workers');
    return { text: await page.innerText('main') };
  },

  async xss(page) {
    const dialogs = [];
    page.on('dialog', d => { dialogs.push(d.message()); d.dismiss(); });
    await open(page, 'jobs');
    const row = page.locator(`tr[data-job="${env.JOB}"]`);
    await row.waitFor();
    await page.waitForTimeout(300);
    return {
      row: await row.innerText(),
      pwned: await page.evaluate(() => window.__pwned === 1),
      scripts: await page.evaluate(() => document.querySelectorAll('main script, main img').length),
      dialogs,
    };
  },

  // A page on another origin tries to change state: a form POST (no custom
  // headers possible) and a no-cors fetch, both with the victim's session.
  async csrf(page) {
    await open(page, 'overview');           // the browser now holds the credentials
    await page.goto(env.EVIL_URL);
    await page.waitForFunction(() => document.body.dataset.done === '1', null, { timeout: 15000 });
    await page.waitForTimeout(500);
    return { evil: await page.innerText('body') };
  },

  // Headless chromium cannot show the login prompt: the navigation fails
  // with ERR_INVALID_AUTH_CREDENTIALS; the answers it got are kept.
  async unauthorized(page) {
    const seen = [];
    page.on('response', r => seen.push({ status: r.status(), url: r.url(),
                                         auth: r.headers()['www-authenticate'] || null }));
    let error = null;
    try { await page.goto(base + '/ui/'); } catch (e) { error = String(e.message || e); }
    page.removeAllListeners('console');
    return { seen, error };
  },
};

const { ctx, dir } = await launch();
let code = 0;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('requestfailed', r => errors.push('request failed: ' + r.url() + ' ' +
                                            (r.failure() || {}).errorText));
  const result = await scenarios[scenario](page);
  result.errors = errors;
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(String(e && e.stack || e));
  code = 1;
} finally {
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
