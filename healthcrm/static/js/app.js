// HealthCRM front-end glue. No inline scripts anywhere: the CSP forbids them.
(function () {
  "use strict";

  // htmx sends the CSRF token in a header on every request it makes.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      event.detail.headers["X-CSRFToken"] = meta.getAttribute("content");
    }
  });

  // A session that ended while the page was open: go to the sign-in page instead of failing quietly.
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
  });

  // <button data-confirm="..."> asks before submitting its form.
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var question = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <form data-disable-on-submit>: its submit buttons are disabled once it is sent, so a second click cannot
  // send it again (the server refuses a repeat anyway). Disabled after the form data is taken, so a named
  // submitter still counts; enabled again when the page comes back from the browser's history.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute("data-disable-on-submit")) { return; }
    window.setTimeout(function () {
      var buttons = form.querySelectorAll("button[type='submit'], input[type='submit']");
      for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
      form.setAttribute("aria-busy", "true");
    }, 0);
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    var forms = document.querySelectorAll("form[data-disable-on-submit]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].removeAttribute("aria-busy");
      var buttons = forms[i].querySelectorAll("button[type='submit'], input[type='submit']");
      for (var j = 0; j < buttons.length; j++) { buttons[j].disabled = false; }
    }
  });

  // The staff bar's phone menu: a real button (aria-expanded) that folds the sections and the account away
  // on narrow screens. Without this script there is no button and everything stays listed. Escape closes
  // the menu, or an open Admin group, and gives the focus back to what opened it.
  function setUpNav(bar) {
    var toggle = bar.querySelector(".nav-toggle");
    if (!toggle) { return; }
    toggle.hidden = false;
    bar.classList.add("nav-ready");
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      bar.classList.toggle("menu-open", open);
    });
    bar.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") { return; }
      var group = bar.querySelector("details[data-nav-group][open]");
      if (group) {
        group.open = false;
        group.querySelector("summary").focus();
      } else if (toggle.getAttribute("aria-expanded") === "true") {
        toggle.click();
        toggle.focus();
      }
    });
  }
  // An open Admin group closes when a click lands outside it.
  document.addEventListener("click", function (event) {
    var groups = document.querySelectorAll("details[data-nav-group][open]");
    for (var i = 0; i < groups.length; i++) {
      if (!groups[i].contains(event.target)) { groups[i].open = false; }
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var bars = document.querySelectorAll("[data-nav]");
    for (var i = 0; i < bars.length; i++) { setUpNav(bars[i]); }
  });
})();
