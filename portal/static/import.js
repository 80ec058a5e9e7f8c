// DATA-1: while the confirmed import runs (in that request, one transaction), say so and keep the buttons from
// being pressed twice. The server refuses a second confirmation anyway.
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  var confirm = document.getElementById("import-confirm");
  var progress = document.getElementById("import-progress");
  if (!form || !confirm || !progress) {
    return;
  }
  form.addEventListener("submit", function (event) {
    if (event.submitter !== confirm) {
      return;
    }
    var rows = parseInt(confirm.getAttribute("data-rows") || "0", 10);
    var seconds = Math.max(1, Math.ceil(rows / 1500));
    var text = document.getElementById("import-progress-text");
    text.textContent = "Importing " + rows.toLocaleString() + " customers in one step, about " + seconds +
      " s. Keep this page open: nothing is saved unless everything is.";
    progress.hidden = false;
    // Disable after the submission has captured the button's name and value.
    window.setTimeout(function () {
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
    }, 0);
    var bar = progress.querySelector("progress");
    var started = Date.now();
    bar.max = 100;
    window.setInterval(function () {
      // Elapsed time against the estimate; stops at 95 % until the server answers.
      var done = Math.min(95, Math.round((Date.now() - started) / (seconds * 10)));
      bar.value = done;
    }, 250);
  });
}());
