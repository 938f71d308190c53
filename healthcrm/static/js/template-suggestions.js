// What a record template filled in is marked "Suggested by the template" (records/edit.html). Once the
// clinician edits a marked text field, it is theirs: the mark goes. A suggested diagnosis row keeps its mark
// until its "Confirm" box is ticked or its code is changed (then the row is the clinician's own diagnosis).
// Without JavaScript the marks stay until the next save, which recomputes them.
(function () {
  "use strict";

  function unmarkField(wrapper) {
    wrapper.classList.remove("suggested");
    var control = wrapper.querySelector("input, textarea, select");
    var hint = control && document.getElementById(control.id + "-hint");
    if (hint) {
      hint.remove();
      control.removeAttribute("aria-describedby");
    }
  }

  function unmarkRow(row, ownCode) {
    row.classList.remove("suggested");
    var note = row.querySelector(".suggestion-row-note");
    if (note) note.hidden = true;
    if (ownCode) {
      var flag = row.querySelector("input[type='hidden'][name$='-suggested']");
      if (flag) flag.value = "";
      var confirm = row.querySelector(".dx-confirm");
      if (confirm) confirm.remove();
    }
  }

  document.addEventListener("input", function (event) {
    var target = event.target;
    var wrapper = target.closest(".field.suggested");
    if (wrapper && !target.closest(".diagnosis-row")) {
      unmarkField(wrapper);
      return;
    }
    var row = target.closest(".diagnosis-row.suggested");
    if (row && target.classList.contains("icd10-code")) unmarkRow(row, true);
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.name && /-confirmed$/.test(target.name)) {
      var row = target.closest(".diagnosis-row");
      if (!row) return;
      if (target.checked) {
        row.classList.remove("suggested");
        row.classList.add("confirmed");
      } else {
        row.classList.add("suggested");
        row.classList.remove("confirmed");
      }
    }
  });
})();
