// The diagnosis code box of the record form as a WAI-ARIA 1.2 combobox with a listbox popup (list
// autocomplete, manual selection). htmx fetches the matching codes into the row's listbox (data-hx-get on the
// box); this file opens and closes the list and moves through it. Focus stays in the text box: the option
// the arrow keys are on is named by aria-activedescendant and marked aria-selected. Without JavaScript the
// box is a plain text box and the typed code is checked when the record is saved.
(function () {
  "use strict";

  var COMBOBOX = "input.icd10-code[role='combobox']";

  function listboxOf(input) {
    return document.getElementById(input.getAttribute("aria-controls"));
  }

  function comboboxOf(listbox) {
    return document.querySelector(COMBOBOX + "[aria-controls='" + listbox.id + "']");
  }

  function optionsOf(listbox) {
    return listbox ? Array.prototype.slice.call(listbox.querySelectorAll("[role='option']")) : [];
  }

  function isOpen(input) {
    return input.getAttribute("aria-expanded") === "true";
  }

  function activeOption(input) {
    var id = input.getAttribute("aria-activedescendant");
    return id ? document.getElementById(id) : null;
  }

  function setActive(input, option) {
    optionsOf(listboxOf(input)).forEach(function (each) {
      each.setAttribute("aria-selected", each === option ? "true" : "false");
    });
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function open(input) {
    var listbox = listboxOf(input);
    if (!listbox || optionsOf(listbox).length === 0) { return false; }
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    return true;
  }

  function close(input) {
    var listbox = listboxOf(input);
    setActive(input, null);
    if (listbox) { listbox.hidden = true; }
    input.setAttribute("aria-expanded", "false");
  }

  // The row's name box shows the picked code's name; the server fills it from the code when it saves.
  function nameBoxOf(input) {
    return document.getElementById(input.id.replace(/-code$/, "-name"));
  }

  function pick(input, option) {
    input.value = option.getAttribute("data-code");
    input.setAttribute("data-picked", input.value);
    var name = nameBoxOf(input);
    if (name) { name.value = option.getAttribute("data-name"); }
    close(input);
    var row = input.closest(".diagnosis-row");
    var status = row && row.querySelector(".icd10-status");
    if (status) { status.textContent = ""; }
    input.focus();
  }

  // Down from the last option goes to the first, up from the first to the last; a closed list opens.
  function move(input, step) {
    var options = optionsOf(listboxOf(input));
    if (options.length === 0) { return; }
    var index = isOpen(input) ? options.indexOf(activeOption(input)) : -1;
    open(input);
    if (index === -1) {
      index = step > 0 ? 0 : options.length - 1;
    } else {
      index = (index + step + options.length) % options.length;
    }
    setActive(input, options[index]);
  }

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches(COMBOBOX) || event.isComposing) { return; }
    switch (event.key) {
      case "ArrowDown":
        if (event.altKey) { open(input); } else { move(input, 1); }
        event.preventDefault();
        break;
      case "ArrowUp":
        move(input, -1);
        event.preventDefault();
        break;
      case "Enter":
        // With the list open, Enter picks (or just closes the list); it never submits the form then.
        if (isOpen(input)) {
          var option = activeOption(input);
          if (option) { pick(input, option); } else { close(input); }
          event.preventDefault();
        }
        break;
      case "Escape":
        if (isOpen(input)) {
          close(input);
          event.preventDefault();
        }
        break;
      case "ArrowLeft":
      case "ArrowRight":
      case "Home":
      case "End":
        setActive(input, null);
        break;
    }
  });

  // Typing changes the code: the name no longer belongs to it, and the list will be replaced.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches(COMBOBOX)) { return; }
    input.removeAttribute("data-picked");
    setActive(input, null);
    var name = nameBoxOf(input);
    if (name) { name.value = ""; }
  });

  // New options arrived: open the list if the person is still in the box and has not picked a code since
  // the search was sent (a search can still be on its way after a quick pick); else keep it closed.
  document.addEventListener("htmx:afterSwap", function (event) {
    var listbox = event.detail.target;
    if (!listbox || !listbox.matches || !listbox.matches("ul.icd10-listbox")) { return; }
    var input = comboboxOf(listbox);
    if (!input) { return; }
    setActive(input, null);
    if (document.activeElement !== input || input.hasAttribute("data-picked") || !open(input)) { close(input); }
  });

  // Pressing on an option must not take the focus from the text box (which would close the list).
  document.addEventListener("mousedown", function (event) {
    if (event.target.closest && event.target.closest("ul.icd10-listbox")) { event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest("ul.icd10-listbox [role='option']");
    if (!option) { return; }
    var input = comboboxOf(option.closest("ul.icd10-listbox"));
    if (input) { pick(input, option); }
  });

  // Leaving the box (Tab, a click elsewhere) closes its list without picking.
  document.addEventListener("focusout", function (event) {
    var input = event.target;
    if (input.matches && input.matches(COMBOBOX) && isOpen(input)) { close(input); }
  });
})();
