// Staff panel: prevent double submission of an action while its request is in flight.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) { return; }
  if (form.dataset.submitted === "yes") { event.preventDefault(); return; }
  form.dataset.submitted = "yes";
  window.setTimeout(function () {
    form.querySelectorAll("button").forEach(function (button) { button.disabled = true; });
  }, 0);
});
