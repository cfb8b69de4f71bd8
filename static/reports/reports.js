// The reports page: quick date ranges and a tooltip that follows the pointer over chart
// marks (their <title> is the text). The charts themselves are server-rendered SVG.
(function () {
  "use strict";

  function isoDate(d) {
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  function quickRanges(form) {
    form.querySelectorAll("[data-days]").forEach(function (button) {
      button.addEventListener("click", function () {
        var end = form.elements.end.value ? new Date(form.elements.end.value + "T12:00:00") : new Date();
        var start = new Date(end);
        start.setDate(end.getDate() - Number(button.dataset.days) + 1);
        form.elements.start.value = isoDate(start);
        form.elements.end.value = isoDate(end);
        form.submit();
      });
    });
  }

  function tooltips(tip) {
    var main = document.querySelector(".reports");
    main.addEventListener("mousemove", function (event) {
      var mark = event.target.closest && event.target.closest(".chart rect, .chart circle, .chart path, .chart line, .chart g");
      var title = null;
      while (mark && !title) {
        title = Array.prototype.find.call(mark.children || [], function (c) { return c.tagName === "title"; });
        mark = title ? mark : mark.parentElement && mark.parentElement.closest(".chart g");
      }
      if (!title) { tip.hidden = true; return; }
      tip.textContent = title.textContent;
      tip.hidden = false;
      tip.style.left = (event.clientX + 12) + "px";
      tip.style.top = (event.clientY + 12) + "px";
    });
    main.addEventListener("mouseleave", function () { tip.hidden = true; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("report-filter");
    if (form) quickRanges(form);
    var tip = document.getElementById("rp-tooltip");
    if (tip) tooltips(tip);
    document.body.dataset.reportsReady = "1";
  });
})();
