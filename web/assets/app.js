// fabcommons pages: the little JavaScript they need. No inline script anywhere (the
// Content-Security-Policy forbids it); pages describe behaviour with data- attributes.
'use strict';

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';

async function api(method, url, body) {
  const opts = { method, headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(url, opts);
  const text = await resp.text();
  const data = text ? JSON.parse(text) : {};
  if (!resp.ok) {
    const e = new Error(data.error?.message || resp.statusText);
    e.field = data.error?.field;
    throw e;
  }
  return data;
}

function showError(form, field, message) {
  const el = form.querySelector(`[data-error="${field}"]`) || form.querySelector('[data-error="form"]');
  if (!el) { alert(message); return; }
  el.textContent = message;
  el.hidden = false;
  const input = form.querySelector(`[name="${field}"]`);
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
}

function clearErrors(form) {
  form.querySelectorAll('[data-error]').forEach((el) => { el.hidden = true; el.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
}

// Forms with data-api send their fields as JSON to the API. "a.b" names nest; data-type
// says number, bool or list (comma-separated).
function formJSON(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || ((el.type === 'checkbox' || el.type === 'radio') && !el.checked)) continue;
    let v = el.value;
    switch (el.dataset.type) {
      case 'number': v = Number(v); break;
      case 'bool': v = v === 'true'; break;
      case 'list': v = v.split(',').map((s) => s.trim()).filter(Boolean); break;
    }
    const path = el.name.split('.');
    let o = out;
    while (path.length > 1) { const k = path.shift(); o = o[k] = o[k] || {}; }
    o[path[0]] = v;
  }
  return out;
}

document.addEventListener('submit', async (ev) => {
  const form = ev.target;
  if (!form.dataset.api) return;
  ev.preventDefault();
  clearErrors(form);
  const button = form.querySelector('[type=submit]');
  if (button) button.disabled = true;
  try {
    const body = formJSON(form);
    const method = form.dataset.method || 'POST';
    const data = await api(method, form.dataset.api, method === 'DELETE' ? undefined : body);
    const then = form.dataset.then;
    if (form.dataset.show) {
      const value = form.dataset.show.split('.').reduce((o, k) => o?.[k], data);
      const box = form.querySelector('[data-result]');
      box.querySelector('[data-result-value]').textContent = value;
      box.hidden = false;
    } else if (then === 'reload') {
      location.reload();
    } else if (then) {
      location.assign(then.replace('{slug}', encodeURIComponent(body.slug || '')));
    }
  } catch (e) {
    showError(form, e.field || 'form', e.message);
  } finally {
    if (button) button.disabled = false;
  }
});

document.addEventListener('change', (ev) => {
  const form = ev.target.closest('form[data-autosubmit]');
  if (form && ev.target.tagName === 'SELECT') form.requestSubmit();
});

// Live pages: a server-sent event stream says something changed; the page fetches its
// own HTML again and swaps the live part in, so what you see is what the server says.
function live() {
  const box = document.querySelector('[data-live-order], [data-live-lab]');
  if (!box) return;
  const q = box.dataset.liveLab ? 'lab=' + encodeURIComponent(box.dataset.liveLab) : 'order=' + encodeURIComponent(box.dataset.liveOrder);
  const status = () => document.querySelector('[data-live-status]');
  let timer = null, busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    const active = document.activeElement;
    if (active && active !== document.body && box.contains(active) && active.matches('input, select, textarea')) {
      timer = setTimeout(refresh, 2000); // do not pull a form out from under someone typing
      return;
    }
    busy = true;
    try {
      const resp = await fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      if (resp.ok) {
        const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
        const fresh = doc.querySelector(box.dataset.liveLab ? '[data-live-lab]' : '[data-live-order]');
        if (fresh) { box.innerHTML = fresh.innerHTML; summarize(); }
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  const es = new EventSource('/api/v1/events?' + q);
  const onChange = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
  es.addEventListener('job', onChange);
  es.addEventListener('machine', onChange);
  es.onopen = () => { const s = status(); if (s) { s.textContent = 'live'; s.classList.remove('off'); } };
  es.onerror = () => { const s = status(); if (s) { s.textContent = 'reconnecting…'; s.classList.add('off'); } };
  summarize();
}

function summarize() {
  const el = document.querySelector('[data-order-summary]');
  if (!el) return;
  const states = [...document.querySelectorAll('tr[data-job-id]')].map((r) => r.dataset.state);
  const done = states.filter((s) => s === 'done').length;
  el.textContent = `${done} of ${states.length} done`;
  el.dataset.done = String(done === states.length);
}

// Upload: many files by drag and drop or the picker, each with its mesh check before
// publishing and its own progress bar while the whole version goes up in one request.
function upload() {
  const form = document.getElementById('upload');
  if (!form) return;
  const files = new Map(); // path -> {file, li, bar}
  const list = form.querySelector('[data-file-list]');
  const maxFile = Number(form.dataset.maxFile);
  const types = JSON.parse(form.dataset.fileTypes || '{}'); // ".stl" -> {kind, label}
  const typeOf = (path) => {
    const dot = path.lastIndexOf('.');
    const ext = dot > path.lastIndexOf('/') ? path.slice(dot).toLowerCase() : '';
    return types[ext] || { kind: 'document', label: ext ? ext.slice(1).toUpperCase() + ' file' : 'File' };
  };

  const add = (file) => {
    const path = file.webkitRelativePath || file.name;
    if (files.has(path)) files.get(path).li.remove();
    const li = document.createElement('li');
    const head = document.createElement('div');
    const type = typeOf(path);
    head.textContent = `${path} — ${type.label} (${(file.size / 1e6).toFixed(2)} MB) `;
    li.dataset.kind = type.kind;
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.textContent = 'Remove';
    rm.setAttribute('aria-label', 'Remove ' + path);
    rm.addEventListener('click', () => { files.delete(path); li.remove(); });
    head.append(rm);
    const bar = document.createElement('progress');
    bar.max = 100; bar.value = 0;
    bar.setAttribute('aria-label', 'Upload of ' + path);
    const lint = document.createElement('div');
    lint.className = 'muted';
    li.append(head, bar, lint);
    list.append(li);
    files.set(path, { file, li, bar });
    if (file.size > maxFile) {
      lint.className = 'error';
      lint.textContent = 'Too large: the limit is ' + (maxFile / 1e6).toFixed(0) + ' MB per file.';
    } else if (/\.(stl|3mf)$/i.test(path)) {
      lint.textContent = 'Checking the mesh…';
      const fd = new FormData();
      fd.append('file', file, path);
      fetch('/api/v1/mesh/check', { method: 'POST', body: fd, credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf() } })
        .then((r) => r.json())
        .then((d) => {
          if (d.error) { lint.className = 'error'; lint.textContent = d.error.message; return; }
          const r = d.report, s = r.bbox.size;
          lint.textContent = `${r.triangles} triangles, ${s.map((x) => x.toFixed(1)).join(' × ')} mm, ` +
            (r.watertight ? 'watertight' : 'not watertight') + (r.notes?.length ? ' — ' + r.notes.join('; ') : '');
          lint.dataset.lint = r.watertight ? 'ok' : 'warn';
        })
        .catch(() => { lint.textContent = 'The mesh check is unavailable; the hub checks it on publishing.'; });
    }
  };

  form.querySelector('[data-files]').addEventListener('change', (ev) => { [...ev.target.files].forEach(add); ev.target.value = ''; });
  const drop = form.querySelector('[data-drop]');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); drop.classList.remove('over'); [...ev.dataTransfer.files].forEach(add); });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const val = (n) => form.elements[n]?.value?.trim() || '';
    const meta = {};
    if (form.elements.title) {
      Object.assign(meta, { title: val('title'), summary: val('summary'), tags: val('tags').split(',').map((s) => s.trim()).filter(Boolean) });
    } else {
      meta.message = val('message');
    }
    const lic = form.querySelector('input[name=license]:checked');
    if (lic) meta.license = lic.value;
    if (form.elements.title && !meta.title) return showError(form, 'title', 'A design needs a title.');
    if (form.elements.title && !meta.license) return showError(form, 'license', 'Choose a license: it says what others may do with the design.');
    if (form.elements.title && files.size === 0) return showError(form, 'files', 'Add at least one file.');
    const fd = new FormData();
    fd.append('meta', JSON.stringify(meta));
    const order = [...files.values()];
    for (const [path, f] of files) fd.append('files', f.file, path);
    const bomFile = form.querySelector('[data-bom-file]').files[0];
    if (bomFile) fd.append('bom', bomFile, bomFile.name);
    else if (val('bom_text')) fd.append('bom', new Blob([val('bom_text')], { type: 'text/csv' }), 'bom.csv');

    const xhr = new XMLHttpRequest();
    const submit = form.querySelector('[data-submit]');
    submit.disabled = true;
    xhr.upload.addEventListener('progress', (e) => {
      // One request carries every file in order: give each its share of the bytes sent.
      let left = e.loaded;
      for (const f of order) {
        const got = Math.max(0, Math.min(f.file.size, left));
        f.bar.value = f.file.size ? (100 * got) / f.file.size : 100;
        left -= f.file.size;
      }
    });
    xhr.addEventListener('load', () => {
      submit.disabled = false;
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 201) {
        order.forEach((f) => { f.bar.value = 100; });
        const slug = data.design?.slug || form.dataset.upload.split('/')[4];
        location.assign('/designs/' + encodeURIComponent(slug));
        return;
      }
      showError(form, data.error?.field || 'form', data.error?.message || `the hub answered ${xhr.status}`);
    });
    xhr.addEventListener('error', () => { submit.disabled = false; showError(form, 'form', 'The upload failed: is the hub reachable?'); });
    xhr.open('POST', form.dataset.upload);
    xhr.setRequestHeader('X-CSRF-Token', csrf());
    xhr.send(fd);
  });
}

document.addEventListener('DOMContentLoaded', () => { live(); upload(); });

// okhImport posts an OKH package to the API and shows what the hub made of it: the
// new design, and the keys and files it used, ignored or could not find.
function okhImport() {
  const form = document.getElementById('okh-import');
  if (!form) return;
  const result = document.querySelector('[data-import-result]');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const file = form.elements.archive.files[0];
    if (!file) return showError(form, 'archive', 'Choose the zip to import.');
    if (file.size > Number(form.dataset.max)) return showError(form, 'archive', 'The zip is over the upload limit.');
    const fd = new FormData();
    fd.append('archive', file, file.name);
    if (form.elements.license.value) fd.append('license', form.elements.license.value);
    const submit = form.querySelector('[data-submit]');
    submit.disabled = true;
    fetch(form.dataset.import, { method: 'POST', body: fd, credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf() } })
      .then(async (resp) => {
        const data = await resp.json().catch(() => ({}));
        if (resp.status !== 201) {
          showError(form, data.error?.field === 'license' ? 'license' : 'archive', data.error?.message || `the hub answered ${resp.status}`);
          return;
        }
        const link = result.querySelector('[data-design-link]');
        link.href = '/designs/' + encodeURIComponent(data.design.slug);
        link.textContent = data.design.title;
        const report = result.querySelector('[data-report]');
        report.replaceChildren();
        const r = data.report;
        const list = (title, items, line) => {
          if (!items?.length) return;
          const h = document.createElement('h3');
          h.textContent = title;
          const ul = document.createElement('ul');
          ul.dataset.list = title;
          for (const it of items) {
            const li = document.createElement('li');
            li.textContent = line(it);
            ul.append(li);
          }
          report.append(h, ul);
        };
        const item = (it) => [it.key, it.path, it.note].filter(Boolean).join(' — ');
        list('Used', r.used, item);
        list('Ignored', r.ignored, item);
        list('Named but missing', r.missing, item);
        list('In the zip but not named, left out', r.unnamed, (p) => p);
        result.hidden = false;
        link.focus();
      })
      .catch(() => showError(form, 'form', 'The import failed: is the hub reachable?'))
      .finally(() => { submit.disabled = false; });
  });
}

document.addEventListener('DOMContentLoaded', okhImport);

// Forms with data-photo upload one image (multipart) to a job, then show the page again.
document.querySelectorAll('form[data-photo]').forEach((form) => {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const file = form.querySelector('input[type="file"]');
    if (!file.files.length) { showError(form, 'photo', 'Choose a photo first.'); return; }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const resp = await fetch(form.dataset.photo, { method: 'POST', body: new FormData(form), credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf() } });
      const text = await resp.text();
      const data = text ? JSON.parse(text) : {};
      if (!resp.ok) throw new Error(data.error?.message || resp.statusText);
      location.reload();
    } catch (e) {
      showError(form, 'form', e.message);
      button.disabled = false;
    }
  });
});
