// The live panel of headcount's page (web/page.ts), built here: a Server-Sent
// Events stream from GET /api/live (web/live-hub.ts); and the "count me" button.
// Plain browser JavaScript, no build step and nothing from elsewhere.
// Loading it counts nothing; only the button does (POST /api/visits).

const numbers = new Intl.NumberFormat('en-US');
const fmt = (n) => numbers.format(n);
const $ = (id) => document.getElementById(id);

const ordinal = (n) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${fmt(n)}th`;
  return fmt(n) + ({ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th');
};

// --- The visitor's own number: updated by the button, without a reload ---
const button = $('count-me');
button.addEventListener('click', async () => {
  button.disabled = true;
  try {
    const response = await fetch('/api/visits', { method: 'POST', headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const { count, replica } = await response.json();
    $('count').textContent = fmt(count);
    // The same sentence as the server renders (web/page.ts), built from text nodes only.
    const code = document.createElement('code');
    code.dataset.testid = 'replica';
    code.textContent = replica;
    $('sentence').replaceChildren(`You are the ${ordinal(count)} visit, counted exactly once by replica `, code, '.');
    document.title = `headcount: visitor ${fmt(count)}`;
    $('count-status').textContent = `Counted: you are visitor ${fmt(count)} now.`;
  } catch {
    $('count-status').textContent = 'Not counted: the service did not answer. Try again in a moment.';
  } finally {
    button.disabled = false;
  }
});

// --- The live panel ---
// Its markup is here, not in the page (web/page.ts): it works only with this
// script, and every visit's answer is then 760 bytes smaller. Static text
// only: nothing from the stream is ever written as HTML.
const panel = $('live');
panel.innerHTML = `
  <h2><span id="live-title">Live: every replica's share</span> <span class="status" id="live-status" data-testid="live-status">connecting…</span></h2>
  <p class="total">Total <strong id="live-total" data-testid="live-total">…</strong> visits</p>
  <ul class="bars" id="live-replicas" data-testid="live-replicas"></ul>
  <figure class="rate">
    <svg viewBox="0 0 300 60" preserveAspectRatio="none" role="img" aria-labelledby="rate-caption">
      <line x1="0" y1="59" x2="300" y2="59"></line>
      <polyline id="rate-line" points=""></polyline>
    </svg>
    <figcaption id="rate-caption"><span id="rate-now" data-testid="rate-now">0</span> visits per second now, at most <span id="rate-peak">0</span> in the last minute</figcaption>
  </figure>`;
panel.hidden = false;
const list = $('live-replicas');
const status = (text) => ($('live-status').textContent = text);

function row(id) {
  const li = document.createElement('li');
  li.dataset.replica = id;
  li.innerHTML = '<span class="name"></span><span class="track"><span class="bar"></span></span><span class="n"></span>';
  return li;
}

function render(snapshot) {
  $('live-total').textContent = fmt(snapshot.total);
  const scale = Math.max(snapshot.total, 1);
  const rows = [
    ...snapshot.replicas.map((r) => ({ key: r.id, label: r.live ? r.id : `${r.id} (gone)`, count: r.count, cls: r.live ? '' : 'gone' })),
    // Visits counted before the breakdown began, before the last reset, or by
    // a replica of the previous release: shares plus this are the total.
    { key: ' remainder', label: 'earlier visits', count: snapshot.remainder, cls: 'remainder' },
  ];
  const existing = new Map([...list.children].map((li) => [li.dataset.replica, li]));
  rows.forEach((r, i) => {
    const li = existing.get(r.key) ?? row(r.key);
    existing.delete(r.key);
    li.className = r.cls;
    if (r.cls === 'remainder') delete li.dataset.live;
    else li.dataset.live = String(r.cls !== 'gone');
    li.querySelector('.name').textContent = r.label;
    li.querySelector('.name').title = r.cls === 'remainder' ? 'counted before the per-replica breakdown began or before the last reset' : r.label;
    li.querySelector('.n').textContent = fmt(r.count);
    li.querySelector('.bar').style.width = `${(100 * Math.max(r.count, 0)) / scale}%`;
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  for (const li of existing.values()) li.remove();
  const live = snapshot.replicas.filter((r) => r.live).length;
  status(`${live} replica${live === 1 ? '' : 's'} live · via ${snapshot.servedBy}`);
  latestTotal = snapshot.total;
}

// --- Visits per second over the last minute, from the totals the stream sends ---
// Sampled once a second from the latest total (the stream sends only changes).
let latestTotal;
const samples = [];
function sample() {
  if (latestTotal === undefined) return;
  const now = Date.now();
  samples.push({ at: now, total: latestTotal });
  while (samples.length > 61) samples.shift();
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 1000;
    // A reset makes the total drop: that second shows 0, not a negative rate.
    rates.push(dt > 0 ? Math.max(0, (samples[i].total - samples[i - 1].total) / dt) : 0);
  }
  drawChart(rates);
}

function drawChart(rates) {
  const width = 300;
  const height = 60;
  const top = Math.max(1, ...rates);
  const points = rates.map((r, i) => `${(width * (i + 60 - rates.length)) / 59},${(height - 2 - ((height - 4) * r) / top).toFixed(1)}`);
  $('rate-line').setAttribute('points', points.join(' '));
  const now = rates.at(-1) ?? 0;
  $('rate-now').textContent = fmt(Math.round(now));
  $('rate-peak').textContent = fmt(Math.round(Math.max(0, ...rates)));
}

// --- The stream, reconnected by hand when EventSource gives up ---
// EventSource retries by itself after a dropped connection (the `retry:` the
// replica sends), but after a non-200 answer (a replica draining, nginx's
// 429 or 502) it closes for good: then reconnect here, with backoff.
let failures = 0;
function connect() {
  const source = new EventSource('/api/live');
  source.addEventListener('snapshot', (event) => {
    failures = 0;
    render(JSON.parse(event.data));
  });
  source.addEventListener('error', () => {
    if (source.readyState !== EventSource.CLOSED) return status('reconnecting…');
    const delay = Math.min(30_000, 1_000 * 2 ** failures) * (0.5 + Math.random() / 2);
    failures += 1;
    status(`offline, retrying in ${Math.ceil(delay / 1000)} s`);
    setTimeout(connect, delay);
  });
}

setInterval(sample, 1_000);
connect();
