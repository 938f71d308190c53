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
})();

// ICD-10-CM typeahead: picking a code fills the code and name of its diagnosis row and closes the list.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var pick = event.target.closest && event.target.closest(".icd10-pick");
    if (!pick) { return; }
    var row = pick.closest(".diagnosis-row");
    if (!row) { return; }
    var code = row.querySelector("input.icd10-code");
    var name = row.querySelector("input[id$='-name']");
    if (code) { code.value = pick.getAttribute("data-code"); }
    if (name) { name.value = pick.getAttribute("data-name"); }
    var list = row.querySelector(".icd10-results");
    if (list) { list.innerHTML = ""; }
    if (code) { code.focus(); }
  });

  // An open list closes with Escape in its code box, or when the person clicks elsewhere on the page.
  function closeLists(except) {
    var lists = document.querySelectorAll(".diagnosis-row .icd10-results");
    for (var i = 0; i < lists.length; i++) {
      if (lists[i] !== except && lists[i].firstChild) { lists[i].innerHTML = ""; }
    }
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.classList || !event.target.classList.contains("icd10-code")) { return; }
    var row = event.target.closest(".diagnosis-row");
    var list = row && row.querySelector(".icd10-results");
    if (list && list.firstChild) {
      list.innerHTML = "";
      event.preventDefault();
    }
  });
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(".diagnosis-row");
    closeLists(row ? row.querySelector(".icd10-results") : null);
  });
})();
