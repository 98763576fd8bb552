/* The book's static explorers (memlib.widgets.static_explorer) in the published page, no kernel needed:
 *
 * - Links that carry a setting. When the page opens, each explorer reads its slider values from the URL's
 *   fragment, e.g. #06-noise=0.4&06-width=512 (keys prefixed by the explorer's key, the chapter number), and
 *   sets its sliders with the keys a reader would press (Home, then ArrowRight); as the reader moves a slider
 *   the fragment is rewritten (history.replaceState), so the address bar always links to the view shown.
 *   A "Copy link to this view" button puts that link on the clipboard.
 * - Alt text. Each explorer image gets the alt text stored for it (plots.alt_text of its figure plus the
 *   setting); a live explorer's image (memlib.widgets.Explorer) gets one naming its controls' values.
 *
 * The widgets are rendered by the embed manager after the page loads, so everything here waits for them
 * (a MutationObserver) and marks each explorer it has set up with data-memlib-ready="1" (the browser test
 * waits for that).
 */
(function () {
  "use strict";

  function parseHash() {
    var out = {}, order = [];
    var h = window.location.hash.replace(/^#/, "");
    if (!h) return {map: out, order: order};
    h.split("&").forEach(function (part) {
      var i = part.indexOf("=");
      var k = i > 0 ? decodeURIComponent(part.slice(0, i)) : part;
      order.push(k);
      if (i > 0) out[k] = decodeURIComponent(part.slice(i + 1));
    });
    return {map: out, order: order, raw: h.split("&")};
  }

  function sameValue(a, b) {
    if (String(a) === String(b)) return true;
    var x = Number(a), y = Number(b);  // 0.40 = 0.4, 0 = 0.0; Number("adam") is NaN
    return String(a).trim() !== "" && !isNaN(x) && !isNaN(y) && Math.abs(x - y) < 1e-12;
  }

  function findIndex(control, given) {
    for (var i = 0; i < control.values.length; i++) {
      if (sameValue(given, control.values[i]) || given === control.labels[i]) return i;
    }
    return -1;
  }

  function handleIndex(handle) {
    return Math.round(parseFloat(handle.getAttribute("aria-valuenow")));
  }

  function press(handle, key) {
    handle.dispatchEvent(new KeyboardEvent("keydown", {key: key, bubbles: true, cancelable: true}));
  }

  // Set a slider to index idx as the keyboard would: Home (the first value), then ArrowRight idx times.
  function setIndex(handle, idx) {
    if (handleIndex(handle) === idx) return;
    press(handle, "Home");
    for (var i = 0; i < idx && handleIndex(handle) !== idx; i++) press(handle, "ArrowRight");
  }

  function encode(s) {
    return encodeURIComponent(s).replace(/%2C/g, ",");
  }

  function stateFragment(ex) {
    // The URL's other parts (section anchors, other explorers' keys) stay as they were, in order.
    var prefix = ex.key + "-";
    var kept = (window.location.hash.replace(/^#/, "") || "").split("&").filter(function (p) {
      return p && decodeURIComponent(p.split("=")[0]).indexOf(prefix) !== 0;
    });
    var mine = ex.meta.controls.map(function (c, i) {
      return encode(prefix + c.name) + "=" + encode(c.values[handleIndex(ex.handles[i])]);
    });
    return kept.concat(mine).join("&");
  }

  function linkTo(ex) {
    return window.location.href.split("#")[0] + "#" + stateFragment(ex);
  }

  function writeUrl(ex) {
    var frag = stateFragment(ex);
    if (window.location.hash.replace(/^#/, "") === frag) return;
    try {
      history.replaceState(history.state, "", "#" + frag);
    } catch (e) {
      /* some browsers refuse replaceState on file:// pages: the link button still works */
    }
  }

  function flatIndex(ex) {
    var k = 0;
    ex.meta.controls.forEach(function (c, i) {
      k = k * c.values.length + handleIndex(ex.handles[i]);
    });
    return k;
  }

  function labelImages(ex) {
    ex.box.querySelectorAll("img").forEach(function (img) {
      var m = /(?:^|\s)memlib-grid-(\d+)(?:\s|$)/.exec(img.className);
      var alt = m ? ex.meta.alts[+m[1]] : ex.meta.alts[flatIndex(ex)];
      if (alt && img.getAttribute("alt") !== alt) img.setAttribute("alt", alt);
    });
  }

  function addCopyButton(ex) {
    var row = ex.box.querySelector(".widget-hbox") || ex.box;
    var wrap = document.createElement("span");
    wrap.className = "memlib-copy-link";
    var btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "Copy link to this view";
    btn.title = "A link to this page with these slider values";
    var field = document.createElement("input");
    field.type = "text";
    field.readOnly = true;
    field.hidden = true;
    field.setAttribute("aria-label", "link to this view");
    btn.addEventListener("click", function () {
      var url = linkTo(ex);
      writeUrl(ex);
      var shown = function (text) { btn.textContent = text; setTimeout(function () { btn.textContent = "Copy link to this view"; }, 2000); };
      var fallback = function () { field.hidden = false; field.value = url; field.focus(); field.select(); shown("Link selected: copy it"); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(url).then(function () { shown("Link copied"); }, fallback);
      } else {
        fallback();
      }
    });
    wrap.appendChild(btn);
    wrap.appendChild(field);
    row.appendChild(wrap);
  }

  var counter = 0;

  function setupStatic(box) {
    var info = box.querySelector(".memlib-explorer-meta");
    var handles = Array.prototype.slice.call(box.querySelectorAll(".noUi-handle"));
    if (!info || !handles.length) return false;  // not rendered yet
    var meta;
    try {
      meta = JSON.parse(info.getAttribute("data-meta"));
    } catch (e) {
      box.setAttribute("data-memlib-ready", "error");
      return true;
    }
    if (handles.length < meta.controls.length) return false;
    counter += 1;
    var ex = {box: box, meta: meta, handles: handles, key: meta.key || "x" + counter};
    box.setAttribute("data-memlib-key", ex.key);
    var given = parseHash().map, fromUrl = false;
    meta.controls.forEach(function (c, i) {
      var v = given[ex.key + "-" + c.name];
      if (v === undefined) return;
      var idx = findIndex(c, v);
      if (idx < 0) {
        console.warn("memlib: " + ex.key + "-" + c.name + "=" + v + " is not one of " + c.values.join(", "));
        return;
      }
      setIndex(handles[i], idx);
      fromUrl = true;
    });
    handles.forEach(function (h) {
      new MutationObserver(function () { writeUrl(ex); labelImages(ex); })
        .observe(h, {attributes: true, attributeFilter: ["aria-valuenow"]});
    });
    new MutationObserver(function () { labelImages(ex); }).observe(box, {childList: true, subtree: true});
    labelImages(ex);
    if (fromUrl) writeUrl(ex);
    addCopyButton(ex);
    box.setAttribute("data-memlib-ready", "1");
    return true;
  }

  function labelLive(box) {
    var parts = [];
    box.querySelectorAll(".widget-slider").forEach(function (s) {
      var name = s.querySelector(".widget-label"), value = s.querySelector(".widget-readout");
      if (name && value) parts.push(name.textContent.trim() + " " + value.textContent.trim());
    });
    var alt = "Figure of the live explorer for " + (parts.join(", ") || "its default setting") +
      " (drawn when the book was built; a running kernel redraws it as the sliders move).";
    box.querySelectorAll("img").forEach(function (img) {
      if (img.getAttribute("alt") !== alt) img.setAttribute("alt", alt);
    });
  }

  function scan() {
    document.querySelectorAll(".memlib-static-explorer:not([data-memlib-ready])").forEach(setupStatic);
    document.querySelectorAll(".memlib-live-explorer").forEach(labelLive);
  }

  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(function () { pending = false; scan(); }, 30);
  }

  function start() {
    scan();
    new MutationObserver(schedule).observe(document.body, {childList: true, subtree: true});
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
