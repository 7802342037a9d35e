// mailward webmail: keyboard shortcuts, live list updates, drag to a folder, the folder
// drawer on small screens. Every page works without it (forms and links do the work).

const LIST_KEY = "mailward:list"; // the last list's order, for j/k in the read view

document.documentElement.classList.add("js");

function csrfToken() {
  const input = document.querySelector('input[name="_csrf_token"]');
  return input ? input.value : "";
}

function typing(target) {
  if (!(target instanceof Element)) return false;
  return target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]") !== null;
}

// ---- the message list -------------------------------------------------------------

function rows() {
  return Array.from(document.querySelectorAll('#message-list [data-test="message-row"]'));
}

let cursor = -1;

function setCursor(index) {
  const all = rows();
  if (!all.length) return;
  cursor = Math.max(0, Math.min(index, all.length - 1));
  all.forEach((row, i) => row.classList.toggle("cursor", i === cursor));
  all[cursor].scrollIntoView({ block: "nearest" });
  const link = all[cursor].querySelector(".row-link");
  if (link) link.focus({ preventScroll: true });
}

function rememberList() {
  const all = rows();
  if (!all.length) return;
  const items = all.map((row) => ({ folder: row.dataset.folder, uid: row.dataset.uid, href: row.dataset.href }));
  try {
    sessionStorage.setItem(LIST_KEY, JSON.stringify({ url: location.pathname + location.search, items }));
  } catch (_) { /* storage off: j/k in the read view just do nothing */ }
}

function cursorRow() {
  const all = rows();
  if (cursor < 0 && all.length) {
    const focused = document.activeElement && document.activeElement.closest('[data-test="message-row"]');
    cursor = focused ? all.indexOf(focused) : 0;
  }
  return all[cursor] || null;
}

function submitList(action, row) {
  const form = document.getElementById("list-form");
  if (!form) return;
  const checked = form.querySelectorAll('input[name="uid"]:checked');
  if (!checked.length && row) {
    const box = row.querySelector('input[name="uid"]');
    if (box) box.checked = true;
  }
  const button = form.querySelector(`button[name="action"][value="${action}"]`);
  if (button) form.requestSubmit(button);
}

// ---- the read view ----------------------------------------------------------------

function neighbour(step) {
  const view = document.getElementById("message-view");
  if (!view) return null;
  let list;
  try {
    list = JSON.parse(sessionStorage.getItem(LIST_KEY) || "null");
  } catch (_) {
    return null;
  }
  if (!list || !Array.isArray(list.items)) return null;
  const here = list.items.findIndex((item) => item.folder === view.dataset.folder && item.uid === view.dataset.uid);
  if (here < 0) return null;
  const next = list.items[here + step];
  return next ? next.href : null;
}

function click(selector) {
  const element = document.querySelector(selector);
  if (!element) return false;
  if (element instanceof HTMLButtonElement && element.form) {
    element.form.requestSubmit(element);
  } else {
    element.click();
  }
  return true;
}

// ---- shortcuts --------------------------------------------------------------------

function toggleHelp(show) {
  const help = document.getElementById("shortcut-help");
  if (!help) return;
  help.hidden = show === undefined ? !help.hidden : !show;
  if (!help.hidden) {
    const close = help.querySelector("button");
    if (close) close.focus();
  }
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape") {
    toggleHelp(false);
    if (typing(event.target)) event.target.blur();
    return;
  }
  if (typing(event.target)) return;
  const inList = rows().length > 0 && document.getElementById("list-form") !== null;
  const inView = document.getElementById("message-view") !== null;
  let done = true;
  switch (event.key) {
    case "?":
      toggleHelp();
      break;
    case "/": {
      const search = document.querySelector('[data-test="search-input"]');
      if (search) { search.focus(); search.select(); }
      break;
    }
    case "c":
      location.href = "/mail/compose?mode=new";
      break;
    case "j":
    case "k": {
      const step = event.key === "j" ? 1 : -1;
      if (inView) {
        const href = neighbour(step);
        if (href) location.href = href;
      } else if (rows().length) {
        setCursor(cursor < 0 ? 0 : cursor + step);
      }
      break;
    }
    case "Enter":
    case "o": {
      const native = event.target instanceof Element && event.target.closest("a, button, summary");
      if (inView || (event.key === "Enter" && native)) { done = false; break; }
      const row = cursorRow();
      if (row && row.dataset.href) location.href = row.dataset.href;
      else done = false;
      break;
    }
    case "u": {
      const back = document.querySelector('[data-action="back"]');
      if (back) location.href = back.getAttribute("href");
      break;
    }
    case "r":
      done = inView && click('[data-test="action-reply"]');
      break;
    case "a":
      done = inView && click('[data-test="action-replyall"]');
      break;
    case "f":
      done = inView && click('[data-test="action-forward"]');
      break;
    case "s":
      if (inView) done = click('[data-test="action-flag"]');
      else if (inList) {
        const row = cursorRow();
        submitList(row && row.classList.contains("flagged") ? "unflag" : "flag", row);
      }
      break;
    case "#":
      if (inView) done = click('[data-test="action-delete"]');
      else if (inList) submitList("delete", cursorRow());
      break;
    default:
      done = false;
  }
  if (done) event.preventDefault();
}

// ---- live updates -----------------------------------------------------------------

let pending = false;

async function refreshList() {
  const form = document.getElementById("list-form");
  if (form && form.querySelector('input[name="uid"]:checked')) {
    pending = true; // do not pull the rows away from under a selection
    return;
  }
  pending = false;
  const response = await fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html" } });
  if (!response.ok || response.redirected) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const selector of ["#message-list", "#sidebar .folders"]) {
    const fresh = page.querySelector(selector);
    const stale = document.querySelector(selector);
    if (fresh && stale) stale.replaceWith(document.adoptNode(fresh));
  }
  const keep = cursor;
  cursor = -1;
  if (keep >= 0) setCursor(keep);
  rememberList();
  wireRows();
  wireFolders();
}

function live() {
  const list = document.getElementById("message-list");
  if (!list || !list.dataset.live) return;
  if ("EventSource" in window) {
    const source = new EventSource(list.dataset.live);
    source.addEventListener("change", () => { refreshList(); });
    window.addEventListener("pagehide", () => source.close());
    return;
  }
  let version = null;
  setInterval(async () => {
    const response = await fetch(list.dataset.poll, { credentials: "same-origin" });
    if (!response.ok) return;
    const body = await response.json();
    if (version !== null && body.version !== version) refreshList();
    version = body.version;
  }, 30000);
}

// ---- drag a row onto a folder -----------------------------------------------------

function wireRows() {
  for (const row of rows()) {
    if (row.dataset.wired) continue;
    row.dataset.wired = "1";
    row.addEventListener("dragstart", (event) => {
      const selected = Array.from(document.querySelectorAll('#list-form input[name="uid"]:checked')).map((b) => b.value);
      const uids = selected.includes(row.dataset.uid) ? selected : [row.dataset.uid];
      event.dataTransfer.setData("application/x-mailward-move", JSON.stringify({ folder: row.dataset.folder, uids }));
      event.dataTransfer.effectAllowed = "move";
      row.classList.add("dragging");
    });
    row.addEventListener("dragend", () => row.classList.remove("dragging"));
  }
  const all = document.querySelector('#message-list [data-action="select-all"]');
  if (all && !all.dataset.wired) {
    all.dataset.wired = "1";
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('#list-form input[name="uid"]')) box.checked = all.checked;
    });
  }
}

function wireFolders() {
  for (const link of document.querySelectorAll("#sidebar [data-drop]")) {
    if (link.dataset.wired) continue;
    link.dataset.wired = "1";
    link.addEventListener("dragover", (event) => {
      if (!event.dataTransfer.types.includes("application/x-mailward-move")) return;
      event.preventDefault();
      link.classList.add("drop-target");
    });
    link.addEventListener("dragleave", () => link.classList.remove("drop-target"));
    link.addEventListener("drop", async (event) => {
      event.preventDefault();
      link.classList.remove("drop-target");
      const data = JSON.parse(event.dataTransfer.getData("application/x-mailward-move") || "null");
      if (!data || data.folder === link.dataset.drop) return;
      const body = new URLSearchParams({ _csrf_token: csrfToken(), f: data.folder, action: "move",
        target: link.dataset.drop, back: location.pathname + location.search });
      for (const uid of data.uids) body.append("uid", uid);
      await fetch("/mail/actions", { method: "POST", body, credentials: "same-origin",
        headers: { "x-csrftoken": csrfToken() } });
      for (const box of document.querySelectorAll('#list-form input[name="uid"]:checked')) box.checked = false;
      refreshList();
    });
  }
}

// ---- start ------------------------------------------------------------------------

function start() {
  document.addEventListener("keydown", onKey);
  for (const button of document.querySelectorAll('[data-action="help"]')) button.addEventListener("click", () => toggleHelp());
  for (const button of document.querySelectorAll('[data-action="close-help"]')) button.addEventListener("click", () => toggleHelp(false));
  const help = document.getElementById("shortcut-help");
  if (help) help.addEventListener("click", (event) => { if (event.target === help) toggleHelp(false); });
  for (const button of document.querySelectorAll('[data-action="toggle-sidebar"]')) {
    button.addEventListener("click", () => document.documentElement.classList.toggle("sidebar-open"));
  }
  document.addEventListener("change", (event) => {
    if (pending && event.target instanceof HTMLInputElement && event.target.name === "uid"
        && !document.querySelector('#list-form input[name="uid"]:checked')) refreshList();
  });
  rememberList();
  wireRows();
  wireFolders();
  live();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
