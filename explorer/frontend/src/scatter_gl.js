// The Explore page's scatter: every point of an embedding drawn on the GPU (regl-scatterplot).
//
// Python (explorer/scatter_gl.py) sends small messages on every rerun; the per-point arrays
// travel once, by URL, from the explorer's local data server (content-addressed, cached by
// the browser and here): coordinates, colour codes or values, the filter as a bitmask and
// the sample rows (for hover thumbnails). A click, a lasso and the absence of WebGL go back
// to Python as component events.
//
// Built into explorer/static/scatter_gl.js by `make scatter-js` (see explorer/frontend/README.md).
import createScatterplot from 'regl-scatterplot';

const instances = new WeakMap(); // host element -> Scatter: one scatter per component, kept across reruns
const arrays = new Map(); // url -> Promise<ArrayBuffer>: each array crosses the wire once per page
const MAX_ARRAYS = 24;
const HOVER_META = new Map(); // url -> Promise<object>: tooltip facts of a sample row

function fetchArray(url) {
  let found = arrays.get(url);
  if (!found) {
    found = fetch(url).then((response) => {
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      return response.arrayBuffer();
    });
    arrays.set(url, found);
    found.catch(() => arrays.delete(url));
    while (arrays.size > MAX_ARRAYS) arrays.delete(arrays.keys().next().value);
  }
  return found;
}

function fetchMeta(url) {
  if (!HOVER_META.has(url)) {
    HOVER_META.set(url, fetch(url).then((r) => (r.ok ? r.json() : {})).catch(() => ({})));
    if (HOVER_META.size > 2048) HOVER_META.delete(HOVER_META.keys().next().value);
  }
  return HOVER_META.get(url);
}

export function webglAvailable() {
  try {
    const canvas = document.createElement('canvas');
    const gl = canvas.getContext('webgl');
    return Boolean(gl && gl.getExtension('OES_texture_float'));
  } catch {
    return false;
  }
}

function el(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

// The indices whose bit is set in a little-endian bitmask of `n` points.
function maskIndices(buffer, n) {
  const bits = new Uint8Array(buffer);
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i += 1) {
    if (bits[i >> 3] & (1 << (i & 7))) out[k++] = i;
  }
  return out.subarray(0, k);
}

// The scatter's styles, added to the page once (not sent with every rerun).
const STYLE = `
.dmd2-scatter { font: 13px sans-serif; }
.dmd2-toolbar { display: flex; gap: 6px; align-items: center; margin-bottom: 4px; }
.dmd2-toolbar button { border: 1px solid #c8c8c8; background: #fff; border-radius: 6px; padding: 2px 10px; cursor: pointer; }
.dmd2-toolbar button.active { background: #1452ff; color: #fff; border-color: #1452ff; }
.dmd2-status { color: #a00; }
.dmd2-frame { position: relative; width: 100%; }
.dmd2-frame canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.dmd2-overlay { pointer-events: none; }
.dmd2-tooltip { position: absolute; display: none; pointer-events: none; background: #fff; border: 1px solid #bbb;
  border-radius: 4px; padding: 6px; max-width: 220px; box-shadow: 0 2px 6px rgba(0,0,0,.2); z-index: 5; }
.dmd2-tooltip.visible { display: block; }
.dmd2-thumb { width: 96px; height: 96px; image-rendering: pixelated; display: block; margin-bottom: 4px; }
.dmd2-fact { overflow-wrap: anywhere; }
.dmd2-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; margin-top: 6px; align-items: center; }
.dmd2-legend-title { font-weight: 600; width: 100%; }
.dmd2-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
.dmd2-ramp { display: inline-block; width: 160px; height: 10px; }
`;

function addStyle() {
  if (document.getElementById('dmd2-scatter-style')) return;
  const style = document.createElement('style');
  style.id = 'dmd2-scatter-style';
  style.textContent = STYLE;
  document.head.appendChild(style);
}

const RING = '#e3001b';
const LARGE = 500000;
const GRID = 1024; // cells per side of the hover index
const HOVER_PIXELS = 6;
const SELECTED_FILL = '#1452ff';
const PLACED_OUTLINE = '#111111';

class Scatter {
  constructor(host) {
    this.host = host;
    this.root = el('div', 'dmd2-scatter', host);
    this.toolbar = el('div', 'dmd2-toolbar', this.root);
    this.frame = el('div', 'dmd2-frame', this.root);
    this.canvas = el('canvas', 'dmd2-gl', this.frame);
    this.overlay = el('canvas', 'dmd2-overlay', this.frame);
    this.tooltip = el('div', 'dmd2-tooltip', this.frame);
    this.legend = el('div', 'dmd2-legend', this.root);
    this.modeButtons = {};
    for (const [mode, label, title] of [
      ['panZoom', 'Pan & zoom', 'drag to pan, wheel to zoom, click a point to select it'],
      ['lasso', 'Lasso a set', 'drag around points to make a set of them (or hold Shift while dragging)'],
      ['zoom', 'Box zoom', 'drag a box to zoom into it (the zoom is kept in the URL)'],
    ]) {
      const button = el('button', 'dmd2-mode', this.toolbar);
      button.type = 'button';
      button.textContent = label;
      button.title = title;
      button.dataset.mode = mode;
      button.addEventListener('click', () => this.setMode(mode));
      this.modeButtons[mode] = button;
    }
    const reset = el('button', 'dmd2-reset', this.toolbar);
    reset.type = 'button';
    reset.textContent = 'Reset view';
    reset.addEventListener('click', () => this.resetView());
    this.zooms = 0;
    this.status = el('span', 'dmd2-status', this.toolbar);
    this.state = {}; // what is drawn: urls and messages last applied
    this.hovered = -1;
    this.clicks = 0;
    this.lassos = 0;
    this.queue = Promise.resolve();
    this.pending = 0; // messages received but not yet applied
    this.root.__dmd2scatter = this; // the browser tests read the drawn state through this
  }

  start(height, points) {
    this.frame.style.height = `${height}px`;
    const { width } = this.frame.getBoundingClientRect();
    this.scatterplot = createScatterplot({
      canvas: this.canvas,
      width: Math.max(width, 100),
      height,
      pointSize: points > LARGE ? 2 : 4, // a million 4-pixel points would be one blob
      opacityBy: 'density',
      pointSizeSelected: 0,
      pointOutlineWidth: 0,
      pointColorHover: [0.08, 0.32, 1, 1],
      backgroundColor: [1, 1, 1, 1],
      lassoColor: [0.89, 0, 0.11, 1],
      lassoInitiator: false,
      deselectOnDblClick: false,
      deselectOnEscape: false,
      actionKeyMap: { lasso: 'shift' },
    });
    const sp = this.scatterplot;
    // Hover and click are ours (a grid index over the points, `nearest`), not the library's:
    // its hover and click redraw every point, which costs a second per frame at a million
    // points on a machine without a GPU. Mouse moves and clicks on the canvas stop here,
    // before the library's window listener; drags (pan, lasso, box) pass through.
    this.pointer = (event) => this.onPointer(event);
    window.addEventListener('mousemove', this.pointer, { capture: true });
    window.addEventListener('click', this.pointer, { capture: true });
    this.canvas.addEventListener('mousedown', (event) => {
      this.downAt = [event.clientX, event.clientY];
    });
    this.canvas.addEventListener('mouseleave', () => this.hover(-1));
    // Only a lasso selects in the library (clicks are ours): its polygon goes to Python on
    // `lassoEnd`, where the library's selection is dropped again.
    sp.subscribe('lassoEnd', ({ coordinates }) => this.onLassoEnd(coordinates));
    sp.subscribe('view', () => this.drawOverlay());
    this.frames = 0; // frames the library drew (each draws every point): the tests check hover and click draw none
    sp.subscribe('draw', () => {
      this.frames += 1;
      this.drawOverlay();
    });
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.frame);
    this.setMode('panZoom');
  }

  onPointer(event) {
    if (event.target !== this.canvas || !this.n) return;
    if (event.type === 'mousemove') {
      if (event.buttons !== 0 || this.mode !== 'panZoom') return; // a drag: the library pans or lassoes
      event.stopImmediatePropagation();
      this.hover(this.nearest(event.clientX, event.clientY));
      return;
    }
    event.stopImmediatePropagation(); // a click: never the library's selection
    const [x0, y0] = this.downAt || [event.clientX, event.clientY];
    if (this.mode !== 'panZoom' || Math.hypot(event.clientX - x0, event.clientY - y0) > 4) return; // the end of a drag
    const index = this.nearest(event.clientX, event.clientY);
    if (index >= 0) {
      this.clicks += 1;
      this.args.setTriggerValue('click', { index, token: this.args.data.token, n: this.clicks });
    }
  }

  hover(index) {
    if (index === this.hovered) return;
    if (index < 0) this.hideTooltip();
    else this.showTooltip(index);
    this.drawOverlay();
  }

  // A grid over the normalised coordinates: the points of each cell, for `nearest`.
  buildGrid(nx, ny) {
    const side = GRID;
    const cell = new Int32Array(this.n);
    const start = new Int32Array(side * side + 1);
    for (let i = 0; i < this.n; i += 1) {
      const cx = Math.min(side - 1, Math.max(0, Math.floor(((nx[i] + 1) / 2) * side)));
      const cy = Math.min(side - 1, Math.max(0, Math.floor(((ny[i] + 1) / 2) * side)));
      cell[i] = cy * side + cx;
      start[cell[i] + 1] += 1;
    }
    for (let c = 0; c < side * side; c += 1) start[c + 1] += start[c];
    const fill = start.slice(0, side * side);
    const order = new Int32Array(this.n);
    for (let i = 0; i < this.n; i += 1) order[fill[cell[i]]++] = i;
    this.grid = { start, order, nx, ny };
  }

  // Screen pixels per normalised unit and the offsets, from the screen positions of the
  // leftmost and rightmost points (x) and the lowest and highest (y): the camera only
  // scales and moves the map.
  screenScale() {
    const sp = this.scatterplot;
    const { nx, ny } = this.grid;
    const [left, right, low, high] = this.anchors;
    const box = this.canvas.getBoundingClientRect();
    const pl = sp.getScreenPosition(left);
    const pr = sp.getScreenPosition(right);
    const pd = sp.getScreenPosition(low);
    const pu = sp.getScreenPosition(high);
    const sx = (pr[0] - pl[0]) / (nx[right] - nx[left]);
    const sy = (pu[1] - pd[1]) / (ny[high] - ny[low]);
    return { sx, sy, bx: box.left + pl[0] - sx * nx[left], by: box.top + pd[1] - sy * ny[low] };
  }

  // The visible point nearest the page position (x, y) within HOVER_PIXELS, or -1.
  nearest(x, y) {
    if (!this.grid || !this.anchors) return -1;
    const { sx, sy, bx, by } = this.screenScale();
    const { start, order, nx, ny } = this.grid;
    const px = (x - bx) / sx;
    const py = (y - by) / sy;
    const rx = Math.abs(HOVER_PIXELS / sx);
    const ry = Math.abs(HOVER_PIXELS / sy);
    const side = GRID;
    const cell = (v) => Math.min(side - 1, Math.max(0, Math.floor(((v + 1) / 2) * side)));
    let best = -1;
    let bestDistance = HOVER_PIXELS * HOVER_PIXELS;
    for (let cy = cell(py - ry); cy <= cell(py + ry); cy += 1) {
      for (let cx = cell(px - rx); cx <= cell(px + rx); cx += 1) {
        const c = cy * side + cx;
        for (let k = start[c]; k < start[c + 1]; k += 1) {
          const i = order[k];
          if (this.visible && !this.visible[i]) continue;
          const dx = (nx[i] - px) * sx;
          const dy = (ny[i] - py) * sy;
          const d = dx * dx + dy * dy;
          // Later points are drawn over earlier ones: on a tie, the one on top wins.
          if (d < bestDistance || (d === bestDistance && i > best)) {
            bestDistance = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  resize() {
    const { width, height } = this.frame.getBoundingClientRect();
    if (!this.scatterplot || width < 10) return;
    this.scatterplot.set({ width, height });
    this.drawOverlay();
  }

  setMode(mode) {
    this.mode = mode;
    if (this.scatterplot) {
      this.scatterplot.set({ mouseMode: mode === 'panZoom' ? 'panZoom' : 'lasso', lassoType: mode === 'zoom' ? 'rectangle' : 'freeform' });
    }
    for (const [name, button] of Object.entries(this.modeButtons)) button.classList.toggle('active', name === mode);
  }

  // --- messages from Python --------------------------------------------------------------
  update(args) {
    this.args = args;
    const { data } = args;
    if (!this.scatterplot) this.start(data.height, data.points.n);
    // Messages apply in order: a colour change never lands before the points it colours.
    this.pending += 1;
    this.queue = this.queue
      .then(() => this.apply(data))
      .catch((error) => this.fail(error))
      .finally(() => {
        this.pending -= 1;
      });
    return this.queue;
  }

  async apply(data) {
    const old = this.state;
    const sp = this.scatterplot;
    const points = data.points;
    const colour = data.colour;
    const pointsChanged = old.x !== points.x || old.y !== points.y;
    const colourChanged = old.colourKey !== colour.key;
    if (pointsChanged || colourChanged) {
      const [x, y, codes, rows] = await Promise.all([
        fetchArray(points.x),
        fetchArray(points.y),
        fetchArray(colour.url),
        fetchArray(points.rows),
      ]);
      this.n = points.n;
      this.centre = points.centre;
      this.half = points.half;
      this.rows = new Int32Array(rows);
      this.x = new Float32Array(x);
      this.y = new Float32Array(y);
      const nx = new Float32Array(this.n);
      const ny = new Float32Array(this.n);
      for (let i = 0; i < this.n; i += 1) {
        nx[i] = (this.x[i] - this.centre[0]) / this.half;
        ny[i] = (this.y[i] - this.centre[1]) / this.half;
      }
      if (pointsChanged) {
        this.buildGrid(nx, ny);
        let [left, right, low, high] = [0, 0, 0, 0];
        for (let i = 1; i < this.n; i += 1) {
          if (nx[i] < nx[left]) left = i;
          if (nx[i] > nx[right]) right = i;
          if (ny[i] < ny[low]) low = i;
          if (ny[i] > ny[high]) high = i;
        }
        this.anchors = nx[right] > nx[left] && ny[high] > ny[low] ? [left, right, low, high] : null;
      }
      const categorical = colour.kind === 'category';
      this.codes = categorical ? new Uint16Array(codes) : null;
      const values = categorical ? null : new Float32Array(codes);
      sp.set({ colorBy: categorical ? 'valueA' : 'valueB', pointColor: colour.colours });
      const zero = new Float32Array(this.n);
      await sp.draw(
        { x: nx, y: ny, z: categorical ? Float32Array.from(this.codes) : zero, w: values || zero },
        {
          zDataType: 'categorical',
          wDataType: 'continuous',
          preventFilterReset: !pointsChanged,
          // A new colouring of the same points keeps the library's spatial index (rebuilding it costs ~1 s at 1.28M).
          spatialIndex: pointsChanged ? undefined : sp.get('spatialIndex'),
        },
      );
      this.colours = colour.colours;
      this.state = { ...this.state, x: points.x, y: points.y, colourKey: colour.key, filter: pointsChanged ? undefined : this.state.filter };
      if (pointsChanged) this.state.window = undefined;
    }
    if (this.state.filter !== data.filter) {
      if (data.filter) {
        const mask = await fetchArray(data.filter);
        const kept = maskIndices(mask, this.n);
        this.visible = new Uint8Array(this.n);
        for (const i of kept) this.visible[i] = 1;
        await sp.filter(Array.from(kept), { preventEvent: true });
      } else {
        this.visible = null;
        await sp.unfilter({ preventEvent: true });
      }
      this.state.filter = data.filter;
    }
    const windowKey = JSON.stringify(data.window);
    if (this.state.window !== windowKey) {
      this.state.window = windowKey;
      this.zoomTo(data.window);
    }
    this.marks = data.marks;
    this.placed = data.placed;
    this.legendFor(colour);
    this.annotate(data);
    this.drawOverlay();
    this.root.dataset.pointsDrawn = String(this.pointsDrawn());
    this.root.dataset.ready = data.token;
  }

  // Where point `i` is on the page (CSS pixels), or null: for the browser tests and scripts.
  pagePosition(i) {
    const p = this.scatterplot.getScreenPosition(i);
    const box = this.canvas.getBoundingClientRect();
    return p ? [box.left + p[0], box.top + p[1]] : null;
  }

  pointsDrawn() {
    const sp = this.scatterplot;
    return sp.get('isPointsFiltered') ? sp.get('filteredPoints').length : sp.get('points').length;
  }

  zoomTo(window) {
    if (!window) {
      this.scatterplot.zoomToArea({ x: -1, y: -1, width: 2, height: 2 });
      return;
    }
    const [x0, x1, y0, y1] = window;
    const [nx0, ny0] = this.toNdc(x0, y0);
    const [nx1, ny1] = this.toNdc(x1, y1);
    this.scatterplot.zoomToArea({ x: nx0, y: ny0, width: nx1 - nx0, height: ny1 - ny0 });
  }

  resetView() {
    if (this.args && this.args.data.window) {
      // The zoom window is Python's (and the URL's): ask it to drop it.
      this.zooms += 1;
      this.args.setTriggerValue('zoom', { window: null, token: this.args.data.token, n: this.zooms });
    } else {
      this.zoomTo(null);
    }
  }

  toNdc(x, y) {
    return [(x - this.centre[0]) / this.half, (y - this.centre[1]) / this.half];
  }

  toData(nx, ny) {
    return [this.centre[0] + nx * this.half, this.centre[1] + ny * this.half];
  }

  // --- what is drawn over the points --------------------------------------------------------
  annotate(data) {
    // Lines (lineage: a placed sample to its parents) and set outlines live in data space:
    // regl-scatterplot's annotations follow pan and zoom on the GPU.
    const lines = [];
    for (const [child, parent] of (data.placed && data.placed.lines) || []) {
      const a = this.toNdc(this.x[child], this.y[child]);
      const b = this.toNdc(this.x[parent], this.y[parent]);
      lines.push({ vertices: [a, b], lineColor: [0.33, 0.33, 0.33, 0.8], lineWidth: 1 });
    }
    for (const set of data.sets || []) {
      const vertices = set.polygon.map(([x, y]) => this.toNdc(x, y));
      if (vertices.length > 2) vertices.push(vertices[0]);
      lines.push({ vertices, lineColor: set.colour, lineWidth: 2 });
    }
    const key = JSON.stringify([data.points.x, (data.placed && data.placed.lines) || [], data.sets || []]);
    if (key !== this.state.annotations) {
      this.state.annotations = key;
      this.scatterplot.drawAnnotations(lines);
    }
  }

  drawOverlay() {
    const canvas = this.overlay;
    const { width, height } = this.frame.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!this.marks || !this.scatterplot || !this.n) return;
    const screen = (i) => this.scatterplot.getScreenPosition(i);
    for (const i of (this.placed && this.placed.rows) || []) {
      const p = screen(i);
      if (!p) continue;
      ctx.beginPath();
      ctx.moveTo(p[0], p[1] - 7);
      ctx.lineTo(p[0] + 6, p[1]);
      ctx.lineTo(p[0], p[1] + 7);
      ctx.lineTo(p[0] - 6, p[1]);
      ctx.closePath();
      ctx.fillStyle = this.colourOf(i);
      ctx.fill();
      ctx.lineWidth = 1.2;
      ctx.strokeStyle = PLACED_OUTLINE;
      ctx.stroke();
    }
    for (const [role, indices] of [['knn', this.marks.knn], ['manual', this.marks.manual]]) {
      ctx.lineWidth = role === 'knn' ? 1.5 : 3.5;
      ctx.strokeStyle = RING;
      for (const i of indices || []) {
        const p = screen(i);
        if (!p) continue;
        ctx.beginPath();
        ctx.arc(p[0], p[1], 5, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }
    if (this.hovered >= 0) {
      const p = screen(this.hovered);
      if (p) {
        ctx.beginPath();
        ctx.arc(p[0], p[1], 4, 0, 2 * Math.PI);
        ctx.lineWidth = 2;
        ctx.strokeStyle = '#1452ff';
        ctx.stroke();
      }
    }
    if (this.marks.selected >= 0) {
      const p = screen(this.marks.selected);
      if (p) {
        ctx.beginPath();
        ctx.arc(p[0], p[1], 8, 0, 2 * Math.PI);
        ctx.fillStyle = SELECTED_FILL;
        ctx.fill();
        ctx.lineWidth = 1.5;
        ctx.strokeStyle = '#0b1f66';
        ctx.stroke();
      }
    }
  }

  colourOf(i) {
    if (this.codes) return this.colours[this.codes[i]] || '#999999';
    return '#999999';
  }

  legendFor(colour) {
    if (this.state.legend === colour.key) return;
    this.state.legend = colour.key;
    this.legend.replaceChildren();
    const title = el('div', 'dmd2-legend-title', this.legend);
    title.textContent = colour.title;
    if (colour.kind === 'category') {
      for (const [label, swatch] of colour.legend) {
        const entry = el('span', 'dmd2-legend-entry', this.legend);
        const dot = el('span', 'dmd2-swatch', entry);
        dot.style.background = swatch;
        el('span', 'dmd2-legend-label', entry).textContent = label;
      }
    } else {
      const bar = el('span', 'dmd2-ramp', this.legend);
      bar.style.background = `linear-gradient(to right, ${colour.colours.slice(1).join(', ')})`;
      el('span', 'dmd2-legend-label', this.legend).textContent = `${colour.range[0]} – ${colour.range[1]}`;
    }
  }

  // --- hover, click, lasso -----------------------------------------------------------------
  showTooltip(i) {
    this.hovered = i;
    const row = this.rows ? this.rows[i] : -1;
    const data = this.args.data;
    const tip = this.tooltip;
    tip.replaceChildren();
    tip.dataset.index = String(i);
    delete tip.dataset.ready;
    if (row >= 0) {
      const image = el('img', 'dmd2-thumb', tip);
      image.src = `${data.thumbs}${row}.png`;
      image.alt = 'thumbnail';
    }
    const facts = el('div', 'dmd2-facts', tip);
    facts.textContent = '…';
    fetchMeta(`${data.meta}${i}.json`).then((meta) => {
      if (this.hovered !== i) return;
      facts.replaceChildren();
      for (const [name, value] of Object.entries(meta)) {
        const line = el('div', 'dmd2-fact', facts);
        line.dataset.name = name;
        el('b', '', line).textContent = `${name}: `;
        el('span', 'dmd2-value', line).textContent = String(value);
      }
      tip.dataset.ready = String(i);
    });
    const p = this.scatterplot.getScreenPosition(i);
    const { width } = this.frame.getBoundingClientRect();
    if (p) {
      tip.style.left = `${p[0] + 14 > width - 220 ? p[0] - 230 : p[0] + 14}px`;
      tip.style.top = `${Math.max(p[1] - 40, 0)}px`;
    }
    tip.classList.add('visible');
  }

  hideTooltip() {
    this.hovered = -1;
    this.tooltip.classList.remove('visible');
  }

  onLassoEnd(coordinates) {
    this.scatterplot.deselect({ preventEvent: true });
    if (!coordinates || coordinates.length < 3) return;
    const polygon = coordinates.map(([nx, ny]) => this.toData(nx, ny));
    if (this.mode === 'zoom') {
      const xs = polygon.map((p) => p[0]);
      const ys = polygon.map((p) => p[1]);
      this.zooms += 1;
      const window = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      this.args.setTriggerValue('zoom', { window, token: this.args.data.token, n: this.zooms });
      this.setMode('panZoom');
      return;
    }
    this.lassos += 1;
    this.args.setTriggerValue('lasso', { polygon, token: this.args.data.token, n: this.lassos });
  }

  fail(error) {
    this.root.dataset.error = String(error);
    this.status.textContent = `The scatter could not draw: ${error}`;
    // eslint-disable-next-line no-console
    console.error(error);
  }

  destroy() {
    window.removeEventListener('mousemove', this.pointer, { capture: true });
    window.removeEventListener('click', this.pointer, { capture: true });
    if (this.resizer) this.resizer.disconnect();
    if (this.scatterplot) this.scatterplot.destroy();
    this.root.remove();
  }
}

// Mount or update the scatter of one component instance; Streamlit calls the component's
// default export on every data change (after the cleanup of the previous call), so the
// scatter outlives the calls and is destroyed only once its host has left the page.
export function mount(args) {
  const host = args.parentElement;
  if (!webglAvailable()) {
    args.setStateValue('webgl', false);
    return () => {};
  }
  addStyle();
  let scatter = instances.get(host);
  if (!scatter || !scatter.root.isConnected) {
    scatter = new Scatter(host);
    instances.set(host, scatter);
    window.__dmd2scatterMounts = (window.__dmd2scatterMounts || 0) + 1; // a remount refetches nothing (arrays are cached by URL)
  }
  scatter.update(args);
  return () => {
    setTimeout(() => {
      if (!host.isConnected && instances.get(host) === scatter) {
        instances.delete(host);
        scatter.destroy();
      }
    }, 0);
  };
}
