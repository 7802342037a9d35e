// mailward webmail: the compose page's scripts. The form works without them (plain text,
// files sent with the form); with them: a small HTML editor (when the settings ask for
// it), autosave every few seconds, uploads with a progress bar, address suggestions from
// the contacts, and the browser's time zone for "send later".
// Every request carries the form's CSRF token (its hidden field, also as x-csrftoken).

const AUTOSAVE_MS = 5000;
const form = document.getElementById("compose");

function csrfToken(f) {
  const field = f.querySelector('input[name="_csrf_token"]');
  return field ? field.value : "";
}

// -- the HTML editor --------------------------------------------------------------------

function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML.replace(/\n/g, "<br>");
}

function setupEditor(f) {
  const box = f.querySelector("[data-html-editor]");
  const source = f.querySelector("[data-html-source]");
  if (!box || !source) return null;
  const editor = box.querySelector("[contenteditable]");
  const body = f.querySelector('textarea[name="body"]');
  const plain = f.querySelector("[data-plain-body]");
  // The source is already sanitised by the server; it is parsed inertly first (a
  // template's content runs nothing) and then moved into the editor.
  const holder = document.createElement("template");
  holder.innerHTML = source.value.trim() || escapeHtml(body.value);
  editor.replaceChildren(holder.content);
  box.hidden = false;
  plain.hidden = true;
  plain.style.display = "none"; // a layout rule may give labels a display of their own
  f.querySelector('input[name="html_mode"]').value = "1";
  for (const button of box.querySelectorAll("button[data-cmd]")) {
    button.addEventListener("mousedown", (event) => event.preventDefault()); // keep the selection
    button.addEventListener("click", () => {
      const cmd = button.dataset.cmd;
      editor.focus();
      if (cmd === "createLink") {
        const url = window.prompt("Link to (https://…)", "https://");
        if (url && /^(https?:|mailto:)/i.test(url.trim())) document.execCommand("createLink", false, url.trim());
      } else if (cmd === "quote") {
        document.execCommand("formatBlock", false, "blockquote");
      } else {
        document.execCommand(cmd, false, null);
      }
      editor.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  return () => {
    source.value = editor.innerHTML;
    body.value = editor.innerText;
  };
}

// -- one request at a time (autosave, uploads, then the final submit) --------------------

let queue = Promise.resolve();
function enqueue(job) {
  const run = queue.then(job, job);
  queue = run.catch(() => {});
  return run;
}

function fields(f, { files, drops }) {
  const data = new FormData(f);
  if (!files) data.delete("files");
  if (!drops) data.delete("drop");
  data.delete("submit");
  return data;
}

function setDraft(f, uid) {
  if (uid) f.querySelector('input[name="draft_uid"]').value = String(uid);
}

// -- autosave --------------------------------------------------------------------------

function setupAutosave(f, sync) {
  const status = f.querySelector('[data-test="draft-saved"]');
  let dirty = false;
  f.addEventListener("input", (event) => {
    if (event.target && event.target.name !== "files") dirty = true;
  });
  const save = () => enqueue(async () => {
    if (!dirty) return;
    dirty = false;
    if (sync) sync();
    try {
      const response = await fetch("/mail/compose/autosave", {
        method: "POST", body: fields(f, { files: false, drops: false }),
        headers: { "x-csrftoken": csrfToken(f), accept: "application/json" },
        credentials: "same-origin",
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
      setDraft(f, answer.draft_uid);
      status.textContent = `Draft saved ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      dirty = true;
      status.textContent = `Draft not saved: ${error.message}`;
    }
  });
  window.setInterval(save, AUTOSAVE_MS);
  return save;
}

// -- uploads with progress ---------------------------------------------------------------

function kib(size) {
  return `${(size / 1024).toFixed(1)} KiB`;
}

function showAttachments(f, attachments) {
  const list = f.querySelector("[data-attachments]");
  list.replaceChildren();
  for (const a of attachments) {
    const item = document.createElement("li");
    item.dataset.test = "attachment-item";
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = ` (${kib(a.size)})`;
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "drop";
    box.value = a.part;
    label.append(box, " remove");
    item.append(a.filename, size, label);
    list.append(item);
  }
}

function setupUploads(f, sync) {
  const input = f.querySelector('input[name="files"]');
  const bar = f.querySelector('[data-test="upload-progress"]');
  const status = f.querySelector("[data-upload-status]");
  const limit = Number(f.dataset.maxUpload || 0);
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    const total = [...input.files].reduce((sum, file) => sum + file.size, 0);
    if (limit && total > limit) {
      status.textContent = `Too large: at most ${(limit / 1048576).toFixed(1)} MiB in all.`;
      input.value = "";
      return;
    }
    if (sync) sync();
    const data = fields(f, { files: true, drops: true });
    input.value = ""; // sent now; the form must not send the files again
    enqueue(() => new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/mail/compose/upload");
      xhr.setRequestHeader("x-csrftoken", csrfToken(f));
      xhr.setRequestHeader("accept", "application/json");
      xhr.responseType = "json";
      bar.hidden = false;
      bar.value = 0;
      status.textContent = "Uploading…";
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) bar.value = Math.round((100 * event.loaded) / event.total);
      };
      xhr.onload = () => {
        const answer = xhr.response || {};
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 100;
          setDraft(f, answer.draft_uid);
          showAttachments(f, answer.attachments || []);
          status.textContent = "Attached; the draft is saved.";
        } else {
          bar.hidden = true;
          status.textContent = `Not attached: ${answer.error || xhr.statusText || xhr.status}`;
        }
        resolve();
      };
      xhr.onerror = () => {
        status.textContent = "Not attached: the upload failed.";
        bar.hidden = true;
        resolve();
      };
      xhr.send(data);
    }));
  });
}

// -- address suggestions -----------------------------------------------------------------

function setupSuggestions(f) {
  for (const input of f.querySelectorAll("input[data-suggest]")) {
    const list = document.getElementById(input.getAttribute("list"));
    let timer = 0;
    let asked = "";
    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(async () => {
        const value = input.value;
        const cut = value.lastIndexOf(",") + 1;
        const prefix = value.slice(0, cut) + (cut ? " " : "");
        const word = value.slice(cut).trim();
        if (word.length < 1 || word === asked) return;
        asked = word;
        try {
          const response = await fetch(`/mail/contacts/suggest?q=${encodeURIComponent(word)}`,
                                       { credentials: "same-origin", headers: { accept: "application/json" } });
          if (!response.ok) return;
          const found = await response.json();
          list.replaceChildren(...found.map((s) => {
            const option = document.createElement("option");
            option.value = `${prefix.trimStart()}${s.label}`;
            option.label = s.label;
            return option;
          }));
        } catch {
          // suggestions are a convenience: typing goes on without them
        }
      }, 150);
    });
  }
}

// -- "Undo" after sending: a countdown, then the button goes ------------------------------

function setupUndo(undo) {
  const until = Date.parse(undo.dataset.undoUntil);
  const left = undo.querySelector(".undo-countdown");
  const tick = () => {
    const seconds = Math.ceil((until - Date.now()) / 1000);
    if (!(seconds > 0)) {
      undo.hidden = true;
      return;
    }
    left.textContent = `(${seconds} s)`;
    window.setTimeout(tick, 250);
  };
  tick();
}

// -- the form ----------------------------------------------------------------------------

function setup(f) {
  f.querySelector('input[name="tz"]').value = String(-new Date().getTimezoneOffset());
  const sync = setupEditor(f);
  const save = setupAutosave(f, sync);
  setupUploads(f, sync);
  setupSuggestions(f);
  // Enter in a one-line field must not send the mail (the first button is Send).
  f.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target instanceof HTMLInputElement) event.preventDefault();
  });
  let submitting = false;
  f.addEventListener("submit", (event) => {
    if (submitting) return;
    event.preventDefault();
    const button = event.submitter;
    // wait for a running autosave or upload (it may change the draft's uid), then send
    enqueue(() => new Promise((resolve) => {
      // a task later: a form cannot be submitted again while its submit event runs
      window.setTimeout(() => {
        if (sync) sync();
        submitting = true;
        f.requestSubmit(button);
        resolve();
      }, 0);
    }));
  });
  void save;
  f.dataset.ready = "1"; // its handlers are in place (a test waits for this)
}

if (form) setup(form);
for (const undo of document.querySelectorAll("form[data-undo-until]")) setupUndo(undo);
