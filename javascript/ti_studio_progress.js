// TI Studio: progress of the tab's long jobs (crop, tag, train, the standalone grid).
//
// Each job button's `_js` hook names one of the `tiStudioStart*` functions below. It makes the task id the job's
// first input and starts polling "./internal/progress" for it: inside WebUI with the host's own requestProgress()
// (the bar, ETA and live preview users know from txt2img and the Train tab), in the standalone app with the small
// poller here, which the app feeds from the same route and response shape.
(function() {
    "use strict";

    function post(url, body, onDone, onFail) {
        fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
            .then(function(response) {
                if (!response.ok) throw new Error(response.status);
                return response.json();
            })
            .then(onDone, onFail);
    }

    // The standalone stand-in for the host's requestProgress(id, container, gallery, atEnd, onProgress).
    function pollProgress(taskId, container, gallery, atEnd, onProgress) {
        const bar = document.createElement("div");
        bar.className = "progressDiv ti-studio-progress-bar";
        const inner = document.createElement("div");
        inner.className = "progress";
        bar.appendChild(inner);
        container.parentNode.insertBefore(bar, container);
        let wasActive = false;
        let preview = null;
        const started = Date.now();

        function finish() {
            if (bar.parentNode) bar.parentNode.removeChild(bar);
            if (preview && preview.parentNode) preview.parentNode.removeChild(preview);
            atEnd();
        }

        function tick(previewId) {
            post("./internal/progress", {id_task: taskId, id_live_preview: previewId, live_preview: true}, function(res) {
                if (res.completed || (wasActive && !res.active) ||
                    (!res.active && !res.queued && Date.now() - started > 40000)) {
                    finish();
                    return;
                }
                wasActive = wasActive || res.active;
                inner.style.width = ((res.progress || 0) * 100) + "%";
                inner.textContent = res.progress ? ((res.progress * 100).toFixed(0) + "%") : "";
                if (res.live_preview && gallery) {
                    if (!preview) {
                        preview = document.createElement("img");
                        preview.className = "ti-studio-live-preview";
                        gallery.insertBefore(preview, gallery.firstChild);
                    }
                    preview.src = res.live_preview;
                }
                if (onProgress) onProgress(res);
                setTimeout(function() {
                    tick(res.id_live_preview);
                }, 500);
            }, finish);
        }
        tick(-1);
    }

    // Start polling for a job of the tab part `prefix` (elements `<prefix>_progress`, `<prefix>_status`,
    // `<prefix>_gallery`) and return the event's arguments with the task id as the first one.
    function startJob(prefix, args) {
        const taskId = tiStudio.newTaskId();
        const textInfo = tiStudio.element(prefix + "_progress");
        const status = tiStudio.element(prefix + "_status");
        const gallery = tiStudio.element(prefix + "_gallery");
        if (textInfo) textInfo.innerHTML = "";
        const follow = typeof requestProgress === "function" ? requestProgress : pollProgress;
        // The job's outputs replace the live text when it ends (the final chart and status have their own places).
        follow(taskId, status || textInfo, gallery, function() {
            if (textInfo) textInfo.innerHTML = "";
        }, function(res) {
            if (textInfo && res.textinfo) textInfo.innerHTML = res.textinfo;
        });
        const values = Array.from(args);
        values[0] = taskId;
        return values;
    }

    window.tiStudioStartCrop = function() {
        return startJob("ti_studio_crop", arguments);
    };
    window.tiStudioStartTag = function() {
        return startJob("ti_studio_tag", arguments);
    };
    window.tiStudioStartTrain = function() {
        return startJob("ti_studio_train", arguments);
    };
    window.tiStudioStartGrid = function() {
        return startJob("ti_studio_compare", arguments);
    };
})();
