// zai2api dashboard. Renders everything with textContent (never innerHTML with data), so nothing
// the server or a client sent can become markup. Full tokens never reach this page: the API only
// returns hashed token_ids and their masked `token:xxxxxxxx` form.
'use strict';

(() => {
  const REFRESH_MS = 5000;
  const STORAGE_KEY = 'zai2api.dashboard.autoRefresh';
  const $ = (id) => document.getElementById(id);

  let timer = null;
  let lastUpdated = 0;
  let armedId = null;
  let armedTimer = null;
  let canManage = false;
  let busy = false;

  /** Builds an element: h('td', {className: 'num'}, 'text', child, ...). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'className') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (value === true) el.setAttribute(key, '');
      else if (value !== false && value != null) el.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child == null) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  async function api(path, options = {}) {
    const response = await fetch(path, {
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json', ...(options.body ? { 'Content-Type': 'application/json' } : {}) },
      ...options,
    });
    if (response.status === 401) {
      // Session expired or password changed: the dashboard URL shows the login form.
      window.location.assign('/dashboard');
      throw new Error('Signed out');
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const message = body && body.error && body.error.message ? body.error.message : `HTTP ${response.status}`;
      const error = new Error(message);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  const number = new Intl.NumberFormat();
  const fmt = (n) => number.format(n);

  function formatMs(ms) {
    if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
    return `${Math.round(ms)} ms`;
  }

  function formatDuration(secs) {
    secs = Math.max(0, Math.round(secs));
    const d = Math.floor(secs / 86400), hh = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60, s = secs % 60;
    if (d) return `${d} d ${hh} h`;
    if (hh) return `${hh} h ${m} min`;
    if (m) return s ? `${m} min ${String(s).padStart(2, '0')} s` : `${m} min`;
    return `${s} s`;
  }

  function ago(ms) {
    const secs = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (secs < 5) return 'just now';
    return `${formatDuration(secs)} ago`;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }

  // ----------------------------------------------------------------------------------------------
  // Rendering

  function renderStats(s) {
    $('version').textContent = `v${s.version}`;
    $('stat-total').textContent = fmt(s.total);
    $('stat-uptime').textContent = `up ${formatDuration(s.uptime_secs)}`;
    $('stat-successes').textContent = fmt(s.successes);
    $('stat-rate').textContent = s.total ? `${((s.successes / s.total) * 100).toFixed(1)}% success rate` : 'no requests yet';
    $('stat-failures').textContent = fmt(s.failures);
    const upstreamFailures = s.upstream_errors.reduce((sum, k) => sum + k.count, 0);
    $('stat-upstream-failures').textContent = `${fmt(upstreamFailures)} from upstream`;
    const avg = $('stat-average');
    avg.replaceChildren();
    if (s.total) {
      const text = formatMs(s.average_ms);
      const [value, unit] = text.split(' ');
      avg.append(value, h('span', { className: 'unit', text: unit }));
    } else {
      avg.textContent = '–';
    }

    const up = $('stat-upstream');
    const detail = $('stat-upstream-detail');
    const last = s.last_upstream;
    if (!last) {
      up.replaceChildren(h('span', { className: 'pill unknown', text: 'Unknown' }));
      detail.textContent = 'no chat served yet';
    } else {
      const reachable = !last.error || !['upstream_timeout', 'upstream_connection_failed'].includes(last.error);
      const healthy = !last.error;
      up.replaceChildren(h('span', {
        className: `pill ${healthy ? 'ok' : reachable ? 'warn' : 'bad'}`,
        text: healthy ? 'Healthy' : reachable ? 'Answering with errors' : 'Unreachable',
      }));
      detail.textContent = `${last.error ? last.error + ' · ' : ''}${ago(last.at_ms)}`;
      detail.dataset.at = String(last.at_ms);
      detail.dataset.prefix = last.error ? `${last.error} · ` : '';
    }

    $('error-kinds').replaceChildren(...s.upstream_errors.map((k) =>
      h('span', { className: `chip${k.count ? ' hot' : ''}`, title: k.kind },
        k.kind.replace(/^upstream_/, '').replace(/_/g, ' '),
        h('span', { className: 'count', text: fmt(k.count) }))));

    const rows = s.recent.map((r) => {
      const cls = `status s${String(r.status)[0]}`;
      return h('tr', {},
        h('td', { className: 'mono', title: new Date(r.time_ms).toLocaleString(), text: clock(r.time_ms) }),
        h('td', {}, h('span', { className: 'method', text: r.method })),
        h('td', { className: 'mono path', title: r.path, text: r.path }),
        h('td', {}, h('span', { className: cls, title: r.upstream_error || '', text: String(r.status) })),
        h('td', { className: 'num', text: formatMs(r.duration_ms) }),
        h('td', { className: 'mono', text: r.client_ip || '—' }),
        h('td', { className: 'mono', text: r.token || '—' }),
        h('td', { className: 'mono', text: r.model || '—' }),
        h('td', {
          className: 'num',
          title: r.prompt_tokens || r.completion_tokens ? `prompt ${r.prompt_tokens} · completion ${r.completion_tokens}` : '',
          text: r.prompt_tokens || r.completion_tokens ? fmt(r.prompt_tokens + r.completion_tokens) : '—',
        }),
        h('td', { className: 'mono', text: r.instance || '—' }));
    });
    $('recent-scope').textContent = s.scope === 'cluster'
      ? `last 100 across the cluster, newest first · this is ${s.instance}`
      : 'last 100, newest first';
    if (!rows.length) {
      rows.push(h('tr', {}, h('td', { className: 'empty', colspan: 10, text: 'No API requests yet. Calls to /v1/… show up here.' })));
    }
    $('recent-rows').replaceChildren(...rows);

    applyViewer(s.viewer);
  }

  function applyViewer(viewer) {
    canManage = viewer.can_manage_pool;
    $('logout-form').hidden = !viewer.auth_required;
    const banner = $('banner');
    if (!viewer.auth_required) {
      banner.hidden = false;
      banner.className = 'banner';
      banner.textContent = canManage
        ? 'Open mode: AUTH_TOKEN is not set, so anyone who can reach this port can view this dashboard and use the API. Pool changes are accepted from this machine only.'
        : 'Open mode: AUTH_TOKEN is not set. You can look, but adding or deleting tokens is only possible from the gateway machine itself — or set AUTH_TOKEN and log in.';
    } else if (banner.className === 'banner') {
      banner.hidden = true;
    }
    $('add-tokens').disabled = !canManage;
    $('add-submit').disabled = !canManage;
  }

  function renderPool(p) {
    $('pool-summary').textContent = p.total
      ? `${fmt(p.total)} tokens · ${fmt(p.enabled)} enabled · ${fmt(p.disabled)} resting · rests ${formatDuration(p.cooldown_secs)} after ${p.failure_threshold} failures in a row`
      : 'empty — requests use guest sessions if ANONYMOUS_MODE allows';
    if (p.shared_state && !p.shared_state.available) {
      $('pool-summary').textContent += ' · shared state unavailable (serving on the last known state)';
    }
    const now = Date.now();
    const rows = p.tokens.map((t) => {
      const armed = armedId === t.token_id;
      const del = h('button', {
        type: 'button',
        className: `btn small danger${armed ? ' armed' : ''}`,
        disabled: !canManage,
        title: canManage ? 'Remove this token from the pool' : 'Not allowed from this client',
        'aria-label': `Delete ${t.masked}`,
        dataset: { tokenId: t.token_id },
        text: armed ? 'Confirm delete' : 'Delete',
        onclick: () => onDelete(t.token_id),
      });
      const cooldown = h('td', { className: 'num cooldown' });
      if (!t.enabled && t.cooldown_remaining_secs > 0) {
        cooldown.dataset.until = String(now + t.cooldown_remaining_secs * 1000);
        cooldown.textContent = formatDuration(t.cooldown_remaining_secs);
      } else {
        cooldown.textContent = '—';
      }
      return h('tr', { dataset: { tokenId: t.token_id } },
        h('td', { className: 'mono', title: `token_id ${t.token_id}`, text: t.masked }),
        h('td', {}, h('span', { className: `pill ${t.enabled ? 'ok' : 'bad'}`, text: t.enabled ? 'Enabled' : 'Disabled' })),
        cooldown,
        h('td', { className: 'num', text: fmt(t.successes) }),
        h('td', { className: 'num', text: t.consecutive_failures ? `${fmt(t.failures)} (${t.consecutive_failures} in a row)` : fmt(t.failures) }),
        h('td', { className: 'mono muted', title: t.last_error_detail || '', text: t.last_error || '—' }),
        h('td', { className: 'muted', text: t.source === 'env' ? 'environment' : 'dashboard' }),
        h('td', {}, del));
    });
    if (!rows.length) {
      rows.push(h('tr', {}, h('td', { className: 'empty', colspan: 8, text: 'No tokens in the pool yet. Paste some below.' })));
    }
    $('pool-rows').replaceChildren(...rows);
  }

  function tick() {
    const now = Date.now();
    for (const cell of document.querySelectorAll('td.cooldown[data-until]')) {
      const left = (Number(cell.dataset.until) - now) / 1000;
      cell.textContent = left > 0 ? formatDuration(left) : 'retrying';
    }
    const detail = $('stat-upstream-detail');
    if (detail.dataset.at) detail.textContent = `${detail.dataset.prefix || ''}${ago(Number(detail.dataset.at))}`;
    if (lastUpdated) $('updated').textContent = `Updated ${ago(lastUpdated)}`;
  }

  function showError(message) {
    const banner = $('banner');
    banner.hidden = false;
    banner.className = 'banner error';
    banner.textContent = message;
  }

  function clearError() {
    const banner = $('banner');
    if (banner.className.includes('error')) {
      banner.hidden = true;
      banner.className = 'banner';
    }
  }

  // ----------------------------------------------------------------------------------------------
  // History: four line charts over the last 24 hours, one slot per minute, drawn as inline SVG.

  const SVG = 'http://www.w3.org/2000/svg';
  const HISTORY_MS = 30_000;
  const CHART = { width: 560, height: 150, left: 46, right: 8, top: 8, bottom: 20 };
  let lastHistory = 0;

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === 'text') el.textContent = value;
      else el.setAttribute(key, String(value));
    }
    for (const child of children) el.append(child);
    return el;
  }

  function compact(n) {
    if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
    if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
    return String(Math.round(n * 10) / 10);
  }

  /** One chart: `series` = [{name, values}], values one per minute slot (null: no data). */
  function drawChart(figure, series, slots, fromMs, format) {
    const { width, height, left, right, top, bottom } = CHART;
    const plotW = width - left - right, plotH = height - top - bottom;
    const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v != null)));
    const yMax = max > 0 ? max * 1.1 : 1;
    const x = (i) => left + (slots > 1 ? (i / (slots - 1)) * plotW : 0);
    const y = (v) => top + plotH - (v / yMax) * plotH;
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart-svg' });
    chart.append(svg('title', { text: figure.querySelector('figcaption').textContent }));
    for (const frac of [0, 0.5, 1]) {
      const v = yMax * frac;
      chart.append(svg('line', { x1: left, x2: width - right, y1: y(v), y2: y(v), class: 'grid' }));
      chart.append(svg('text', { x: left - 6, y: y(v) + 4, class: 'axis end', text: format(v) }));
    }
    for (const hoursAgo of [24, 18, 12, 6, 0]) {
      const i = Math.round(((24 - hoursAgo) / 24) * (slots - 1));
      const anchor = hoursAgo === 24 ? 'start' : hoursAgo === 0 ? 'end' : 'middle';
      const label = hoursAgo === 0 ? 'now' : clock(fromMs + i * 60_000).slice(0, 5);
      chart.append(svg('text', { x: x(i), y: height - 4, class: `axis ${anchor}`, text: label }));
    }
    let drawn = 0;
    series.forEach((s, n) => {
      // Minutes without data are gaps for latency (null), zero for counts.
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v == null) { pen = false; return; }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      if (!d) return;
      drawn += 1;
      chart.append(svg('path', { d, class: `line series-${n % 8}`, 'data-series': s.name },
        svg('title', { text: s.name })));
      // A minute with no neighbour draws no line: a dot shows it.
      s.values.forEach((v, i) => {
        if (v != null && s.values[i - 1] == null && s.values[i + 1] == null) {
          chart.append(svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2, class: `dot series-${n % 8}` }));
        }
      });
    });
    chart.dataset.series = String(drawn);
    chart.dataset.max = String(max);
    const legend = h('div', { className: 'legend' }, ...series.map((s, n) =>
      h('span', { className: 'key' }, h('span', { className: `swatch series-${n % 8}` }), s.name)));
    figure.replaceChildren(figure.querySelector('figcaption'), chart, legend);
    if (!series.some((s) => s.values.some((v) => v))) {
      figure.append(h('p', { className: 'chart-empty muted', text: 'no requests in the last 24 hours' }));
    }
  }

  function renderHistory(history) {
    const slots = Math.round((history.to_ms - history.from_ms) / history.step_ms) + 1;
    const at = new Map(history.points.map((p) => [Math.round((p.minute_ms - history.from_ms) / history.step_ms), p]));
    const per = (f) => Array.from({ length: slots }, (_, i) => (at.has(i) ? f(at.get(i)) : 0));
    const gaps = (f) => Array.from({ length: slots }, (_, i) => (at.has(i) ? f(at.get(i)) : null));
    const charts = $('history-charts');
    charts.dataset.points = String(history.points.length);
    drawChart($('chart-requests'), [{ name: 'requests', values: per((p) => p.requests) }], slots, history.from_ms, compact);
    drawChart($('chart-errors'), history.error_kinds.map((kind) => ({
      name: kind.replace(/^upstream_/, '').replace(/_/g, ' '),
      values: per((p) => p.errors[kind] || 0),
    })), slots, history.from_ms, compact);
    drawChart($('chart-latency'), [
      { name: 'p50', values: gaps((p) => p.p50_ms) },
      { name: 'p95', values: gaps((p) => p.p95_ms) },
    ], slots, history.from_ms, (v) => formatMs(v));
    const models = history.models.filter((m) => history.points.some((p) => p.tokens[m]));
    drawChart($('chart-tokens'), models.map((model) => ({
      name: model,
      values: per((p) => (p.tokens[model] ? p.tokens[model].prompt + p.tokens[model].completion : 0)),
    })), slots, history.from_ms, compact);
    $('history-scope').textContent = history.scope === 'cluster'
      ? 'every instance, per minute (shared state)'
      : `this instance (${history.instance}), per minute`;
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      // The history changes by the minute: fetched every 30 s, not every refresh.
      const wantHistory = Date.now() - lastHistory >= HISTORY_MS;
      const [stats, pool, history] = await Promise.all([
        api('/dashboard/api/stats'),
        api('/dashboard/api/tokens'),
        wantHistory ? api('/dashboard/api/history') : null,
      ]);
      clearError();
      renderStats(stats);
      renderCaptcha(stats.captcha);
      renderPool(pool);
      if (history) {
        renderHistory(history);
        lastHistory = Date.now();
      }
      lastUpdated = Date.now();
      tick();
    } catch (e) {
      showError(`Could not refresh: ${e.message}`);
    } finally {
      busy = false;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Captcha: when requests wait for a captcha param, offer the site's own widget (Aliyun Captcha
  // 2.0, as configured in the upstream profile) and hand the solved param to the gateway.

  function renderCaptcha(captcha) {
    const c = captcha || {};
    const waiting = c.waiting || 0;
    $('captcha-waiting').textContent = fmt(waiting);
    $('captcha-banner').hidden = waiting === 0 && !captchaOpen && Date.now() > captchaShownUntil;
    $('captcha-stats').textContent = `Captcha: asked ${fmt(c.demanded_recently || 0)} times in the last 10 min`
      + ` · params used ${fmt(c.used || 0)}, rejected ${fmt(c.rejected || 0)}, expired ${fmt(c.expired || 0)}`
      + ` · waits answered ${fmt(c.waits_succeeded || 0)}, timed out ${fmt(c.waits_timed_out || 0)}`;
  }

  let captchaOpen = false;
  // After a solve the banner stays a little while, to say so.
  let captchaShownUntil = 0;
  let captchaReady = null;

  function loadWidget(widget) {
    if (captchaReady) return captchaReady;
    captchaReady = new Promise((resolve, reject) => {
      window.AliyunCaptchaConfig = { region: widget.region, prefix: widget.prefix };
      const script = document.createElement('script');
      script.src = widget.script_url;
      script.onload = () => {
        window.initAliyunCaptcha({
          SceneId: widget.scene_id,
          mode: widget.mode,
          element: '#captcha-element',
          button: '#captcha-trigger',
          success: onCaptchaSolved,
          fail: () => { $('captcha-note').textContent = 'The captcha was not solved; try again.'; },
          getInstance: () => {},
          slideStyle: { width: 360, height: 40 },
          language: 'en',
        });
        resolve();
      };
      script.onerror = () => { captchaReady = null; reject(new Error('the captcha script did not load')); };
      document.head.append(script);
    });
    return captchaReady;
  }

  async function onCaptchaSolve() {
    captchaOpen = true;
    $('captcha-note').textContent = 'Opening the captcha…';
    try {
      const status = await api('/dashboard/api/captcha');
      await loadWidget(status.widget);
      $('captcha-note').textContent = 'Solve the captcha.';
      $('captcha-trigger').click();
    } catch (e) {
      captchaOpen = false;
      $('captcha-note').textContent = `Could not open the captcha: ${e.message}`;
    }
  }

  async function onCaptchaSolved(param) {
    try {
      await api('/dashboard/api/captcha', { method: 'POST', body: JSON.stringify({ param }) });
      $('captcha-note').textContent = 'Solved: the waiting request goes on.';
      captchaShownUntil = Date.now() + 10_000;
    } catch (e) {
      $('captcha-note').textContent = `Could not hand the captcha over: ${e.message}`;
    } finally {
      captchaOpen = false;
      refresh();
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Actions

  async function onDelete(tokenId) {
    if (armedId !== tokenId) {
      // First click arms the button; a second click within 4 s deletes.
      armedId = tokenId;
      clearTimeout(armedTimer);
      armedTimer = setTimeout(() => { armedId = null; refresh(); }, 4000);
      await refresh();
      return;
    }
    armedId = null;
    clearTimeout(armedTimer);
    const result = $('add-result');
    try {
      await api(`/dashboard/api/tokens/${encodeURIComponent(tokenId)}`, { method: 'DELETE' });
      result.className = 'result ok';
      result.textContent = 'Token deleted.';
    } catch (e) {
      result.className = 'result error';
      result.textContent = `Delete failed: ${e.message}`;
    }
    await refresh();
  }

  async function onAdd(event) {
    event.preventDefault();
    const box = $('add-tokens');
    const result = $('add-result');
    const text = box.value;
    if (!text.trim()) {
      result.className = 'result error';
      result.textContent = 'Paste at least one token.';
      return;
    }
    $('add-submit').disabled = true;
    try {
      const report = await api('/dashboard/api/tokens', { method: 'POST', body: JSON.stringify({ tokens: text }) });
      const parts = [`Added ${report.added.length}`];
      if (report.duplicates) parts.push(`${report.duplicates} already in the pool`);
      if (report.invalid) parts.push(`${report.invalid} not usable`);
      result.className = report.added.length ? 'result ok' : 'result error';
      result.textContent = `${parts.join(' · ')}.`;
      box.value = '';
    } catch (e) {
      result.className = 'result error';
      result.textContent = `Could not add: ${e.message}`;
    } finally {
      $('add-submit').disabled = !canManage;
    }
    await refresh();
  }

  const DOCTOR_PILL = { pass: 'ok', warn: 'warn', fail: 'bad', skip: 'unknown' };

  function renderDoctor(report) {
    const rows = report.steps.map((step) => {
      const detail = h('td', {}, h('div', { text: step.detail }));
      if (step.code) detail.append(h('div', { className: 'muted', text: `code: ${step.code}` }));
      if (step.hint) detail.append(h('div', { className: 'doctor-hint', text: step.hint }));
      return h('tr', { dataset: { step: step.id, status: step.status } },
        h('td', { text: step.title }),
        h('td', {}, h('span', { className: `pill ${DOCTOR_PILL[step.status] || 'unknown'}`, text: step.status.toUpperCase() })),
        h('td', { className: 'num', text: step.status === 'skip' ? '–' : formatMs(step.duration_ms) }),
        detail);
    });
    $('doctor-rows').replaceChildren(...rows);
    $('doctor-wrap').hidden = false;
    $('doctor-summary').textContent = report.ok
      ? `All steps passed in ${formatMs(report.total_ms)} (upstream ${report.upstream}, profile ${report.profile}).`
      : `Failed at step "${report.failed_step}" (upstream ${report.upstream}, profile ${report.profile}).`;
  }

  async function onDoctor() {
    const button = $('doctor-run');
    button.disabled = true;
    $('doctor-summary').textContent = 'Running… (a completion can take a few seconds)';
    try {
      renderDoctor(await api('/dashboard/api/doctor', { method: 'POST' }));
    } catch (error) {
      $('doctor-summary').textContent = `Could not run the diagnostics: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function setAutoRefresh(on) {
    clearInterval(timer);
    timer = on ? setInterval(refresh, REFRESH_MS) : null;
    try { localStorage.setItem(STORAGE_KEY, on ? 'on' : 'off'); } catch (_) { /* private mode */ }
  }

  function start() {
    const toggle = $('auto-refresh');
    let stored = null;
    try { stored = localStorage.getItem(STORAGE_KEY); } catch (_) { /* private mode */ }
    toggle.checked = stored !== 'off';
    toggle.addEventListener('change', () => setAutoRefresh(toggle.checked));
    setAutoRefresh(toggle.checked);
    $('refresh-now').addEventListener('click', () => { lastHistory = 0; refresh(); });
    $('add-form').addEventListener('submit', onAdd);
    $('doctor-run').addEventListener('click', onDoctor);
    $('captcha-solve').addEventListener('click', onCaptchaSolve);
    setInterval(tick, 1000);
    refresh();
  }

  start();
})();
