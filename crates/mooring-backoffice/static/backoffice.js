// Mooring back office: the one script, served from this file (never
// inline). A button with data-confirm asks before its form is sent; with
// scripts off the form is sent as it is (the server checks everything).
"use strict";
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
