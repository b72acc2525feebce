// TI Studio: helpers shared by the tab's scripts. Inside AUTOMATIC1111 WebUI the host defines gradioApp(),
// updateInput() and randomId(); the standalone app has none of them, so each has a fallback here.
(function() {
    "use strict";

    function app() {
        if (typeof gradioApp === "function") return gradioApp();
        const root = document.querySelector("gradio-app");
        if (!root) return document;
        return root.shadowRoot || root;
    }

    // Tell gradio that script code changed an input's value (gradio listens for "input" events).
    function updateInputValue(element) {
        if (typeof updateInput === "function") {
            updateInput(element);
            return;
        }
        element.dispatchEvent(new Event("input", {bubbles: true}));
    }

    function newTaskId() {
        if (typeof randomId === "function") return randomId();
        return "task(" + Math.random().toString(36).slice(2, 12) + ")";
    }

    window.tiStudio = Object.assign(window.tiStudio || {}, {
        app: app,
        updateInput: updateInputValue,
        newTaskId: newTaskId,
        element: function(id) {
            return app().querySelector("#" + id);
        },
    });
})();
