// gatelog dashboard: a live table of passages (with each movement's
// direction, lane, truck and size-type), search and filters, a detail
// view, the sync indicator, a passages-per-hour chart, the exceptions
// view where an operator types the numbers gatelog could not read, and
// the yard view: what is in the yard now and for how long.
//
// Data comes from the server's own API: GET /api/v1/logs for pages,
// GET /api/v1/logs/{id} for details, GET /api/v1/stats for the chart,
// GET /api/v1/exceptions for the queue (POST …/resolve and PATCH
// /api/v1/logs/{id} to correct), GET /api/v1/yard and /api/v1/yard/stats
// for the yard, and the WebSocket /ws/logs for live
// changes. Rows are keyed by passage id, so
// a passage that arrives twice (from a page and from the feed) is shown
// once. Plain JavaScript with no build step and no outside resources.
'use strict';

const TEXT = {
  en: {
    connecting: 'connecting', live: 'live', offline: 'offline',
    search: 'Search', searchHint: 'Owner, serial or number prefix',
    from: 'From', to: 'To', camera: 'Camera', check: 'Check digit',
    all: 'All', checkOk: 'Valid', checkBad: 'Flagged', clear: 'Clear',
    chartTitle: 'Passages per hour (last 24 h)',
    colTime: 'Captured', colContainer: 'Container', colCamera: 'Camera', colSite: 'Site',
    colSeen: 'Seen', colLast: 'Last seen', colSync: 'Sync',
    empty: 'No passages match.', more: 'Load more', close: 'Close',
    sync: 'sync', localOnly: 'local only', online: 'online', syncOffline: 'offline',
    pending: 'pending', lag: 'lag', dead: 'dead letters',
    synced: 'synced', dead_letter: 'dead letter',
    flagMissing: 'no check digit', flagMismatch: 'check digit wrong', flagCategory: 'unknown category',
    sightings: 'Sightings', image: 'Cropped image', noImage: 'No image available',
    site: 'Site', confidence: 'Confidence', video: 'Source video', firstSeen: 'First seen',
    checkDigit: 'Check digit', raw: 'Raw input', id: 'Id', sinceResync: 'Reloaded after falling behind',
    loadError: 'Could not load passages', passages: 'passages',
    flagClock: 'camera clock wrong', flagTimeAssumed: 'no camera time', flagOwner: 'unknown owner code',
    exceptions: 'Exceptions', exceptionsTitle: 'Exceptions: reads and numbers waiting for an operator',
    exceptionsHint: 'Type the container number as it is on the box, with its check digit.',
    exceptionsEmpty: 'Nothing is waiting.', unresolved_read: 'Unreadable read', unverified_passage: 'Unverified number',
    resolve: 'Resolve', correct: 'Correct', correctNumber: 'Correct the number', reason: 'Reason (optional)',
    numberInvalid: 'Not an ISO 6346 number (4 letters ending in U, J or Z, 6 digits, check digit)',
    checkDigitShould: 'the check digit for this number is', numberOk: 'valid number',
    forbidden: 'Correcting needs an operator key: sign in with one', correctedMark: 'corrected',
    corrections: 'Corrections', colFrom: 'From', colTo: 'To', colRule: 'Rule', colBy: 'By', colAt: 'At', colReason: 'Reason',
    rule_lookalike: 'look-alike', rule_check_digit: 'check digit', rule_owner_code: 'owner code',
    rule_consensus: 'consensus', rule_operator: 'operator', readAs: 'read as',
    viewLog: 'Log', viewYard: 'Yard', direction: 'Direction', dirIn: 'In', dirOut: 'Out',
    colLane: 'Lane', colPlate: 'Truck', colIsoType: 'Size-type', dwell: 'Stayed', plateFilterHint: 'Show this truck’s movements',
    flagOutWithoutIn: 'out without an in', flagInWhileIn: 'in again without an out', flagIsoType: 'size-type code invalid',
    yardTitle: 'Yard: containers in now', inYard: 'in the yard', colGateIn: 'Gate-in', colDwell: 'In the yard for',
    histTitle: 'Time in the yard', perOwner: 'Per owner', yardEmpty: 'No container is in the yard.',
    dwellMedian: 'median', dwellP90: '90% within', dwellMax: 'longest', containers: 'containers',
    ownerFilter: 'Owner', showAll: 'show all', flags: 'Flags',
    unitDay: ' d', unitHour: ' h', unitMin: ' min', unitSec: ' s',
    bins: ['< 1 h', '1–6 h', '6–24 h', '1–3 d', '3–7 d', '7–14 d', '14–30 d', '≥ 30 d'],
  },
  ko: {
    connecting: '연결 중', live: '실시간', offline: '오프라인',
    search: '검색', searchHint: '선사 코드, 일련번호 또는 번호 앞부분',
    from: '시작', to: '끝', camera: '카메라', check: '체크 디지트',
    all: '전체', checkOk: '정상', checkBad: '의심', clear: '초기화',
    chartTitle: '시간별 통과 대수 (최근 24시간)',
    colTime: '촬영 시각', colContainer: '컨테이너', colCamera: '카메라', colSite: '사이트',
    colSeen: '인식 횟수', colLast: '마지막 인식', colSync: '동기화',
    empty: '조건에 맞는 통과 기록이 없습니다.', more: '더 보기', close: '닫기',
    sync: '동기화', localOnly: '로컬 전용', online: '온라인', syncOffline: '오프라인',
    pending: '대기', lag: '지연', dead: '실패 보관',
    synced: '완료', dead_letter: '실패',
    flagMissing: '체크 디지트 없음', flagMismatch: '체크 디지트 불일치', flagCategory: '알 수 없는 분류',
    sightings: '인식 기록', image: '번호판 이미지', noImage: '이미지가 없습니다',
    site: '사이트', confidence: '신뢰도', video: '원본 영상', firstSeen: '처음 인식',
    checkDigit: '체크 디지트', raw: '원본 입력', id: 'ID', sinceResync: '지연되어 다시 불러왔습니다',
    loadError: '통과 기록을 불러오지 못했습니다', passages: '대',
    flagClock: '카메라 시각 오류', flagTimeAssumed: '촬영 시각 없음', flagOwner: '등록되지 않은 선사 코드',
    exceptions: '예외 처리', exceptionsTitle: '예외 처리: 운영자 확인이 필요한 인식과 번호',
    exceptionsHint: '컨테이너에 적힌 번호를 체크 디지트까지 입력하세요.',
    exceptionsEmpty: '확인할 항목이 없습니다.', unresolved_read: '판독 불가 인식', unverified_passage: '미확인 번호',
    resolve: '확정', correct: '수정', correctNumber: '번호 수정', reason: '사유 (선택)',
    numberInvalid: 'ISO 6346 번호가 아닙니다 (U, J, Z로 끝나는 영문 4자, 숫자 6자리, 체크 디지트)',
    checkDigitShould: '이 번호의 체크 디지트는', numberOk: '올바른 번호',
    forbidden: '수정하려면 운영자 키로 로그인해야 합니다', correctedMark: '수정됨',
    corrections: '수정 이력', colFrom: '이전', colTo: '이후', colRule: '규칙', colBy: '수정자', colAt: '시각', colReason: '사유',
    rule_lookalike: '유사 문자', rule_check_digit: '체크 디지트', rule_owner_code: '선사 코드',
    rule_consensus: '다수결', rule_operator: '운영자', readAs: '인식 원문',
    viewLog: '통과 기록', viewYard: '야드', direction: '방향', dirIn: '반입', dirOut: '반출',
    colLane: '차로', colPlate: '차량 번호', colIsoType: '규격', dwell: '체류', plateFilterHint: '이 차량의 통과 기록 보기',
    flagOutWithoutIn: '반입 기록 없는 반출', flagInWhileIn: '반출 없이 재반입', flagIsoType: '잘못된 규격 코드',
    yardTitle: '야드: 현재 장치 중인 컨테이너', inYard: '개 장치 중', colGateIn: '반입 시각', colDwell: '체류 시간',
    histTitle: '체류 시간 분포', perOwner: '선사별', yardEmpty: '야드에 장치 중인 컨테이너가 없습니다.',
    dwellMedian: '중앙값', dwellP90: '90% 이내', dwellMax: '최장', containers: '개',
    ownerFilter: '선사', showAll: '전체 보기', flags: '경고',
    unitDay: '일', unitHour: '시간', unitMin: '분', unitSec: '초',
    bins: ['1시간 미만', '1–6시간', '6–24시간', '1–3일', '3–7일', '7–14일', '14–30일', '30일 이상'],
  },
};

const $ = (id) => document.getElementById(id);
const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content;
const SYNC_ENABLED = meta('gatelog-sync') === 'on';
const IMAGES_ENABLED = meta('gatelog-images') === 'on';
// The head-office view (gatelog central serve) shows every site: a site
// column and filter, and no site-only parts (sync, yard, exceptions).
const CENTRAL = meta('gatelog-scope') === 'central';
const PAGE = 50;
/** Rows kept in the table; older ones leave as new ones arrive. */
const MAX_ROWS = 500;

let lang = chooseLanguage();
/** Passage id -> { passage, row }. */
const rows = new Map();
let nextCursor = null;
/** The feed cursor of the newest passage seen, for resuming. */
let feedCursor = null;
let feedCursorAt = 0;
let socket = null;
let reconnectDelay = 500;
let lastSync = null;
let loadSeq = 0;
/** The view on show: 'log' (passages) or 'yard'. */
let view = 'log';

function chooseLanguage() {
  const saved = localStorage.getItem('gatelog.lang');
  if (saved === 'ko' || saved === 'en') return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en'];
  return String(langs[0]).toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

function t(key) {
  return (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  $('lang').textContent = lang === 'ko' ? 'English' : '한국어';
  for (const { passage, row } of rows.values()) fillRow(row, passage);
  renderSync();
  setLive($('live').dataset.state);
  loadChart();
  if (!$('exceptions').hidden) loadExceptions(false);
  if (view === 'yard') loadYard(false);
}

/** A duration in seconds, as people say it: "2 d 3 h", "5 h 12 min", "42 min". */
function fmtDwell(secs) {
  if (secs === null || secs === undefined) return '';
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}${t('unitDay')} ${h}${t('unitHour')}`;
  if (h) return `${h}${t('unitHour')} ${m}${t('unitMin')}`;
  if (m) return `${m}${t('unitMin')}`;
  return `${s}${t('unitSec')}`;
}

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(lang === 'ko' ? 'ko-KR' : 'en-GB', { hour12: false });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- Filters --------------------------------------------------------------

/** The current filters as /api/v1/logs parameters. */
function filterParams() {
  const p = new URLSearchParams();
  const raw = $('search').value.toUpperCase().replace(/[\s\-./]/g, '');
  if (raw) {
    if (!/^[A-Z0-9]{1,11}$/.test(raw)) return null;
    // Letters alone are an owner code: a prefix, which the index serves.
    // Anything with digits may be a serial anywhere in the number.
    if (/^[A-Z]+$/.test(raw)) p.set('container', raw);
    else p.set('q', raw);
  }
  const from = $('from').value;
  const to = $('to').value;
  if (from) p.set('from', new Date(from).toISOString());
  if (to) p.set('to', new Date(to).toISOString());
  const camera = $('camera').value.trim();
  if (camera) p.set('camera', camera);
  if ($('check').value) p.set('check', $('check').value);
  if ($('direction').value) p.set('direction', $('direction').value);
  const plate = plateFilter();
  if (plate) p.set('truck_plate', plate);
  if (CENTRAL && $('site').value) p.set('site', $('site').value);
  return p;
}

/** The truck plate filter as the server compares it: trimmed, upper case. */
function plateFilter() {
  return $('plate').value.trim().toUpperCase();
}

/** Whether a live passage belongs in the table under the current filters. */
function matches(p) {
  const raw = $('search').value.toUpperCase().replace(/[\s\-./]/g, '');
  if (raw) {
    if (/^[A-Z]+$/.test(raw) ? !p.container.startsWith(raw) : !p.container.includes(raw)) return false;
  }
  const at = Date.parse(p.captured_at);
  if ($('from').value && at < new Date($('from').value).getTime()) return false;
  if ($('to').value && at > new Date($('to').value).getTime()) return false;
  const camera = $('camera').value.trim();
  if (camera && p.camera_id !== camera) return false;
  if ($('check').value === 'ok' && !p.check_digit_ok) return false;
  if ($('check').value === 'bad' && p.check_digit_ok) return false;
  if ($('direction').value && p.direction !== $('direction').value) return false;
  const plate = plateFilter();
  if (plate && p.truck_plate !== plate) return false;
  if (CENTRAL && $('site').value && p.site_id !== $('site').value) return false;
  return true;
}

async function loadPage(append) {
  const params = filterParams();
  const seq = ++loadSeq;
  if (!params) {
    clearRows();
    updateEmpty();
    return;
  }
  params.set('limit', String(PAGE));
  if (append && nextCursor) params.set('cursor', nextCursor);
  try {
    const res = await fetch(`/api/v1/logs?${params}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    if (seq !== loadSeq) return; // A newer search has started.
    if (!append) clearRows();
    for (const p of body.logs) upsert(p, { fresh: false, atEnd: true });
    nextCursor = body.next_cursor;
    $('more').hidden = !nextCursor;
    updateEmpty();
  } catch (e) {
    if (seq === loadSeq) toast(`${t('loadError')}: ${e.message}`);
  }
}

let searchTimer = null;
function onFilterChange() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadPage(false), 200);
}

// ---- Table ----------------------------------------------------------------

function clearRows() {
  rows.clear();
  $('rows').replaceChildren();
  nextCursor = null;
}

function updateEmpty() {
  $('empty').hidden = rows.size > 0;
}

const KNOWN_FLAGS = new Set(['check_digit_missing', 'check_digit_mismatch', 'category_unknown', 'clock_skew',
  'time_assumed', 'owner_unknown', 'out_without_in', 'in_while_in', 'iso_type_invalid']);

/** A movement's direction as an arrow and a word; a camera without one shows a dash. */
function directionCell(direction) {
  if (direction !== 'in' && direction !== 'out') return el('td', { class: 'dir', 'data-testid': 'direction', 'data-direction': 'none' }, '—');
  const arrow = direction === 'in' ? '→' : '←';
  return el('td', { class: `dir dir-${direction}`, 'data-testid': 'direction', 'data-direction': direction },
    `${arrow} ${t(direction === 'in' ? 'dirIn' : 'dirOut')}`);
}

/** A truck plate that, clicked, filters the log to that truck's movements. */
function plateButton(plate) {
  if (!plate) return '—';
  const b = el('button', { type: 'button', class: 'plate', title: t('plateFilterHint'), 'data-testid': 'plate' }, plate);
  b.addEventListener('click', (e) => {
    // The row behind it opens the detail; this click only filters.
    e.stopPropagation();
    filterByPlate(plate);
  });
  return b;
}

/** Shows the log of one truck: every box it carried in or out. */
function filterByPlate(plate) {
  $('plate').value = plate;
  $('detail').hidden = true;
  showView('log');
  loadPage(false);
}

function flagText(p) {
  const names = p.flags || [];
  const parts = [];
  if (names.includes('check_digit_missing')) parts.push(t('flagMissing'));
  if (names.includes('check_digit_mismatch')) parts.push(t('flagMismatch'));
  if (names.includes('category_unknown')) parts.push(t('flagCategory'));
  if (names.includes('clock_skew')) parts.push(t('flagClock'));
  if (names.includes('time_assumed')) parts.push(t('flagTimeAssumed'));
  if (names.includes('owner_unknown')) parts.push(t('flagOwner'));
  if (names.includes('out_without_in')) parts.push(t('flagOutWithoutIn'));
  if (names.includes('in_while_in')) parts.push(t('flagInWhileIn'));
  if (names.includes('iso_type_invalid')) parts.push(t('flagIsoType'));
  // A flag this page does not know yet is shown by its name, not hidden.
  for (const name of names) if (!KNOWN_FLAGS.has(name)) parts.push(name);
  if (!parts.length && !p.check_digit_ok) parts.push(t('flagMissing'));
  return parts.join(', ');
}

function fillRow(row, p) {
  const flagged = !p.check_digit_ok || (p.flags && p.flags.length > 0);
  row.classList.toggle('flagged', flagged);
  row.dataset.flagged = flagged ? 'true' : 'false';
  const container = el('td', { class: 'container' }, p.container);
  if (flagged) container.append(el('span', { class: 'flag', title: flagText(p), 'data-testid': 'flag' }, `⚠ ${flagText(p)}`));
  const fixes = p.corrections || [];
  row.dataset.corrected = fixes.length ? 'true' : 'false';
  if (fixes.length) {
    const last = fixes[fixes.length - 1];
    container.append(el('span', { class: 'corrected', 'data-testid': 'corrected', title: `${last.from} → ${last.to} (${t(`rule_${last.rule}`)})` }, `✎ ${t('correctedMark')}`));
  }
  // Without a sync target nothing is waiting to be sent, so rows carry no
  // sync state; "pending" on every row would read as a backlog.
  const state = syncTargeted() ? (p.sync_state || 'pending') : 'none';
  row.replaceChildren(...[
    el('td', {}, fmtTime(p.captured_at)),
    CENTRAL ? el('td', { class: 'site', 'data-testid': 'site' }, p.site_id) : null,
    container,
    directionCell(p.direction),
    el('td', { 'data-testid': 'lane' }, p.lane || '—'),
    el('td', {}, p.camera_id || '—'),
    el('td', {}, plateButton(p.truck_plate)),
    el('td', { class: 'iso', 'data-testid': 'iso-type' }, p.iso_type || '—'),
    el('td', { class: 'seen', 'data-testid': 'seen' }, String(p.seen_count)),
    el('td', { class: 'last' }, fmtTime(p.last_seen_at)),
    el('td', { class: `sync-${state}` }, state === 'none' ? '—' : t(state)),
  ].filter(Boolean));
}

/** Shows a passage, adding its row or refreshing it. */
function upsert(p, { fresh, atEnd }) {
  const known = rows.get(p.id);
  if (known) {
    known.passage = p;
    fillRow(known.row, p);
    return;
  }
  const row = el('tr', { 'data-testid': 'log-row', 'data-id': p.id });
  fillRow(row, p);
  row.addEventListener('click', () => openDetail(p.id));
  rows.set(p.id, { passage: p, row });
  const body = $('rows');
  if (atEnd) {
    body.append(row);
  } else {
    // Keep newest first by capture time; late reads slot in place.
    const at = Date.parse(p.captured_at);
    let before = null;
    for (const r of body.children) {
      const other = rows.get(r.dataset.id);
      if (other && Date.parse(other.passage.captured_at) <= at) { before = r; break; }
    }
    body.insertBefore(row, before);
  }
  while (rows.size > MAX_ROWS && body.lastElementChild) {
    rows.delete(body.lastElementChild.dataset.id);
    body.lastElementChild.remove();
  }
  if (fresh) {
    row.classList.add('fresh');
    setTimeout(() => row.classList.remove('fresh'), 4000);
  }
  updateEmpty();
}

function onDuplicate(msg) {
  const known = rows.get(msg.id);
  if (!known) return;
  known.passage = { ...known.passage, seen_count: msg.seen_count, last_seen_at: msg.last_seen_at };
  fillRow(known.row, known.passage);
  for (const cls of ['seen', 'last']) {
    const cell = known.row.querySelector(`.${cls}`);
    cell.classList.add('bump');
    setTimeout(() => cell.classList.remove('bump'), 2000);
  }
}

/** A passage changed number: show it as it now stands. */
async function onCorrected(msg) {
  const known = rows.get(msg.id);
  if (!known) return;
  try {
    const res = await fetch(`/api/v1/logs/${encodeURIComponent(msg.id)}`);
    if (!res.ok) return;
    const p = await res.json();
    delete p.sightings;
    upsert(p, { fresh: false, atEnd: false });
    known.row.classList.add('fresh');
    setTimeout(() => known.row.classList.remove('fresh'), 4000);
  } catch {
    // The next page load shows it.
  }
}

function remember(cursor, capturedAt) {
  const at = Date.parse(capturedAt);
  if (cursor && at >= feedCursorAt) {
    feedCursor = cursor;
    feedCursorAt = at;
  }
}

// ---- Live feed ------------------------------------------------------------

function setLive(state) {
  const pill = $('live');
  pill.dataset.state = state;
  pill.textContent = t(state === 'live' ? 'live' : state === 'offline' ? 'offline' : 'connecting');
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const query = feedCursor ? `?since=${encodeURIComponent(feedCursor)}` : '';
  socket = new WebSocket(`${proto}://${location.host}/ws/logs${query}`);
  socket.addEventListener('open', () => { reconnectDelay = 500; setLive('live'); });
  socket.addEventListener('message', (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    switch (msg.type) {
      case 'initial_data':
        for (const p of msg.logs) if (matches(p)) upsert(p, { fresh: query !== '', atEnd: false });
        if (msg.logs.length) remember(msg.cursor, msg.logs[0].captured_at);
        if (msg.complete === false) loadPage(false);
        break;
      case 'new_log':
        remember(msg.cursor, msg.log.captured_at);
        if (matches(msg.log)) upsert(msg.log, { fresh: true, atEnd: false });
        scheduleChart();
        scheduleExceptions();
        scheduleYard();
        break;
      case 'duplicate':
        // A repeat can give a passage its direction (its first read may
        // have come from a camera without one), so the yard may change.
        onDuplicate(msg);
        scheduleExceptions();
        scheduleYard();
        break;
      case 'corrected':
        onCorrected(msg);
        scheduleExceptions();
        scheduleYard();
        break;
      case 'sync_status':
        lastSync = msg;
        renderSync();
        break;
      case 'error':
        toast(msg.message);
        break;
      case 'resync':
        toast(t('sinceResync'));
        remember(msg.cursor, new Date().toISOString());
        loadPage(false);
        break;
      default:
        break;
    }
  });
  socket.addEventListener('close', async () => {
    setLive('offline');
    if (await signedOut()) return;
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  });
}

// A browser cannot see why a WebSocket handshake failed. After a server
// restart every session ends, so ask the API: a 401 means sign in again.
async function signedOut() {
  try {
    const res = await fetch('/api/v1/sync/status', { cache: 'no-store' });
    if (res.status === 401) {
      location.assign('/login');
      return true;
    }
  } catch {
    // The server is unreachable: keep trying to reconnect.
  }
  return false;
}

// ---- Sync indicator -------------------------------------------------------

async function loadSync() {
  if (!SYNC_ENABLED) return;
  try {
    const res = await fetch('/api/v1/sync/status');
    if (res.ok) lastSync = await res.json();
    else lastSync = null;
  } catch {
    lastSync = { last_error: 'unreachable' };
  }
  renderSync();
}

/** Whether a sync target is configured, as the status says. */
function syncTargeted() {
  return !!lastSync && lastSync.target !== 'none' && lastSync.target !== null;
}

let rowsTargeted = false;
function renderSync() {
  const pill = $('sync');
  const s = lastSync;
  // Rows show their sync state only with a target; redraw them when that
  // becomes known or changes.
  if (syncTargeted() !== rowsTargeted) {
    rowsTargeted = syncTargeted();
    for (const { row, passage } of rows.values()) fillRow(row, passage);
  }
  if (!syncTargeted()) {
    pill.dataset.state = 'off';
    pill.textContent = t('localOnly');
    return;
  }
  const online = !s.last_error;
  const parts = [`${t('sync')}: ${online ? t('online') : t('syncOffline')}`];
  if (s.pending !== undefined) parts.push(`${t('pending')} ${s.pending}`);
  if (s.oldest_pending_age_secs !== undefined && s.oldest_pending_age_secs !== null) {
    parts.push(`${t('lag')} ${Math.round(s.oldest_pending_age_secs)}s`);
  }
  if (s.dead_letters !== undefined) parts.push(`${t('dead')} ${s.dead_letters}`);
  pill.dataset.state = !online ? 'offline' : s.dead_letters > 0 ? 'degraded' : 'online';
  pill.textContent = parts.join(' · ');
  pill.title = s.last_error || (s.last_success_at ? fmtTime(s.last_success_at) : '');
}

// ---- Chart ----------------------------------------------------------------

let chartTimer = null;
function scheduleChart() {
  if (chartTimer) return;
  chartTimer = setTimeout(() => { chartTimer = null; loadChart(); }, 5000);
}

async function loadChart() {
  try {
    const res = await fetch('/api/v1/stats?bucket=hour');
    if (!res.ok) return;
    drawChart(await res.json());
  } catch {
    // The next refresh tries again.
  }
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawChart(stats) {
  const chart = $('chart');
  const W = 720, H = 160, left = 34, bottom = 20, top = 8;
  const buckets = stats.buckets || [];
  const max = Math.max(1, ...buckets.map((b) => b.passages));
  const n = Math.max(1, buckets.length);
  const slot = (W - left) / n;
  const nodes = [
    svg('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
    svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, String(max)),
    svg('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, '0'),
  ];
  buckets.forEach((b, i) => {
    const h = ((H - bottom - top) * b.passages) / max;
    const x = left + i * slot + 1;
    const bar = svg('rect', { class: 'bar', x, y: H - bottom - h, width: Math.max(1, slot - 2), height: h, 'data-count': b.passages });
    bar.append(svg('title', {}, `${fmtTime(b.start)}: ${b.passages} ${t('passages')}`));
    nodes.push(bar);
    if (i % 3 === 0) {
      const hour = new Date(b.start).getHours();
      nodes.push(svg('text', { x: x + slot / 2, y: H - 6, 'text-anchor': 'middle' }, `${String(hour).padStart(2, '0')}h`));
    }
  });
  chart.replaceChildren(...nodes);
  chart.setAttribute('aria-label', `${t('chartTitle')}: ${buckets.reduce((s, b) => s + b.passages, 0)}`);
}

// ---- Detail ---------------------------------------------------------------

function imageUrl(ref) {
  if (!ref) return null;
  if (/^https?:\/\//i.test(ref)) return ref;
  if (IMAGES_ENABLED) return `/images?ref=${encodeURIComponent(ref)}`;
  return null;
}

async function openDetail(id) {
  const res = await fetch(`/api/v1/logs/${encodeURIComponent(id)}`);
  if (!res.ok) { toast(`${t('loadError')}: HTTP ${res.status}`); return; }
  const p = await res.json();
  $('detail-title').textContent = p.container;
  const dl = el('dl', {});
  const add = (k, v) => dl.append(el('dt', {}, t(k)), el('dd', {}, v === null || v === undefined || v === '' ? '—' : String(v)));
  add('id', p.id);
  add('firstSeen', fmtTime(p.captured_at));
  add('colLast', fmtTime(p.last_seen_at));
  add('colSeen', p.seen_count);
  add('checkDigit', `${p.check_digit ?? '—'} ${p.check_digit_ok ? '✓' : `⚠ ${flagText(p)}`}`);
  const addNode = (k, node) => dl.append(el('dt', {}, t(k)), el('dd', {}, node));
  addNode('direction', directionCell(p.direction).textContent);
  add('colLane', p.lane);
  addNode('colPlate', plateButton(p.truck_plate));
  add('colIsoType', p.iso_type);
  if (p.dwell_secs !== null && p.dwell_secs !== undefined) add('dwell', fmtDwell(p.dwell_secs));
  if ((p.flags || []).length) add('flags', flagText(p));
  add('colCamera', p.camera_id);
  add('site', p.site_id);
  add('confidence', p.confidence);
  add('video', p.source_video);
  add('colSync', t(p.sync_state));
  const body = [dl];
  const fixes = p.corrections || [];
  if (fixes.length) {
    body.push(el('h3', {}, t('corrections')));
    const history = el('tbody', {});
    for (const c of fixes) {
      history.append(el('tr', { 'data-testid': 'correction-row' },
        el('td', {}, fmtTime(c.at)), el('td', { class: 'container' }, c.from), el('td', { class: 'container' }, c.to),
        el('td', {}, t(`rule_${c.rule}`)), el('td', {}, c.by), el('td', {}, c.reason || '')));
    }
    body.push(el('table', { 'data-testid': 'corrections' }, el('thead', {}, el('tr', {},
      el('th', {}, t('colAt')), el('th', {}, t('colFrom')), el('th', {}, t('colTo')),
      el('th', {}, t('colRule')), el('th', {}, t('colBy')), el('th', {}, t('colReason')))), history));
  }
  body.push(el('h3', {}, t('correctNumber')), numberForm({
    label: t('correct'),
    withReason: true,
    submit: (number, reason) => sendCorrection(`/api/v1/logs/${encodeURIComponent(p.id)}`, 'PATCH', { container: number, reason }),
    done: () => openDetail(p.id),
  }));
  body.push(el('h3', {}, t('image')));
  const refs = [p.cropped_image_ref, ...(p.sightings || []).map((s) => s.cropped_image_ref)];
  const url = refs.map(imageUrl).find((u) => u);
  if (url) body.push(el('img', { src: url, alt: `${t('image')} ${p.container}`, 'data-testid': 'crop' }));
  else body.push(el('p', { class: 'muted' }, t('noImage')));
  // The count is the passage's; the table holds one page of sightings at
  // a time (100 from the detail), and the button fetches the next.
  body.push(el('h3', {}, `${t('sightings')} (${p.seen_count})`));
  const table = el('table', {}, el('thead', {}, el('tr', {},
    el('th', {}, t('colTime')), el('th', {}, t('colCamera')), el('th', {}, t('confidence')),
    el('th', {}, t('checkDigit')), el('th', {}, t('raw')))));
  const tbody = el('tbody', {});
  const addSightings = (list) => {
    for (const s of list) {
      tbody.append(el('tr', { 'data-testid': 'sighting-row' },
        el('td', {}, fmtTime(s.captured_at)),
        el('td', {}, s.camera_id || '—'),
        el('td', {}, s.confidence ?? '—'),
        el('td', {}, `${s.check_digit_ok ? '✓' : '⚠'}${s.corrected_from ? ` ✎ ${t('readAs')} ${s.corrected_from} (${t(`rule_${s.rule}`)})` : ''}`),
        el('td', {}, el('pre', {}, JSON.stringify(s.raw)))));
    }
  };
  addSightings(p.sightings || []);
  let sightingsCursor = p.sightings_next_cursor;
  const moreSightings = el('button', { type: 'button', 'data-testid': 'more-sightings' }, t('more'));
  moreSightings.hidden = !sightingsCursor;
  moreSightings.addEventListener('click', async () => {
    const r = await fetch(`/api/v1/logs/${encodeURIComponent(p.id)}/sightings?cursor=${encodeURIComponent(sightingsCursor)}`);
    if (!r.ok) { toast(`${t('loadError')}: HTTP ${r.status}`); return; }
    const page = await r.json();
    addSightings(page.sightings);
    sightingsCursor = page.next_cursor;
    moreSightings.hidden = !sightingsCursor;
  });
  table.append(tbody);
  body.push(table, moreSightings);
  $('detail-body').replaceChildren(...body);
  $('detail').hidden = false;
}

// ---- Exceptions -----------------------------------------------------------

/** ISO 6346 letter values: A=10 upwards, skipping multiples of 11. */
const LETTER_VALUES = (() => {
  const values = {};
  let v = 10;
  for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') {
    if (v % 11 === 0) v += 1;
    values[c] = v;
    v += 1;
  }
  return values;
})();

/** The check digit of an owner code and serial (10 characters). */
function checkDigitOf(core) {
  let sum = 0;
  for (let i = 0; i < 10; i += 1) {
    const c = core[i];
    sum += (c >= 'A' && c <= 'Z' ? LETTER_VALUES[c] : Number(c)) * 2 ** i;
  }
  return (sum % 11) % 10;
}

/**
 * What an operator typed, as the server will judge it: a whole ISO 6346
 * number whose check digit passes, or a hint saying what is wrong.
 */
function parseContainer(input) {
  const s = input.toUpperCase().replace(/[\s\-./_]/g, '');
  if (!/^[A-Z]{3}[UJZ][0-9]{6}[0-9]?$/.test(s)) return { ok: false, hint: t('numberInvalid') };
  const digit = checkDigitOf(s.slice(0, 10));
  if (s.length === 10 || Number(s[10]) !== digit) return { ok: false, hint: `${t('checkDigitShould')} ${digit}` };
  return { ok: true, number: s, hint: t('numberOk') };
}

/**
 * An input that accepts only a valid number, with its button and hint.
 * `submit(number, reason)` sends it and resolves to whether it worked.
 */
function numberForm({ label, withReason, submit, done }) {
  const input = el('input', { type: 'text', maxLength: 16, autocomplete: 'off', spellcheck: false, placeholder: 'CSQU3054383', 'data-testid': 'number-input' });
  const reason = withReason ? el('input', { type: 'text', maxLength: 500, placeholder: t('reason'), 'data-testid': 'reason-input' }) : null;
  const button = el('button', { type: 'submit', disabled: true, 'data-testid': 'number-submit' }, label);
  const hint = el('span', { class: 'hint', 'data-testid': 'number-hint' });
  const form = el('form', { class: 'correct-form' }, input, reason, button, hint);
  input.addEventListener('input', () => {
    const parsed = parseContainer(input.value);
    const empty = input.value.trim() === '';
    input.setAttribute('aria-invalid', String(!parsed.ok && !empty));
    button.disabled = !parsed.ok;
    hint.textContent = empty ? '' : parsed.hint;
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const parsed = parseContainer(input.value);
    if (!parsed.ok) return;
    button.disabled = true;
    if (await submit(parsed.number, reason ? reason.value : undefined)) done();
    else button.disabled = false;
  });
  return form;
}

/** Sends a correction; a refusal is shown, never lost silently. */
async function sendCorrection(url, method, body) {
  try {
    const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.ok) {
      scheduleExceptions(0);
      return true;
    }
    const err = await res.json().catch(() => ({}));
    toast(res.status === 403 ? t('forbidden') : (err.message || `HTTP ${res.status}`));
  } catch (e) {
    toast(e.message);
  }
  return false;
}

function exceptionItem(item) {
  const url = imageUrl(item.cropped_image_ref);
  const picture = url
    ? el('img', { src: url, alt: `${t('image')} ${item.text}`, 'data-testid': 'exception-image' })
    : el('span', { class: 'noimg muted' }, t('noImage'));
  const li = el('li', { class: 'exception', 'data-testid': 'exception', 'data-id': item.id, 'data-kind': item.kind });
  const target = item.kind === 'unresolved_read'
    ? { url: `/api/v1/exceptions/${encodeURIComponent(item.id)}/resolve`, method: 'POST', label: t('resolve') }
    : { url: `/api/v1/logs/${encodeURIComponent(item.id)}`, method: 'PATCH', label: t('correct') };
  li.append(
    picture,
    el('div', {}, el('strong', {}, t(item.kind)), ' ', el('span', { class: 'text', 'data-testid': 'exception-text' }, item.text)),
    el('div', { class: 'muted' }, `${item.camera_id || '—'} · ${fmtTime(item.captured_at)}`),
    numberForm({
      label: target.label,
      withReason: false,
      submit: (number) => sendCorrection(target.url, target.method, { container: number }),
      done: () => { li.remove(); $('exceptions-empty').hidden = $('exception-list').children.length > 0; },
    }),
  );
  return li;
}

let exceptionsCursor = null;
async function loadExceptions(append) {
  const open = !$('exceptions').hidden;
  const params = new URLSearchParams({ limit: open ? '20' : '1' });
  if (append && exceptionsCursor) params.set('cursor', exceptionsCursor);
  try {
    const res = await fetch(`/api/v1/exceptions?${params}`);
    if (!res.ok) return;
    const body = await res.json();
    const badge = $('exceptions-count');
    badge.textContent = String(body.open.total);
    badge.dataset.open = String(body.open.total > 0);
    if (!open) return;
    const list = $('exception-list');
    // Keep an item an operator is typing into; replace the rest.
    const typing = document.activeElement && list.contains(document.activeElement);
    if (typing && !append) return;
    if (!append) list.replaceChildren();
    for (const item of body.exceptions) list.append(exceptionItem(item));
    exceptionsCursor = body.next_cursor;
    $('more-exceptions').hidden = !exceptionsCursor;
    $('exceptions-empty').hidden = list.children.length > 0;
  } catch {
    // The next refresh tries again.
  }
}

let exceptionsTimer = null;
/** Refreshes the queue and its count soon, once for a burst of events. */
function scheduleExceptions(delay = 1000) {
  clearTimeout(exceptionsTimer);
  exceptionsTimer = setTimeout(() => loadExceptions(false), delay);
}

function toggleExceptions() {
  const section = $('exceptions');
  section.hidden = !section.hidden;
  $('show-exceptions').setAttribute('aria-expanded', String(!section.hidden));
  loadExceptions(false);
}

// ---- Views ----------------------------------------------------------------

/** Shows one view (log or yard) and remembers it in the address. */
function showView(name) {
  view = name === 'yard' ? 'yard' : 'log';
  for (const section of document.querySelectorAll('[data-view]')) section.hidden = section.dataset.view !== view;
  for (const b of document.querySelectorAll('[data-view-button]')) b.setAttribute('aria-pressed', String(b.dataset.viewButton === view));
  history.replaceState(null, '', view === 'yard' ? '#yard' : `${location.pathname}${location.search}`);
  if (view === 'yard') loadYard(false);
}

// ---- Yard -----------------------------------------------------------------

/**
 * The histogram's bins, by their lower edges in seconds: under an hour,
 * 1–6 h, 6–24 h, 1–3 days, 3–7 days, 1–2 weeks, 2 weeks to 30 days, and
 * longer. A yard's stays run from minutes to months, so the bins widen.
 */
const DWELL_EDGES = [0, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400];

/** The owner the yard is narrowed to, or null for the whole yard. */
let yardOwner = null;
let yardCursor = null;
let yardSeq = 0;

function yardParams(extra) {
  const p = new URLSearchParams(extra);
  if (yardOwner) p.set('owner', yardOwner);
  return p;
}

async function getJson(url) {
  const res = await fetch(url);
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new Error(err.message || `HTTP ${res.status}`);
  }
  return res.json();
}

/**
 * Loads the yard: a page of the longest stays, the statistics, and the
 * histogram. The server counts the yard for any `min_dwell_secs`, so each
 * bin is the difference of two exact counts; no page of entries is
 * needed, however full the yard is.
 */
async function loadYard(append) {
  const seq = ++yardSeq;
  try {
    const page = yardParams({ limit: String(PAGE) });
    if (append && yardCursor) page.set('cursor', yardCursor);
    const requests = [getJson(`/api/v1/yard?${page}`)];
    if (!append) {
      requests.push(getJson('/api/v1/yard/stats'));
      // The first edge asks with no minimum, so that a gate-in stamped a
      // little ahead of this server's clock is counted, as the list does.
      for (const edge of DWELL_EDGES) {
        const q = edge > 0 ? { limit: '1', min_dwell_secs: String(edge) } : { limit: '1' };
        requests.push(getJson(`/api/v1/yard?${yardParams(q)}`));
      }
    }
    const [list, stats, ...atLeast] = await Promise.all(requests);
    if (seq !== yardSeq) return; // A newer load has started.
    if (!append) {
      $('yard-rows').replaceChildren();
      drawYardSummary(list.count, stats);
      drawHistogram(atLeast.map((r) => r.count));
    }
    for (const item of list.yard) $('yard-rows').append(yardRow(item));
    yardCursor = list.next_cursor;
    $('more-yard').hidden = !yardCursor;
    $('yard-empty').hidden = $('yard-rows').children.length > 0;
  } catch (e) {
    if (seq === yardSeq) toast(`${t('loadError')}: ${e.message}`);
  }
}

function yardRow(item) {
  const row = el('tr', { 'data-testid': 'yard-row', 'data-id': item.passage_id },
    el('td', { class: 'container' }, item.container),
    el('td', {}, fmtTime(item.gate_in_at)),
    el('td', { class: 'dwell', 'data-testid': 'dwell', 'data-secs': String(item.dwell_secs), title: `${item.dwell_secs} s` }, fmtDwell(item.dwell_secs)),
    el('td', {}, plateButton(item.truck_plate)),
    el('td', { class: 'iso' }, item.iso_type || '—'),
    el('td', {}, item.lane || '—'));
  row.addEventListener('click', () => openDetail(item.passage_id));
  return row;
}

function drawYardSummary(count, stats) {
  $('yard-count').textContent = String(count);
  const clear = $('yard-owner-clear');
  clear.hidden = !yardOwner;
  clear.textContent = yardOwner ? `${t('ownerFilter')} ${yardOwner} ✕ ${t('showAll')}` : '';
  const d = yardOwner ? stats.dwell_per_owner[yardOwner] : stats.dwell;
  $('yard-dwell').textContent = d && count > 0
    ? `${t('dwellMedian')} ${fmtDwell(d.p50)} · ${t('dwellP90')} ${fmtDwell(d.p90)} · ${t('dwellMax')} ${fmtDwell(d.max)}`
    : '';
  // Most containers first; the owner's code breaks ties.
  const owners = Object.entries(stats.per_owner).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  $('yard-owners').replaceChildren(...owners.map(([owner, n]) => {
    const b = el('button', { type: 'button', class: 'owner', 'aria-pressed': String(owner === yardOwner) },
      el('span', { class: 'container' }, owner), ' ', el('strong', { 'data-testid': 'owner-count' }, String(n)));
    const median = stats.dwell_per_owner[owner];
    if (median) b.title = `${t('dwellMedian')} ${fmtDwell(median.p50)}`;
    b.addEventListener('click', () => {
      yardOwner = owner === yardOwner ? null : owner;
      loadYard(false);
    });
    return el('li', { 'data-testid': 'yard-owner', 'data-owner': owner }, b);
  }));
}

/** Bars of containers per dwell bin, from the counts at or above each edge. */
function drawHistogram(atLeast) {
  const chart = $('yard-histogram');
  const W = 560, H = 170, left = 8, bottom = 22, top = 16;
  const counts = atLeast.map((n, i) => Math.max(0, n - (i + 1 < atLeast.length ? atLeast[i + 1] : 0)));
  const max = Math.max(1, ...counts);
  const slot = (W - left) / counts.length;
  const labels = t('bins');
  const nodes = [svg('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom })];
  counts.forEach((n, i) => {
    const h = ((H - bottom - top) * n) / max;
    const x = left + i * slot + 4;
    const bar = svg('rect', { class: 'bar', x, y: H - bottom - h, width: Math.max(1, slot - 8), height: h,
      'data-count': n, 'data-testid': 'hist-bar', 'data-min-secs': DWELL_EDGES[i] });
    bar.append(svg('title', {}, `${labels[i]}: ${n} ${t('containers')}`));
    nodes.push(bar);
    if (n > 0) nodes.push(svg('text', { x: x + (slot - 8) / 2, y: H - bottom - h - 3, 'text-anchor': 'middle' }, String(n)));
    nodes.push(svg('text', { x: x + (slot - 8) / 2, y: H - 6, 'text-anchor': 'middle' }, labels[i]));
  });
  chart.replaceChildren(...nodes);
  chart.setAttribute('aria-label', `${t('histTitle')}: ${counts.map((n, i) => `${labels[i]} ${n}`).join(', ')}`);
}

let yardTimer = null;
/** Refreshes the yard soon, once for a burst of live events. */
function scheduleYard() {
  if (view !== 'yard' || yardTimer) return;
  yardTimer = setTimeout(() => { yardTimer = null; loadYard(false); }, 1000);
}

// ---- Notices --------------------------------------------------------------

let toastTimer = null;
function toast(message) {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

// ---- Start ----------------------------------------------------------------

/** On the head-office view: the site column, and the site filter filled
 * from /api/v1/sites; the parts only a site has are hidden. */
async function setUpCentral() {
  $('site-box').hidden = false;
  $('site-col').hidden = false;
  for (const id of ['view-yard', 'show-exceptions']) $(id).hidden = true;
  $('site').addEventListener('change', onFilterChange);
  try {
    const res = await fetch('/api/v1/sites');
    if (!res.ok) return;
    const body = await res.json();
    for (const s of body.sites) {
      $('site').append(el('option', { value: s.site_id }, s.stale ? `${s.site_id} ⚠` : s.site_id));
    }
  } catch {
    // The filter stays with "All"; the listing still works.
  }
}

async function start() {
  if (CENTRAL) await setUpCentral();
  for (const id of ['search', 'from', 'to', 'camera', 'plate']) $(id).addEventListener('input', onFilterChange);
  for (const id of ['check', 'direction']) $(id).addEventListener('change', onFilterChange);
  $('clear').addEventListener('click', () => {
    for (const id of ['search', 'from', 'to', 'camera', 'check', 'direction', 'plate', 'site']) $(id).value = '';
    loadPage(false);
  });
  for (const b of document.querySelectorAll('[data-view-button]')) b.addEventListener('click', () => showView(b.dataset.viewButton));
  $('more-yard').addEventListener('click', () => loadYard(true));
  $('yard-owner-clear').addEventListener('click', () => { yardOwner = null; loadYard(false); });
  $('more').addEventListener('click', () => loadPage(true));
  $('show-exceptions').addEventListener('click', toggleExceptions);
  $('more-exceptions').addEventListener('click', () => loadExceptions(true));
  $('close-detail').addEventListener('click', () => { $('detail').hidden = true; });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('detail').hidden = true; });
  $('lang').addEventListener('click', () => {
    lang = lang === 'ko' ? 'en' : 'ko';
    localStorage.setItem('gatelog.lang', lang);
    applyLanguage();
  });
  applyLanguage();
  showView(location.hash === '#yard' ? 'yard' : 'log');
  loadPage(false);
  loadSync();
  connect();
  setInterval(loadChart, 60000);
  setInterval(loadSync, 10000);
  // Queued reads make no live event, so the count is also polled.
  if (CENTRAL) return;
  loadExceptions(false);
  setInterval(() => loadExceptions(false), 10000);
  // Stays grow by the minute without any event.
  setInterval(() => { if (view === 'yard') loadYard(false); }, 60000);
}

start();
