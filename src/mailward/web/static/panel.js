// mailward panel: the few things that need a script. Every page works without it.
// "Check all" on Email Accounts checks or unchecks every address of the page.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("check-all");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('#addresses input[name="email"][type="checkbox"]')) {
      box.checked = all.checked;
    }
  });
});
