// Copy buttons of a newly made share link: <button data-copy-from="input id" data-copy-status="status id">.
// The buttons start hidden and show once this runs, so a page without JavaScript offers only the text box.
// Event delegation, so buttons that htmx swaps in later work too. No inline script: the CSP forbids it.
(function () {
  "use strict";

  function reveal(root) {
    var buttons = (root || document).querySelectorAll("button[data-copy-from][hidden]");
    for (var i = 0; i < buttons.length; i++) { buttons[i].hidden = false; }
  }

  function say(button, text) {
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (status) { status.textContent = text; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy-from]") : null;
    if (!button) { return; }
    var input = document.getElementById(button.getAttribute("data-copy-from"));
    if (!input) { return; }
    var done = function () {
      button.textContent = "Copied";
      say(button, "The link is on your clipboard.");
    };
    var manual = function () {
      input.focus();
      input.select();
      say(button, "Copying is not available here: the link is selected, copy it yourself.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, manual);
    } else {
      manual();
    }
  });

  // A click in the link box selects all of it.
  document.addEventListener("focusin", function (event) {
    if (event.target.classList && event.target.classList.contains("share-url")) { event.target.select(); }
  });

  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  document.addEventListener("htmx:afterSettle", function (event) { reveal(event.target); });
  if (document.readyState !== "loading") { reveal(document); }
})();
