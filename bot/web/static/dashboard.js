/* The staff dashboard's charts (templates/pages/dashboard.html, bot/web/dashboard.py).
 *
 * Reads the figures ("dashboard-data") and the words ("dashboard-labels") the page carries
 * as JSON and draws each chart with ECharts (served from /static/vendor/echarts). A chart
 * with nothing to show gets an empty-state line instead of empty axes. Plain ES5: WeChat's
 * browser on older phones runs it. Money arrives in fen and is drawn in yuan.
 */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dashboard-data").textContent);
  var L = JSON.parse(document.getElementById("dashboard-labels").textContent);
  var now = data.current;
  var before = data.previous;
  var charts = [];
  var GREEN = "#07c160", BLUE = "#576b95", ORANGE = "#fa9d3b", GREY = "#b5b5b5", RED = "#e64340";

  function yuan(fen) { return Math.round(fen) / 100; }
  function yuans(list) { return list.map(yuan); }
  function shortDay(iso) { return iso.slice(5); }
  function sum(list) { return list.reduce(function (a, b) { return a + b; }, 0); }
  function anyOf(lists) {
    for (var i = 0; i < lists.length; i++) { if (sum(lists[i]) > 0) return true; }
    return false;
  }

  function draw(id, hasData, option) {
    var el = document.getElementById(id);
    if (!el) return;
    if (!hasData) {
      el.className += " empty";
      el.textContent = L.empty;
      return;
    }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    option.animation = false;
    option.grid = option.grid || { left: 8, right: 16, top: 36, bottom: 8, containLabel: true };
    option.tooltip = option.tooltip || { trigger: "axis", confine: true };
    option.legend = option.legend || { top: 0, type: "scroll" };
    chart.setOption(option);
    charts.push(chart);
  }

  function line(name, values, color, dashed, extra) {
    var s = { name: name, type: "line", data: values, smooth: false, symbolSize: 4,
      itemStyle: { color: color }, lineStyle: { color: color, type: dashed ? "dashed" : "solid", width: dashed ? 1 : 2 } };
    for (var k in extra || {}) { s[k] = extra[k]; }
    return s;
  }

  var days = now.days.map(shortDay);
  var prev = " · " + L.previous;

  // visitors and paying customers per day, the previous period dashed beside them
  draw("chart-traffic", anyOf([now.visitors, now.payers, before.visitors, before.payers]), {
    xAxis: { type: "category", data: days, boundaryGap: false },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      line(L.visitors, now.visitors, BLUE, false),
      line(L.payers, now.payers, GREEN, false),
      line(L.visitors + prev, before.visitors, BLUE, true),
      line(L.payers + prev, before.payers, GREEN, true)
    ]
  });

  // revenue per day (bars), average order (line, right axis), refunds, the previous revenue dashed
  draw("chart-revenue", anyOf([now.revenue_fen, now.refunds_fen, before.revenue_fen]), {
    xAxis: { type: "category", data: days },
    yAxis: [{ type: "value" }, { type: "value", splitLine: { show: false } }],
    series: [
      { name: L.revenue, type: "bar", data: yuans(now.revenue_fen), itemStyle: { color: GREEN } },
      { name: L.refunds, type: "bar", data: yuans(now.refunds_fen), itemStyle: { color: RED } },
      line(L.average, yuans(now.average_fen), ORANGE, false, { yAxisIndex: 1 }),
      line(L.revenue + prev, yuans(before.revenue_fen), GREY, true)
    ]
  });

  // the funnel: customers at each step, this period and the previous one
  var steps = now.funnel.map(function (s) { return L.steps[s.step] || s.step; });
  function counts(f) { return f.funnel.map(function (s) { return s.customers; }); }
  draw("chart-funnel", anyOf([counts(now), counts(before)]), {
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: steps, inverse: true },
    series: [
      { name: L.current, type: "bar", data: counts(now), itemStyle: { color: GREEN }, label: { show: true, position: "right" } },
      { name: L.previous, type: "bar", data: counts(before), itemStyle: { color: GREY } }
    ]
  });

  // retention: a heatmap of cohorts (rows) by weeks after (columns), in percent
  var cohorts = now.retention;
  var weeks = cohorts.length ? cohorts[0].returned.length : 0;
  var weekNames = [];
  for (var w = 1; w <= weeks; w++) { weekNames.push(L.week_n.replace("{n}", w)); }
  var cells = [];
  cohorts.forEach(function (c, row) {
    c.returned.forEach(function (share, col) {
      cells.push([col, row, share === null ? "-" : Math.round(share * 1000) / 10]);
    });
  });
  draw("chart-retention", cohorts.length > 0, {
    tooltip: { trigger: "item", confine: true },
    legend: { show: false },
    grid: { left: 8, right: 8, top: 8, bottom: 48, containLabel: true },
    xAxis: { type: "category", data: weekNames, splitArea: { show: true } },
    yAxis: { type: "category", inverse: true, splitArea: { show: true },
      data: cohorts.map(function (c) { return shortDay(c.week) + " (" + c.customers + " " + L.cohort_size + ")"; }) },
    visualMap: { min: 0, max: 100, calculable: false, orient: "horizontal", left: "center", bottom: 0,
      itemHeight: 120, text: ["100%", "0%"], inRange: { color: ["#f0faf4", GREEN] } },
    series: [{ name: L.cohort, type: "heatmap", data: cells, label: { show: true, formatter: function (p) {
      return p.value[2] === "-" ? "" : p.value[2] + "%"; } } }]
  });

  // orders by province (the previous period's orders for the same provinces beside them)
  function byName(list, key, value) {
    var found = {};
    list.forEach(function (x) { found[x[key]] = x[value]; });
    return found;
  }
  var provinceNames = now.provinces.map(function (p) { return p.province || L.unknown_province; });
  var provinceBefore = byName(before.provinces, "province", "orders");
  draw("chart-provinces", now.provinces.length > 0, {
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: provinceNames, inverse: true },
    series: [
      { name: L.current, type: "bar", data: now.provinces.map(function (p) { return p.orders; }),
        itemStyle: { color: GREEN }, label: { show: true, position: "right" } },
      { name: L.previous, type: "bar", data: now.provinces.map(function (p) { return provinceBefore[p.province] || 0; }),
        itemStyle: { color: GREY } }
    ]
  });

  // top categories and products by revenue, the previous period's revenue of the same ones
  function ranked(id, list, nameOf, previousList) {
    var earlier = byName(previousList, "name", "revenue_fen");
    draw(id, list.length > 0, {
      xAxis: { type: "value" },
      yAxis: { type: "category", data: list.map(nameOf), inverse: true },
      series: [
        { name: L.current, type: "bar", data: list.map(function (x) { return yuan(x.revenue_fen); }),
          itemStyle: { color: GREEN }, label: { show: true, position: "right" } },
        { name: L.previous, type: "bar", data: list.map(function (x) { return yuan(earlier[x.name] || 0); }),
          itemStyle: { color: GREY } }
      ]
    });
  }
  ranked("chart-categories", now.categories, function (c) { return L.lang === "en" && c.name_en ? c.name_en : c.name; },
    before.categories);
  ranked("chart-products", now.products, function (p) { return p.name; }, before.products);

  // searches that found nothing
  var searchesBefore = byName(before.failed_searches, "query", "count");
  draw("chart-searches", now.failed_searches.length > 0, {
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: now.failed_searches.map(function (s) { return s.query; }), inverse: true },
    series: [
      { name: L.searches, type: "bar", data: now.failed_searches.map(function (s) { return s.count; }),
        itemStyle: { color: ORANGE }, label: { show: true, position: "right" } },
      { name: L.searches + prev, type: "bar", itemStyle: { color: GREY },
        data: now.failed_searches.map(function (s) { return searchesBefore[s.query] || 0; }) }
    ]
  });

  // referrers: shares, follows and orders side by side
  var who = now.referrers.map(function (r) { return "…" + r.customer; });
  function pick(key) { return now.referrers.map(function (r) { return r[key]; }); }
  draw("chart-referrers", now.referrers.length > 0, {
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", data: who, inverse: true },
    series: [
      { name: L.shares, type: "bar", data: pick("shares"), itemStyle: { color: BLUE } },
      { name: L.follows, type: "bar", data: pick("follows"), itemStyle: { color: ORANGE } },
      { name: L.ref_orders, type: "bar", data: pick("orders"), itemStyle: { color: GREEN } }
    ]
  });

  // group buys: opened and filled, this period and the previous one, the fill rates in the legend
  function rate(g) { return Math.round(g.rate * 1000) / 10 + "%"; }
  draw("chart-groups", now.groups.opened + before.groups.opened > 0, {
    xAxis: { type: "category", data: [L.groups_opened, L.groups_filled] },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: L.current + " " + L.fill_rate + " " + rate(now.groups), type: "bar",
        data: [now.groups.opened, now.groups.filled], itemStyle: { color: GREEN }, label: { show: true, position: "top" } },
      { name: L.previous + " " + L.fill_rate + " " + rate(before.groups), type: "bar",
        data: [before.groups.opened, before.groups.filled], itemStyle: { color: GREY } }
    ]
  });

  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) clearTimeout(pending);
    pending = setTimeout(function () { charts.forEach(function (c) { c.resize(); }); }, 100);
  });
  document.body.setAttribute("data-charts", String(charts.length));
})();
