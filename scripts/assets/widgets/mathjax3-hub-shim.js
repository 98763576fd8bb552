/* The widget embed manager (@jupyter-widgets/html-manager 1.0.6) typesets widget labels with the
 * MathJax 2 API, `MathJax.Hub.Queue(["Typeset", MathJax.Hub, element])`, whenever window.MathJax
 * exists. The book loads MathJax 3, which has no `Hub`: every widget with a description would throw
 * "Cannot read properties of undefined (reading 'Queue')". This maps that one call onto MathJax 3.
 * Loaded on pages with widgets, before require.js/embed-amd.js (see _config.yml, nb_ipywidgets_js);
 * it acts once the deferred MathJax script has run, before the widgets render (window "load"). */
(function () {
  function install() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) return;
    function typeset(el) {
      if (el && el.classList) el.classList.add("mathjax_process");
      mj.startup.promise = mj.startup.promise
        .then(function () { return mj.typesetPromise(el ? [el] : undefined); })
        .catch(function (err) { console.warn("MathJax typeset of a widget failed:", err); });
    }
    mj.Hub = {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset") typeset(job[2]);
        }
      }
    };
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", install);
  } else {
    install();
  }
})();
