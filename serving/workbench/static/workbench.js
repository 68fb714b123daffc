// recoup workbench: progressive enhancement only (every page works without it).
// - the review form shows the fields that apply to the chosen status;
// - the worklist's select boxes apply the filter when changed.
(function () {
  "use strict";
  function syncReview() {
    var status = document.getElementById("status");
    if (!status) return;
    var labels = document.querySelectorAll("form.review label[data-for]");
    for (var i = 0; i < labels.length; i++) {
      var wanted = labels[i].getAttribute("data-for").split(" ");
      labels[i].classList.toggle("hidden", wanted.indexOf(status.value) < 0);
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var status = document.getElementById("status");
    if (status) {
      status.addEventListener("change", syncReview);
      syncReview();
    }
    var filters = document.getElementById("filters");
    if (filters) {
      var selects = filters.querySelectorAll("select");
      for (var i = 0; i < selects.length; i++) {
        selects[i].addEventListener("change", function () { filters.submit(); });
      }
    }
  });
})();
