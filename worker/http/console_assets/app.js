// rlsworker console: one page, six views, data from /ui/api/ (same origin).
// Everything shown is put in the page with textContent or as text nodes,
// never as HTML, so data (task names, payloads, errors) renders as text.
'use strict';

const state = { csrf: null, view: 'overview', cursor: {}, stack: {} };

// ---- small helpers ---------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function showStatus(msg, isError) {
  const s = document.getElementById('status');
  s.textContent = msg;
  s.className = 'status' + (isError ? ' error' : '');
  s.hidden = !msg;
}

async function api(path, body) {
  const opts = { credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    opts.method = 'POST';
    opts.headers['Content-Type'] = 'application/json';
    opts.headers['X-CSRF-Token'] = state.csrf || '';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch('/ui/api/' + path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) throw new Error((data && data.message) || ('HTTP ' + r.status));
  return data;
}

function table(headers, rows, emptyText) {
  const thead = el('thead', {}, el('tr', {}, headers.map(h =>
    el('th', { class: h.num ? 'num' : null }, h.label || h))));
  const tbody = el('tbody');
  if (!rows.length)
    tbody.append(el('tr', {}, el('td', { class: 'empty', colspan: headers.length },
      emptyText || 'Nothing here')));
  for (const r of rows) tbody.append(r);
  return el('table', {}, thead, tbody);
}

function badge(s) { return el('span', { class: 'state ' + s }, s); }
function num(v) { return el('td', { class: 'num' }, v === null || v === undefined ? '' : v); }

function field(name, label, attrs) {
  return el('label', {}, label, el('input', Object.assign({ name }, attrs || {})));
}

function select(name, label, options, value) {
  return el('label', {}, label, el('select', { name },
    options.map(o => el('option', { value: o, selected: o === value }, o || 'any'))));
}

function formValues(form) {
  const v = {};
  for (const [k, x] of new FormData(form).entries()) if (x !== '') v[k] = x;
  return v;
}

// ---- views -------------------------------------------------------------------

async function viewOverview(main) {
  const data = await api('overview');
  main.append(el('h2', {}, 'Queues'));
  main.append(el('div', { class: 'card' }, table(
    ['Task', 'Queue', { label: 'Queued', num: 1 }, { label: 'Ready', num: 1 },
     { label: 'Running', num: 1 }, { label: 'Dead', num: 1 },
     { label: 'Oldest ready wait (s)', num: 1 }],
    data.queues.map(q => el('tr', {}, el('td', {}, q.task), el('td', {}, q.queue || '—'),
      num(q.queued), num(q.ready), num(q.running), num(q.dead), num(q.oldest_ready_s))),
    'The queue is empty')));
  const max = Math.max(1, ...data.throughput.map(t => t.succeeded + t.failed + t.dead + t.cancelled));
  main.append(el('h2', {}, 'Finished runs per minute (last 15 minutes, UTC)'));
  main.append(el('div', { class: 'card' }, table(
    ['Minute', { label: 'Succeeded', num: 1 }, { label: 'Failed', num: 1 },
     { label: 'Dead', num: 1 }, { label: 'Cancelled', num: 1 }, ''],
    data.throughput.map(t => {
      const bar = el('div', { class: 'bar' });
      bar.style.width = Math.round(240 * (t.succeeded + t.failed + t.dead + t.cancelled) / max) + 'px';
      return el('tr', {}, el('td', {}, t.minute), num(t.succeeded), num(t.failed), num(t.dead),
        num(t.cancelled), el('td', {}, bar));
    }), 'No runs finished in the last 15 minutes')));
}

async function act(action, id) {
  try {
    const r = await api('action', { action, id });
    showStatus('Job ' + id + ': ' + r.result);
  } catch (e) {
    showStatus('Could not ' + action + ' job ' + id + ': ' + e.message, true);
  }
  render();
}

function jobActions(j) {
  const td = el('td');
  if (j.state === 'dead' || j.state === 'cancelled') {
    td.append(el('button', { class: 'primary', onclick: () => act('retry', j.id) }, 'Retry'));
    td.append(el('button', { class: 'danger', onclick: () => act('delete', j.id) }, 'Delete'));
  } else if (!j.cancel_requested) {
    td.append(el('button', { class: 'danger', onclick: () => act('cancel', j.id) }, 'Cancel'));
  } else {
    td.append(el('span', { class: 'muted' }, 'cancelling'));
  }
  return td;
}

function pager(kind, next) {
  const stack = state.stack[kind] || [];
  return el('div', { class: 'pager' },
    el('button', { disabled: !stack.length, onclick: () => {
      state.cursor[kind] = stack.pop() || null; render(); } }, 'Previous page'),
    el('button', { disabled: !next, onclick: () => {
      (state.stack[kind] = stack).push(state.cursor[kind] || null);
      state.cursor[kind] = next; render(); } }, 'Next page'));
}

function filterForm(kind, fields) {
  const f = el('form', { class: 'filters', onsubmit: ev => {
    ev.preventDefault();
    state.filters = state.filters || {};
    state.filters[kind] = formValues(f);
    state.cursor[kind] = null; state.stack[kind] = [];
    render();
  } }, fields, el('button', { type: 'submit', class: 'primary' }, 'Filter'));
  return f;
}

function query(kind, extra) {
  const q = new URLSearchParams(Object.assign({}, (state.filters || {})[kind] || {}, extra || {}));
  if (state.cursor[kind]) q.set('before', state.cursor[kind]);
  return q.toString();
}

async function viewJobs(main) {
  const f = (state.filters || {}).jobs || {};
  const data = await api('jobs?' + query('jobs'));
  main.append(el('h2', {}, 'Jobs'));
  main.append(filterForm('jobs', [
    select('state', 'State', ['', 'queued', 'running', 'dead', 'cancelled'], f.state || ''),
    field('task', 'Task', { value: f.task || '' }),
    field('queue', 'Queue', { value: f.queue || '' }),
    field('subject', 'Subject', { value: f.subject || '' })]));
  main.append(el('div', { class: 'card' }, table(
    ['ID', 'Task', 'Queue', 'State', { label: 'Attempts', num: 1 }, 'Run at', 'Worker',
     'Subject', 'Payload', 'Last error', ''],
    data.rows.map(j => el('tr', { 'data-job': j.id },
      num(j.id), el('td', {}, j.task), el('td', {}, j.queue || '—'), el('td', {}, badge(j.state)),
      num(j.attempts + (j.max_attempts ? ' / ' + j.max_attempts : '')),
      el('td', {}, when(j.run_at)), el('td', {}, j.locked_by || ''),
      el('td', {}, j.subject || (j.has_claims ? '(claims)' : '')),
      el('td', {}, el('pre', {}, j.payload)),
      el('td', { class: 'err' }, j.last_error || ''), jobActions(j))),
    'No jobs match'), pager('jobs', data.next)));
}

async function viewHistory(main) {
  const f = (state.filters || {}).history || {};
  const data = await api('history?' + query('history'));
  main.append(el('h2', {}, 'Recent history'));
  main.append(filterForm('history', [
    select('outcome', 'Outcome', ['', 'succeeded', 'failed', 'dead', 'cancelled'], f.outcome || ''),
    field('task', 'Task', { value: f.task || '' }),
    field('queue', 'Queue', { value: f.queue || '' }),
    field('subject', 'Subject', { value: f.subject || '' })]));
  main.append(el('div', { class: 'card' }, table(
    ['Job', 'Task', 'Queue', 'Outcome', { label: 'Attempt', num: 1 },
     { label: 'Duration (ms)', num: 1 }, 'Worker', 'Finished', 'Error'],
    data.rows.map(h => el('tr', { 'data-job': h.id },
      num(h.id), el('td', {}, h.task), el('td', {}, h.queue || '—'),
      el('td', {}, badge(h.outcome)), num(h.attempts), num(h.duration_ms),
      el('td', {}, h.worker_id || ''), el('td', {}, when(h.finished_at)),
      el('td', { class: 'err' }, h.error || ''))),
    'No finished runs match'), pager('history', data.next)));
}

async function viewCron(main) {
  const rows = await api('cron');
  main.append(el('h2', {}, 'Cron'));
  main.append(el('div', { class: 'card' }, table(
    ['ID', 'Task', 'Time zone', 'Queue', 'Last fire', 'Last job', 'Next fire'],
    rows.map(c => el('tr', { 'data-cron': c.id }, el('td', {}, c.id), el('td', {}, c.task),
      el('td', {}, c.tz), el('td', {}, c.queue || '—'), el('td', {}, when(c.last) || 'never'),
      num(c.last_job), el('td', { class: 'next' }, when(c.next)))),
    'This worker has no crontab')));
}

async function viewWorkers(main) {
  const rows = await api('workers');
  main.append(el('h2', {}, 'Workers'));
  main.append(el('div', { class: 'card' }, table(
    ['ID', 'Host', { label: 'PID', num: 1 }, 'Started', 'Last heartbeat',
     { label: 'Seconds ago', num: 1 }, { label: 'Running', num: 1 }],
    rows.map(w => el('tr', {}, el('td', {}, w.id), el('td', {}, w.host), num(w.pid),
      el('td', {}, when(w.started_at)), el('td', {}, when(w.heartbeat_at)),
      num(w.heartbeat_age_s), num(w.running))),
    'No worker is registered')));
}

function viewEnqueue(main) {
  const form = el('form', { id: 'enqueue', onsubmit: async ev => {
    ev.preventDefault();
    const v = formValues(form);
    try {
      const r = await api('enqueue', v);
      showStatus('Enqueued job ' + r.id);
      form.reset();
    } catch (e) {
      showStatus('Not enqueued: ' + e.message, true);
    }
  } },
    el('div', { class: 'grid' },
      field('task', 'Task', { required: true }),
      field('queue', 'Queue (optional)'),
      el('label', { class: 'wide' }, 'Payload (a JSON object)',
        el('textarea', { name: 'payload', placeholder: '{}' })),
      field('subject', 'Subject (system jobs, optional)'),
      field('run_at', 'Run at (RFC 3339, optional)', { placeholder: '2030-01-01T00:00:00Z' }),
      el('label', { class: 'wide' }, 'Claims (user jobs: verified JWT claims, a JSON object; never shown again)',
        el('textarea', { name: 'claims', placeholder: '{"sub": "user-id"}' })),
      field('key', 'Job key (optional)'),
      field('priority', 'Priority (smaller runs first)', { inputmode: 'numeric', placeholder: '0' })),
    el('p', {}, el('button', { type: 'submit', class: 'primary' }, 'Enqueue')));
  main.append(el('h2', {}, 'Enqueue a job'),
    el('p', { class: 'muted' }, 'Goes through rlsworker.add_job, with exactly its checks.'),
    el('div', { class: 'card' }, form));
}

const views = { overview: viewOverview, jobs: viewJobs, history: viewHistory,
                cron: viewCron, workers: viewWorkers, enqueue: viewEnqueue };

async function render() {
  const name = (location.hash || '#overview').slice(1);
  state.view = views[name] ? name : 'overview';
  for (const a of document.querySelectorAll('nav a'))
    a.classList.toggle('active', a.dataset.view === state.view);
  const main = document.getElementById('main');
  const fresh = el('div');
  try {
    await views[state.view](fresh);
  } catch (e) {
    showStatus('Could not load ' + state.view + ': ' + e.message, true);
  }
  main.replaceChildren(fresh);
  document.body.dataset.loaded = state.view;
}

async function start() {
  try {
    const s = await api('session');
    state.csrf = s.csrf;
    document.getElementById('who').textContent = s.user + ' · worker ' + s.worker;
  } catch (e) {
    showStatus('Could not start the console: ' + e.message, true);
  }
  window.addEventListener('hashchange', () => { showStatus(''); render(); });
  render();
}

document.addEventListener('DOMContentLoaded', start);
