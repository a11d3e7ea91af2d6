// Filters the rows table by status and by words typed in the search box.
// The filter lives in the URL fragment (#status=failed&q=web) too, so a link
// can open the report already filtered.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("#rows tbody tr"));
  var texts = rows.map(function (tr) { return tr.textContent.toLowerCase(); });
  var status = document.getElementById("status");
  var query = document.getElementById("q");
  var shown = document.getElementById("shown");
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".counts button"));

  function apply(keepInURL) {
    var want = status.value;
    var words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
    var n = 0;
    rows.forEach(function (tr, i) {
      var match = (!want || tr.getAttribute("data-status") === want) &&
        words.every(function (w) { return texts[i].indexOf(w) >= 0; });
      tr.hidden = !match;
      if (match) { n++; }
    });
    shown.textContent = n + " of " + rows.length + " rows";
    buttons.forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-status") === want); });
    if (keepInURL) {
      var p = new URLSearchParams();
      if (want) { p.set("status", want); }
      if (query.value) { p.set("q", query.value); }
      var s = p.toString();
      try {
        history.replaceState(null, "", s ? "#" + s : location.pathname + location.search);
      } catch (e) {
        // Some browsers refuse replaceState on file: pages; the filter still works.
      }
    }
  }

  function fromURL() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    status.value = p.get("status") || "";
    if (status.selectedIndex < 0) { status.value = ""; }
    query.value = p.get("q") || "";
    apply(false);
  }

  status.addEventListener("change", function () { apply(true); });
  query.addEventListener("input", function () { apply(true); });
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { status.value = b.getAttribute("data-status"); apply(true); });
  });
  window.addEventListener("hashchange", fromURL);
  fromURL();
})();
