// Small progressive enhancements; every page works without this file.
"use strict";

document.addEventListener("submit", (event) => {
  // Forms whose action cannot be undone ask first.
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("change", (event) => {
  // Filter selects apply as soon as one is picked.
  const field = event.target;
  if (field instanceof HTMLSelectElement && field.form && field.form.dataset.autoSubmit !== undefined) {
    field.form.requestSubmit();
  }
});
