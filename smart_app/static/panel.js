// Staff panel: confirmation dialogs for actions, and no double submission of an action.
"use strict";
document.addEventListener("click", function (event) {
  var target = event.target;
  if (!(target instanceof HTMLElement)) { return; }
  var opener = target.closest("[data-open]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-open"));
    if (dialog instanceof HTMLDialogElement) { dialog.showModal(); }
    return;
  }
  var closer = target.closest("[data-close]");
  if (closer) {
    var open = closer.closest("dialog");
    if (open instanceof HTMLDialogElement) { open.close(); }
  }
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) { return; }
  if (form.dataset.submitted === "yes") { event.preventDefault(); return; }
  form.dataset.submitted = "yes";
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = true; });
  }, 0);
});
