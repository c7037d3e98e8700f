// The Logs page's live tail: follows the REST API's server-sent events for the page's query
// (the section's data-tail-url; the console's session authenticates it) and puts each new
// line at the top of the tail table, keeping at most MAX_ROWS rows in the page.
(function () {
  "use strict";
  var MAX_ROWS = 500;
  var source = null;
  var received = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function row(entry) {
    var tr = document.createElement("tr");
    var when = el("time", "", entry.time.slice(0, 23).replace("T", " ") + " UTC");
    when.setAttribute("datetime", entry.time.slice(0, 23) + "Z");
    when.setAttribute("title", when.textContent);
    when.setAttribute("data-ms", "");
    var time = el("td", "time"); time.appendChild(when); tr.appendChild(time);
    var level = entry.labels.level || entry.metadata.level || "";
    var levelCell = el("td");
    if (level) levelCell.appendChild(el("span", "badge level", level)); else levelCell.textContent = "\u2013";
    tr.appendChild(levelCell);
    var labels = el("span", "labels");
    Object.keys(entry.labels).sort().forEach(function (name) {
      labels.appendChild(el("code", "", name + '="' + entry.labels[name] + '"'));
      labels.appendChild(document.createTextNode(" "));
    });
    var stream = el("td"); stream.appendChild(labels); tr.appendChild(stream);
    var line = el("td", "line"); line.appendChild(el("code", "", entry.line)); tr.appendChild(line);
    return tr;
  }

  function parts(button) {
    var section = button.closest("[data-tail-url]");
    return {
      section: section,
      status: section.querySelector("[data-tail-status]"),
      table: section.querySelector("table"),
    };
  }

  function stop(button, message) {
    if (source) source.close();
    source = null;
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Start live tail";
    if (message) parts(button).status.textContent = message;
  }

  function start(button) {
    var p = parts(button);
    var body = p.table.tBodies[0];
    received = 0;
    source = new EventSource(p.section.getAttribute("data-tail-url"));
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop live tail";
    p.status.textContent = "Connecting\u2026";
    source.addEventListener("open", function (e) {
      if (e.data !== undefined) p.status.textContent = "Following new lines\u2026";
    });
    source.addEventListener("line", function (e) {
      var entry = JSON.parse(e.data);
      body.insertBefore(row(entry), body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
      p.table.hidden = false;
      received += 1;
      p.status.textContent = "Following: " + received + " new line" + (received === 1 ? "" : "s") +
        (received > MAX_ROWS ? " (the newest " + MAX_ROWS + " kept)" : "") + ".";
      if (window.consoleLocalTimes) window.consoleLocalTimes(body.firstChild);
    });
    source.addEventListener("end", function () {
      stop(button, "The tail reached its time limit after " + received + " new lines; start it again to go on.");
    });
    source.addEventListener("error", function (e) {
      // The server's own "error" event carries data (a refused query); a lost connection
      // does not. Either way stop: reconnecting would skip what arrived in between.
      var detail = e.data ? JSON.parse(e.data).detail : "the connection was lost";
      stop(button, "The tail stopped: " + detail + ".");
    });
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-tail-toggle]");
    if (!button) return;
    if (source) stop(button, "Stopped after " + received + " new line" + (received === 1 ? "" : "s") + ".");
    else start(button);
  });
  // A new search replaces the results, the tail's section with them.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (source && target && target.querySelector && target.querySelector("[data-tail-url]")) {
      source.close();
      source = null;
    }
  });
})();
