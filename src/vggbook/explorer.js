/* The unit explorer of "VGG16 from Scratch": vggExplorer(root) brings one `.vgg-explorer` element to life.
 *
 * Python (src/vggbook/explorer.py, whose docstring is the DOM contract) embeds everything in the page as
 * JSON: the photo's RGB bytes and each layer's embedded channels as uint8 steps of each channel's own range,
 * stored as deflated left differences in base64, decoded here with the browser's DecompressionStream.
 * No library and no request: a canvas per image, an SVG overlay for the boxes, native <select>s. */

function vggExplorer(root) {
  "use strict";
  const data = JSON.parse(root.querySelector("script.vgg-explorer-data").textContent);
  const size = data.image_size; // the photo is size × size
  const layers = data.layers;
  const status = root.querySelector(".vgg-explorer-status");
  const state = { layer: 0, position: 0, row: 0, col: 0 }; // position: rank among the layer's embedded channels
  let photo = null; // RGB bytes, row by row

  // ---- DOM helpers
  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    node.append(...children);
    return node;
  }
  function svgElement(tag, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }
  const format = (value, digits = 4) => String(Number(value.toPrecision(digits))); // 46.061 → "46.06"
  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

  // ---- Data: base64 → bytes → inflate → running sums of each row's left differences (mod 256)
  const bytesOf = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  async function unpack(base64, rowLength, step) {
    const stream = new Blob([bytesOf(base64)]).stream().pipeThrough(new DecompressionStream("deflate"));
    const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    for (let start = 0; start < bytes.length; start += rowLength) {
      for (let i = start + step; i < start + rowLength; i++) bytes[i] += bytes[i - step]; // Uint8Array wraps
    }
    return bytes;
  }
  const colours = bytesOf(data.colormap); // 256 RGB colours (viridis)
  const value = (channel, step) => channel.low + (step * (channel.high - channel.low)) / 255;
  const halfStep = (channel) => (channel.high - channel.low) / 510;

  // The receptive-field box: vggbook.receptive_field_box, from the layer table's rf, stride and padding.
  function box(layer, row, col) {
    const clip = (v) => clamp(v, 0, size - 1);
    const y0 = row * layer.stride - layer.padding;
    const x0 = col * layer.stride - layer.padding;
    return [clip(x0), clip(y0), clip(x0 + layer.receptive_field - 1), clip(y0 + layer.receptive_field - 1)];
  }

  // block1_conv1 at (row, col), channel `index`, as the chapter's NumPy: 3×3×3 window of the preprocessed
  // photo (BGR minus the caffe means, float32; zero outside the photo) times the kernel, plus bias, ReLU.
  function computeUnit(row, col, index) {
    const computation = data.computation;
    const means = computation.mean_bgr.map(Math.fround);
    const kernel = computation.kernel[index].map(Math.fround); // (row, column, input channel) order
    const inputs = [[], [], []]; // per input channel B, G, R: 9 values, row by row
    const weights = [[], [], []];
    const outside = []; // per window position: in the zero padding around the photo
    const partial = [0, 0, 0];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const y = row + i - 1;
        const x = col + j - 1;
        const inside = y >= 0 && y < size && x >= 0 && x < size;
        outside.push(!inside);
        for (let c = 0; c < 3; c++) {
          const input = inside ? Math.fround(photo[(y * size + x) * 3 + (2 - c)] - means[c]) : 0;
          const weight = kernel[(i * 3 + j) * 3 + c];
          inputs[c].push(input);
          weights[c].push(weight);
          partial[c] += input * weight;
        }
      }
    }
    const sum = partial[0] + partial[1] + partial[2];
    const bias = Math.fround(computation.bias[index]);
    return { inputs, weights, outside, partial, sum, bias, pre: sum + bias, out: Math.max(0, sum + bias) };
  }

  // ---- The figure's parts
  const layerSelect = element("select", { class: "vgg-explorer-layer" });
  for (const layer of layers) {
    const shape = `${layer.height}×${layer.width}×${layer.total_channels}`;
    layerSelect.append(new Option(`${layer.name} (${shape})`, layer.name));
  }
  const channelSelect = element("select", { class: "vgg-explorer-channel" });
  const controls = element(
    "div",
    { class: "vgg-explorer-controls" },
    element("label", {}, "Layer ", layerSelect),
    element("label", {}, "Channel ", channelSelect),
  );

  const photoCanvas = element("canvas", { width: size, height: size, role: "img", "aria-label": "the photograph" });
  const overlay = svgElement("svg", {
    class: "vgg-explorer-overlay",
    viewBox: `0 0 ${size} ${size}`,
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  const boxHalo = svgElement("rect", { class: "vgg-explorer-halo" });
  const boxRect = svgElement("rect", { class: "vgg-explorer-box" });
  overlay.append(boxHalo, boxRect);
  // (div, not figure: the book theme styles figures)
  const photoPanel = element(
    "div",
    { class: "vgg-explorer-panel" },
    element("div", { class: "vgg-explorer-frame" }, photoCanvas, overlay),
    element("div", { class: "vgg-explorer-caption" }, "The photograph: the unit's receptive field"),
  );

  const mapCanvas = element("canvas", { class: "vgg-explorer-map-canvas" });
  const marker = svgElement("svg", {
    class: "vgg-explorer-marker",
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  const unitHalo = svgElement("rect", { class: "vgg-explorer-halo", width: 1, height: 1 });
  const unitRect = svgElement("rect", { class: "vgg-explorer-unit", width: 1, height: 1 });
  marker.append(unitHalo, unitRect);
  const map = element(
    "div",
    {
      class: "vgg-explorer-frame vgg-explorer-map",
      tabindex: "0",
      role: "application",
      "aria-label": "Feature map: point at a unit, or use the arrow keys (Shift: 8 units)",
    },
    mapCanvas,
    marker,
  );
  const scaleCanvas = element("canvas", { width: 256, height: 1, "aria-hidden": "true" });
  const scaleLow = element("span");
  const scaleHigh = element("span");
  const mapPanel = element(
    "div",
    { class: "vgg-explorer-panel" },
    map,
    element("div", { class: "vgg-explorer-caption vgg-explorer-scale" }, scaleLow, scaleCanvas, scaleHigh),
  );

  const readout = element("p", { class: "vgg-explorer-readout", "aria-live": "polite" });
  const top = element("div", { class: "vgg-explorer-top" });
  const conv = element("div", { class: "vgg-explorer-conv" });
  const note = element("p", { class: "vgg-explorer-note" });

  // ---- Drawing
  // Fill a canvas of width × height pixels from RGB bytes: pixel p has colour rgb[3 index(p) …].
  function paint(canvas, width, height, rgb, index = (p) => p) {
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height);
    for (let p = 0; p < width * height; p++) {
      const i = 3 * index(p);
      image.data.set([rgb[i], rgb[i + 1], rgb[i + 2], 255], 4 * p);
    }
    context.putImageData(image, 0, 0);
  }

  function drawPhoto() {
    paint(photoCanvas, size, size, photo);
    paint(scaleCanvas, 256, 1, colours); // the colour bar: steps 0 … 255
  }

  function fillChannels() {
    const layer = layers[state.layer];
    channelSelect.replaceChildren(
      ...layer.channels.map((c, rank) => new Option(`${c.index} (#${rank + 1}, mean ${format(c.mean, 3)})`, c.index)),
    );
    channelSelect.selectedIndex = state.position;
    note.textContent =
      `Channels of ${layer.name} embedded in the page: the ${layer.channels.length} strongest of ` +
      `${layer.total_channels}, by mean activation. Each is stored in 256 steps of its own range, so a value ` +
      "shown is within ± half a step of the network's. Point at the map (or tap it), or move with the arrow keys.";
  }

  function drawMap() {
    const layer = layers[state.layer];
    const channel = layer.channels[state.position];
    paint(mapCanvas, layer.width, layer.height, colours, (p) => channel.steps[p]); // viridis of each step
    marker.setAttribute("viewBox", `0 0 ${layer.width} ${layer.height}`);
    scaleLow.textContent = format(channel.low, 3);
    scaleHigh.textContent = format(channel.high, 3);
    root.dataset.layer = layer.name;
    root.dataset.channel = channel.index;
  }

  // a 3×3 grid of numbers; cells outside the photo (the zero padding) in the class vgg-explorer-pad
  function grid(values, digits, outside = []) {
    const cell = (v, k) => element("span", outside[k] ? { class: "vgg-explorer-pad" } : {}, format(v, digits));
    return element("span", { class: "vgg-explorer-grid" }, ...values.map(cell));
  }

  function showComputation(layer, channel, stored) {
    conv.hidden = !data.computation || layer.name !== data.computation.layer;
    if (conv.hidden) return;
    const unit = computeUnit(state.row, state.col, channel.index);
    const rows = ["B", "G", "R"].map((name, c) =>
      element(
        "div",
        { class: "vgg-explorer-conv-row" },
        element("span", { class: "vgg-explorer-conv-label" }, `${name} − ${format(data.computation.mean_bgr[c], 6)}`),
        grid(unit.inputs[c], 4, unit.outside),
        element("span", {}, "×"),
        grid(unit.weights[c], 3),
        element("span", {}, `= ${format(unit.partial[c])}`),
      ),
    );
    const result = element(
      "p",
      {
        class: "vgg-explorer-conv-result",
        "data-sum": unit.sum,
        "data-bias": unit.bias,
        "data-pre": unit.pre,
        "data-value": unit.out,
      },
      `Sum of the 27 products ${format(unit.sum)}, plus bias ${format(unit.bias)}: ${format(unit.pre)}; ` +
        `after the ReLU, max(0, ${format(unit.pre)}) = ${format(unit.out)} (the map's 8-bit copy: ${format(stored)}).`,
    );
    conv.replaceChildren(
      element(
        "p",
        {},
        `How ${layer.name} computes this unit of channel ${channel.index}: the 3×3 window of the preprocessed photo ` +
          "in each colour (BGR minus the ImageNet means; 0 outside the photo, in italics) times the kernel:",
      ),
      ...rows,
      result,
    );
  }

  function showUnit() {
    const layer = layers[state.layer];
    const channel = layer.channels[state.position];
    const { row, col } = state;
    const unitValue = value(channel, channel.steps[row * layer.width + col]);
    const [x0, y0, x1, y1] = box(layer, row, col);
    for (const rect of [boxRect, boxHalo]) {
      rect.setAttribute("x", x0);
      rect.setAttribute("y", y0);
      rect.setAttribute("width", x1 - x0 + 1);
      rect.setAttribute("height", y1 - y0 + 1);
    }
    for (const rect of [unitRect, unitHalo]) {
      rect.setAttribute("x", col);
      rect.setAttribute("y", row);
    }
    Object.assign(root.dataset, { row, col, value: unitValue, box: `${x0} ${y0} ${x1} ${y1}` });
    readout.dataset.value = unitValue;
    readout.textContent =
      `${layer.name}, channel ${channel.index}, unit (row ${row}, column ${col}): ` +
      `${format(unitValue)} ± ${format(halfStep(channel), 2)}. Receptive field: x ${x0}–${x1}, y ${y0}–${y1} ` +
      `(${x1 - x0 + 1}×${y1 - y0 + 1} pixels of the photo).`;
    // the strongest embedded channels at this position
    const here = layer.channels
      .map((c) => ({ index: c.index, value: value(c, c.steps[row * layer.width + col]) }))
      .sort((a, b) => b.value - a.value)
      .slice(0, data.top_channels);
    top.replaceChildren(
      element("span", {}, "Strongest channels here: "),
      ...here.map((c) =>
        element("button", { type: "button", "data-channel": c.index }, `${c.index}: ${format(c.value, 3)}`),
      ),
    );
    showComputation(layer, channel, unitValue);
  }

  // ---- Interaction
  function moveTo(row, col) {
    const layer = layers[state.layer];
    state.row = clamp(row, 0, layer.height - 1);
    state.col = clamp(col, 0, layer.width - 1);
    showUnit();
  }

  function pointAt(event) {
    const layer = layers[state.layer];
    const rect = mapCanvas.getBoundingClientRect();
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * layer.width);
    const row = Math.floor(((event.clientY - rect.top) / rect.height) * layer.height);
    if (row >= 0 && row < layer.height && col >= 0 && col < layer.width) moveTo(row, col);
  }

  function chooseChannel(position) {
    state.position = position;
    channelSelect.selectedIndex = position;
    drawMap();
    showUnit();
  }

  map.addEventListener("pointerdown", pointAt);
  map.addEventListener("pointermove", (event) => {
    if (event.pointerType === "mouse" || event.buttons) pointAt(event); // a hovering mouse, a dragged pen
  });
  map.addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault(); // the arrows move the unit, not the page
    const steps = event.shiftKey ? 8 : 1;
    moveTo(state.row + steps * move[0], state.col + steps * move[1]);
  });
  layerSelect.addEventListener("change", () => {
    const before = layers[state.layer];
    state.layer = layerSelect.selectedIndex;
    const after = layers[state.layer];
    state.position = Math.min(state.position, after.channels.length - 1); // the same rank where there is one
    fillChannels();
    drawMap();
    // the unit at the same place of the photo
    const row = Math.floor(((state.row + 0.5) * after.height) / before.height);
    moveTo(row, Math.floor(((state.col + 0.5) * after.width) / before.width));
  });
  channelSelect.addEventListener("change", () => chooseChannel(channelSelect.selectedIndex));
  top.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-channel]");
    if (!button) return;
    const layer = layers[state.layer];
    chooseChannel(layer.channels.findIndex((c) => String(c.index) === button.dataset.channel));
    map.focus({ preventScroll: true }); // the list was redrawn; the arrows go on from the map
  });

  // ---- Start: decode everything, then show the strongest channel of the first layer at its centre
  async function start() {
    if (typeof DecompressionStream === "undefined") {
      status.textContent =
        "This browser cannot unpack the figure's data (it needs DecompressionStream: Chrome 80, Firefox 113, " +
        "Safari 16.4 or newer).";
      return;
    }
    photo = await unpack(data.photo, size * 3, 3);
    for (const layer of layers) {
      // the layer's channels one after the other, each height × width steps
      const steps = await unpack(layer.data, layer.width, 1);
      const area = layer.height * layer.width;
      layer.channels.forEach((channel, k) => (channel.steps = steps.subarray(k * area, (k + 1) * area)));
    }
    const panels = element("div", { class: "vgg-explorer-panels" }, photoPanel, mapPanel);
    root.append(controls, panels, readout, top, conv, note);
    drawPhoto();
    fillChannels();
    drawMap();
    moveTo(Math.floor(layers[0].height / 2), Math.floor(layers[0].width / 2));
    status.hidden = true;
    root.dataset.ready = "true";
  }
  start().catch((problem) => {
    status.textContent = `The figure could not be shown: ${problem}`;
  });
}
