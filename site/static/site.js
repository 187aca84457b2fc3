/* collapsebench site: progressive enhancement only. Without JavaScript every page shows all of its content in
   its static order, and the tau switch, the "all columns" and "all printed metrics" switches work with CSS alone.
   This file adds column sorting (within each subject count), the finder pages' scene filter and orders, "copy"
   buttons for the BibTeX boxes, and keeps tau, the sort and the filters in the URL so a view can be shared.
   Nothing here loads anything. */
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var each = function (list, action) { Array.prototype.forEach.call(list, action); };

  /* Mirror a choice in the URL (no reload, no history entry); an empty value removes it. */
  function remember(name, value) {
    if (value) { params.set(name, value); } else { params.delete(name); }
    var query = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash);
  }

  /* Compare two data-sort values: numbers as numbers, text as text; an empty value sorts last either way. */
  function compare(x, y, ascending) {
    if (x === y) { return 0; }
    if (x === "" || x === undefined) { return 1; }
    if (y === "" || y === undefined) { return -1; }
    var nx = Number(x), ny = Number(y);
    var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return ascending ? order : -order;
  }

  function setupTau() {
    each(document.querySelectorAll('input[name="tau"]'), function (radio) {
      if (radio.value === params.get("tau")) { radio.checked = true; }
      radio.addEventListener("change", function () { remember("tau", radio.value); });
    });
  }

  /* Sort every <tbody> of `table` by the column of `th`; group heading rows stay on top of their group. */
  function sortTable(table, th, ascending) {
    var index = Array.prototype.indexOf.call(th.parentNode.cells, th);
    each(th.parentNode.cells, function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    each(table.tBodies, function (body) {
      var rows = Array.prototype.filter.call(body.rows, function (row) { return !row.classList.contains("group"); });
      rows.sort(function (a, b) {
        return compare(a.cells[index].getAttribute("data-sort"), b.cells[index].getAttribute("data-sort"), ascending);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  }

  function setupSorting() {
    var wanted = (params.get("sort") || "").split(":");  /* table id : column key : asc | desc */
    each(document.querySelectorAll("table.sortable"), function (table) {
      each(table.tHead.rows[0].cells, function (th) {
        var button = document.createElement("button"), label = th.querySelector(".label");
        button.type = "button";
        if (label) {  /* only the label sorts; the definition link next to it stays a link */
          th.insertBefore(button, label);
          button.appendChild(label);
        } else {
          while (th.firstChild) { button.appendChild(th.firstChild); }
          th.appendChild(button);
        }
        button.addEventListener("click", function () {
          var ascending = th.getAttribute("aria-sort") !== "ascending";
          sortTable(table, th, ascending);
          remember("sort", [table.id, th.getAttribute("data-key"), ascending ? "asc" : "desc"].join(":"));
        });
        if (wanted[0] === table.id && wanted[1] === th.getAttribute("data-key")) {
          sortTable(table, th, wanted[2] !== "desc");
        }
      });
    });
  }

  /* A finder page (one model, one N): filter by scene; order by a per-image number (worst first) when the page
     has scores, else prompt order only (the score orders are disabled in the page itself). */
  function setupFinder() {
    var form = document.getElementById("finder-controls"), list = document.getElementById("finder-list");
    if (!form || !list) { return; }
    var items = Array.prototype.slice.call(list.children);
    var orders = {dinov2: ["dinov2", true], collapsed: ["collapsed", false], matched: ["matched", false],
                  prompt: ["order", true]};
    var filters = ["scene"], fallback = list.getAttribute("data-scored") ? "dinov2" : "prompt";
    function apply() {
      var order = orders[form.elements.order.value] || orders[fallback], shown = 0;
      items.sort(function (a, b) {
        return compare(a.getAttribute("data-" + order[0]), b.getAttribute("data-" + order[0]), order[1]) ||
          compare(a.getAttribute("data-order"), b.getAttribute("data-order"), true);
      });
      items.forEach(function (item) {
        var visible = filters.every(function (name) {
          var value = form.elements[name].value;
          return !value || item.getAttribute("data-" + name) === value;
        });
        item.hidden = !visible;
        shown += visible ? 1 : 0;
        list.appendChild(item);
      });
      document.getElementById("finder-count").textContent = shown + " of " + items.length + " images";
      filters.forEach(function (name) { remember(name, form.elements[name].value); });
      remember("order", form.elements.order.value === fallback ? "" : form.elements.order.value);
    }
    filters.concat(["order"]).forEach(function (name) {
      var select = form.elements[name], wanted = params.get(name);
      if (Array.prototype.some.call(select.options, function (option) {
        return option.value === wanted && !option.disabled; })) {
        select.value = wanted;
      }
      select.addEventListener("change", apply);
    });
    form.hidden = false;
    apply();
  }

  function selectText(node) {
    var range = document.createRange(), selection = window.getSelection();
    range.selectNodeContents(node);
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setupCopy() {
    each(document.querySelectorAll("pre.bibtex"), function (pre) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy BibTeX";
      button.addEventListener("click", function () {
        var copied = function () { button.textContent = "Copied"; };
        if (navigator.clipboard) {
          navigator.clipboard.writeText(pre.textContent).then(copied, function () { selectText(pre); });
        } else {
          selectText(pre);
        }
      });
      pre.parentNode.insertBefore(button, pre.nextSibling);
    });
  }

  setupTau();
  setupSorting();
  setupFinder();
  setupCopy();
}());
