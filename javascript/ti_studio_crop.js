// TI Studio: the crop editor. It draws the crop square over the original photo (#ti_studio_crop_original) and lets
// the user move it (drag inside it), resize it (drag a corner: the opposite corner stays put, as in most crop tools)
// and zoom it (mouse wheel: around its centre, so the subject stays framed). Mouse, pen and touch all arrive as
// Pointer Events.
//
// The square's truth is the hidden textbox #ti_studio_crop_box: JSON {"left", "top", "side", "width", "height"} in the
// original's full-resolution pixels (width/height: the original's size), while the photo on the page is a
// downscaled copy. The server sets the box when a photo is selected and gradio then calls tiStudioCropShow(value)
// (the box's change event); a finished gesture writes the new box into the textbox, which gradio passes to the
// server's next event. So the editor keeps no state the server does not see.
(function() {
    "use strict";

    const IMAGE_ID = "ti_studio_crop_original";
    const BOX_ID = "ti_studio_crop_box";
    // The cropper's limits, in original pixels: a square smaller than this is no usable training image, and one much
    // larger than the photo is mostly padding. Its centre must stay on the photo.
    const MIN_SIDE = 64;
    const MAX_SIDE_PER_LONGER_SIDE = 1.5;
    // One wheel notch (100 px of wheel travel in Chromium) grows or shrinks the square by this factor.
    const WHEEL_STEP = 1.1;
    // The wheel has no "end" event: a zoom counts as finished after this long without wheel events.
    const WHEEL_SETTLE_MS = 300;
    // For each corner handle: which way (x, y) it lies from the square's centre.
    const CORNERS = {nw: [-1, -1], ne: [1, -1], sw: [-1, 1], se: [1, 1]};

    let box = null; // the square on screen, in original pixels; null when there is none
    let gesture = null; // the drag in progress: its pointer, start point and start box
    let wheelTimer = null;
    let overlay = null;
    let square = null;
    const watched = new WeakSet(); // image blocks that already have our listeners

    function clamp(value, low, high) {
        return Math.min(high, Math.max(low, value));
    }

    function maxSide(b) {
        return MAX_SIDE_PER_LONGER_SIDE * Math.max(b.width, b.height);
    }

    function parseBox(value) {
        let parsed;
        try {
            parsed = JSON.parse(value);
        } catch (e) {
            return null;
        }
        if (!parsed || typeof parsed !== "object") return null;
        const numbers = ["left", "top", "side", "width", "height"].map(function(key) {
            return Number(parsed[key]);
        });
        if (!numbers.every(isFinite) || numbers[2] <= 0 || numbers[3] <= 0 || numbers[4] <= 0) return null;
        return {left: numbers[0], top: numbers[1], side: numbers[2], width: numbers[3], height: numbers[4]};
    }

    // Where the photo's pixels are drawn. The <img> fills its block and letterboxes the photo (object-fit: contain),
    // so the picture is a centred rect inside the element's rect; `scale` is screen px per original px.
    function layout() {
        const block = tiStudio.element(IMAGE_ID);
        if (!block) return null;
        watch(block);
        const img = block.querySelector("img");
        if (!img || !box) return null;
        const rect = img.getBoundingClientRect();
        if (!rect.width || !rect.height) return null; // not rendered (another tab is shown)
        // Until the photo has loaded, its aspect ratio is the original's (the contract: same aspect ratio).
        const naturalWidth = img.naturalWidth || box.width;
        const naturalHeight = img.naturalHeight || box.height;
        const fit = Math.min(rect.width / naturalWidth, rect.height / naturalHeight);
        const shownWidth = naturalWidth * fit;
        return {
            block: block,
            rect: rect,
            x: (rect.width - shownWidth) / 2,
            y: (rect.height - naturalHeight * fit) / 2,
            scale: shownWidth / box.width,
        };
    }

    function place(element, left, top, width, height) {
        element.style.left = left + "px";
        element.style.top = top + "px";
        element.style.width = width + "px";
        element.style.height = height + "px";
    }

    function draw() {
        const view = layout();
        if (!view) {
            if (overlay) overlay.style.display = "none";
            return;
        }
        if (!overlay) createOverlay();
        if (overlay.parentNode !== view.block) view.block.appendChild(overlay);
        // The overlay covers the <img> element (letterbox included, so corner handles at the photo's edge stay
        // whole); its overflow clip keeps the square's dimming shadow inside it.
        const blockRect = view.block.getBoundingClientRect();
        place(overlay, view.rect.left - blockRect.left - view.block.clientLeft,
            view.rect.top - blockRect.top - view.block.clientTop, view.rect.width, view.rect.height);
        const side = box.side * view.scale;
        place(square, view.x + box.left * view.scale, view.y + box.top * view.scale, side, side);
        overlay.style.display = "";
    }

    function createOverlay() {
        overlay = document.createElement("div");
        overlay.className = "ti-studio-crop-overlay";
        square = document.createElement("div");
        square.className = "ti-studio-crop-square";
        ["v", "h"].forEach(function(direction) {
            const thirds = document.createElement("div");
            thirds.className = "ti-studio-crop-thirds ti-studio-crop-thirds-" + direction;
            square.appendChild(thirds);
        });
        Object.keys(CORNERS).forEach(function(corner) {
            const handle = document.createElement("div");
            handle.className = "ti-studio-crop-handle";
            handle.dataset.corner = corner;
            square.appendChild(handle);
        });
        overlay.appendChild(square);
        square.addEventListener("pointerdown", startGesture);
        square.addEventListener("pointermove", moveGesture);
        square.addEventListener("pointerup", endGesture);
        square.addEventListener("pointercancel", cancelGesture);
    }

    // Listeners on the image's block rather than on document: they still work if gradio renders into a shadow root.
    function watch(block) {
        if (watched.has(block)) return;
        watched.add(block);
        // "load" does not bubble, but it can be captured: redraw once a new photo's size is known.
        block.addEventListener("load", function(event) {
            if (event.target.tagName === "IMG") draw();
        }, true);
        block.addEventListener("wheel", zoomByWheel, {passive: false});
        // The block's size follows the window, the layout and tab switches (hidden tabs have no size):
        // redraw whenever it changes.
        new ResizeObserver(draw).observe(block);
    }

    function moved(start, dx, dy) {
        const centreX = clamp(start.left + start.side / 2 + dx, 0, start.width);
        const centreY = clamp(start.top + start.side / 2 + dy, 0, start.height);
        return Object.assign({}, start, {left: centreX - start.side / 2, top: centreY - start.side / 2});
    }

    // Resize from `corner` while the opposite corner stays fixed. The dragged corner follows the pointer along
    // whichever axis it moved further, and the side is limited so that the centre stays on the photo.
    function resized(start, corner, dx, dy) {
        const sx = CORNERS[corner][0];
        const sy = CORNERS[corner][1];
        const fixedX = sx > 0 ? start.left : start.left + start.side;
        const fixedY = sy > 0 ? start.top : start.top + start.side;
        let low = MIN_SIDE;
        let high = maxSide(start);
        // centre = fixed + s * side / 2 must lie in [0, size]: that bounds the side from both ends.
        [[sx, fixedX, start.width], [sy, fixedY, start.height]].forEach(function(axis) {
            const a = -2 * axis[0] * axis[1];
            const b = 2 * axis[0] * (axis[2] - axis[1]);
            low = Math.max(low, Math.min(a, b));
            high = Math.min(high, Math.max(a, b));
        });
        if (low > high) return null; // only for a start box that already broke the limits: leave it as it is
        const side = clamp(start.side + Math.max(sx * dx, sy * dy), low, high);
        return Object.assign({}, start, {
            left: sx > 0 ? fixedX : fixedX - side,
            top: sy > 0 ? fixedY : fixedY - side,
            side: side,
        });
    }

    function zoomed(start, factor) {
        const side = clamp(start.side * factor, MIN_SIDE, maxSide(start));
        return Object.assign({}, start, {
            left: start.left + (start.side - side) / 2,
            top: start.top + (start.side - side) / 2,
            side: side,
        });
    }

    function startGesture(event) {
        if (gesture || !box || event.button !== 0) return; // one pointer at a time; primary button or contact only
        const view = layout();
        if (!view) return;
        event.preventDefault();
        square.setPointerCapture(event.pointerId);
        gesture = {
            pointerId: event.pointerId,
            x: event.clientX,
            y: event.clientY,
            scale: view.scale,
            corner: event.target.dataset.corner, // undefined inside the square: a move
            start: box,
        };
    }

    function moveGesture(event) {
        if (!gesture || event.pointerId !== gesture.pointerId) return;
        const dx = (event.clientX - gesture.x) / gesture.scale;
        const dy = (event.clientY - gesture.y) / gesture.scale;
        const next = gesture.corner ? resized(gesture.start, gesture.corner, dx, dy) : moved(gesture.start, dx, dy);
        if (next) {
            box = next;
            draw();
        }
    }

    function endGesture(event) {
        if (!gesture || event.pointerId !== gesture.pointerId) return;
        gesture = null;
        commit();
    }

    // The browser took the pointer away (e.g. a system gesture): the drag did not happen.
    function cancelGesture(event) {
        if (!gesture || event.pointerId !== gesture.pointerId) return;
        box = gesture.start;
        gesture = null;
        draw();
    }

    function zoomByWheel(event) {
        if (!box || gesture || !overlay || overlay.style.display === "none") return;
        event.preventDefault(); // zoom the square, not scroll the page
        // deltaMode: 0 = pixels; 1 = lines, 2 = pages (some browsers and mice): about 3 lines or 1 page per notch.
        const pixels = event.deltaY * [1, 100 / 3, 100][event.deltaMode];
        box = zoomed(box, Math.pow(WHEEL_STEP, pixels / 100));
        draw();
        clearTimeout(wheelTimer);
        wheelTimer = setTimeout(commit, WHEEL_SETTLE_MS);
    }

    function rounded(b) {
        function tenth(value) {
            return Math.round(value * 10) / 10;
        }
        return {left: tenth(b.left), top: tenth(b.top), side: tenth(b.side), width: b.width, height: b.height};
    }

    // Write the box into the textbox (and so into gradio's value), unless the gesture left it where it was: a bare
    // click must not look like an edit to the server.
    function commit() {
        clearTimeout(wheelTimer);
        wheelTimer = null;
        const field = tiStudio.element(BOX_ID);
        const textarea = field && field.querySelector("textarea");
        if (!textarea || !box) return;
        const next = rounded(box);
        const current = parseBox(textarea.value);
        if (current && JSON.stringify(rounded(current)) === JSON.stringify(next)) return;
        textarea.value = JSON.stringify(next);
        tiStudio.updateInput(textarea);
    }

    // The box's change event (`_js`): called with the new value whenever it changes, from the server or from
    // commit(). A server value replaces whatever the user was doing to the previous one, so a drag in progress and a
    // zoom not yet written are dropped.
    window.tiStudioCropShow = function(value) {
        clearTimeout(wheelTimer);
        wheelTimer = null;
        gesture = null;
        box = parseBox(value);
        draw();
        return [];
    };
})();
